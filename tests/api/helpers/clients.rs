//! Requests as a trusted proxy on 127.0.0.1 forwards them (the client named
//! in `X-Forwarded-For`), and what throttling answers.

use reqwest::header::HeaderValue;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use super::paths::LOGIN;
use super::{TestApp, assert_hardened, assert_problem};

/// A POST whose `X-Forwarded-For` is these raw bytes (not necessarily
/// UTF-8: HTTP allows obs-text in header values).
pub async fn post_forwarded_bytes(
    app: &TestApp,
    forwarded: &[u8],
    path: &str,
    body: Value,
) -> Response {
    app.client
        .post(app.url(path))
        .header(
            "x-forwarded-for",
            HeaderValue::from_bytes(forwarded).expect("a header value"),
        )
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

/// A POST from `client`, as a trusted proxy on 127.0.0.1 would forward it.
pub async fn post_as(app: &TestApp, client: &str, path: &str, body: Value) -> Response {
    post_forwarded_bytes(app, client.as_bytes(), path, body).await
}

/// A login from `client`, with a device token when given one.
pub async fn login_as(
    app: &TestApp,
    client: &str,
    username: &str,
    password: &str,
    device_token: Option<&str>,
) -> Response {
    let body = json!({"username": username, "password": password, "device_token": device_token});
    post_as(app, client, LOGIN, body).await
}

/// A 429 `too_many_attempts` with the security headers; its Retry-After
/// in seconds.
pub async fn assert_too_many(response: Response) -> i64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_hardened(response.headers(), "429");
    let retry_after = response
        .headers()
        .get("retry-after")
        .expect("Retry-After on 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_problem(response, 429, "too_many_attempts").await;
    retry_after
}

/// Spends `failures` of the username's hourly cap: one wrong password from
/// each of as many addresses (so no (username, address) streak locks).
pub async fn spend_login_cap(app: &TestApp, username: &str, failures: u8) {
    for n in 0..failures {
        let client = format!("198.51.100.{}", n + 1);
        let response = login_as(app, &client, username, "wrong password", None).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
}

/// The `ip` of the `registered` event of a user whose 201 body this is
/// (enrols the user to read its security log).
pub async fn registered_ip(app: &TestApp, registered: Value) -> Value {
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let response = app.verify(pending, &app.code(&secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK, "verify");
    let tokens: Value = response.json().await.unwrap();
    let events = app.events(&tokens).await;
    let registered = events.iter().find(|e| e["type"] == "registered").unwrap();
    registered["ip"].clone()
}

/// Codes that are wrong now (none within a step of the current one).
pub fn wrong_codes(app: &TestApp, secret: &str, count: usize) -> Vec<String> {
    let near: Vec<String> = (-1..=1).map(|offset| app.code(secret, offset)).collect();
    (0..1_000_000)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|code| !near.contains(code))
        .take(count)
        .collect()
}
