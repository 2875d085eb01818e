//! Sessions seen from outside: listing them, refreshing one, and whether a
//! token pair still works.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::paths::{REFRESH, SESSIONS};
use super::{TestApp, assert_problem};

pub fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("an access_token")
}

/// The session id (`sid`) of a token response's access token.
pub fn session_id(tokens: &Value) -> String {
    super::jwt::claims(access(tokens))["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `sessions` of `GET /me/sessions` with this token response's access
/// token, newest first.
pub async fn list_sessions(app: &TestApp, tokens: &Value) -> Vec<Value> {
    let response = app.get(SESSIONS, Some(access(tokens))).await;
    assert_eq!(response.status(), StatusCode::OK, "list sessions");
    let body: Value = response.json().await.unwrap();
    body["sessions"]
        .as_array()
        .expect("a sessions array")
        .clone()
}

pub async fn revoke_session(app: &TestApp, tokens: &Value, id: &str) -> Response {
    let path = format!("{SESSIONS}/{id}");
    app.request(Method::DELETE, &path, Some(access(tokens)), None)
        .await
}

pub async fn refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post(REFRESH, None, json!({"refresh_token": refresh_token}))
        .await
}

/// Whether the access token still opens /me and the refresh token still
/// refreshes (each refused with 401 `invalid_token` otherwise). Spends the
/// refresh token when it is live.
pub async fn pair_is_live(app: &TestApp, tokens: &Value) -> bool {
    let me = app.get(super::paths::ME, Some(access(tokens))).await;
    let refreshed = refresh(app, tokens["refresh_token"].as_str().unwrap()).await;
    match (me.status(), refreshed.status()) {
        (StatusCode::OK, StatusCode::OK) => true,
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED) => {
            assert_problem(me, 401, "invalid_token").await;
            assert_problem(refreshed, 401, "invalid_token").await;
            false
        }
        (me, refreshed) => panic!("access token {me}, refresh token {refreshed}"),
    }
}
