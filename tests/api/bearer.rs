//! How bearer tokens are presented: the Authorization header and its
//! scheme, tokens of the wrong stage, and places a token must not be read
//! from.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::jwt::{assert_invalid_token, www_authenticate};
use crate::helpers::paths::{DISABLE, EVENTS, LOGOUT, ME, RECOVERY_CODES, SETUP, VERIFY};
use crate::helpers::{
    PASSWORD, TestApp, assert_problem, expect_problem, pending_token, unique_name,
};

async fn missing_or_malformed_authorization_is_401(app: TestApp) {
    let user = app.enrolled_user(&unique_name("auth")).await;
    let response = app.get(ME, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // RFC 6750 3.1: no error code when no credentials were sent.
    assert!(!challenge.contains("error="), "{challenge}");
    assert_problem(response, 401, "invalid_token").await;

    let access = user.access_token();
    for value in [
        "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==".to_owned(),
        format!("Basic {access}"),
        format!("Token {access}"),
        format!("Bearer{access}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ...".to_owned(),
        format!("Bearer {access} extra"),
        format!("Bearer {access}x"),
        format!("Bearer \"{access}\""),
        access.to_owned(),
    ] {
        let response = app
            .client
            .get(app.url(ME))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        let context = format!("Authorization: {value:?}");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
        let challenge = www_authenticate(&response);
        assert!(challenge.starts_with("Bearer"), "{context}: {challenge}");
        assert_problem(response, 401, "invalid_token").await;
    }
}

async fn bearer_scheme_is_case_insensitive(app: TestApp) {
    let user = app.enrolled_user(&unique_name("case")).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = app
            .client
            .get(app.url(ME))
            .header("authorization", format!("{scheme} {}", user.access_token()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "scheme {scheme}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], user.user_id.as_str());
        assert_eq!(body["username"], user.username.as_str());
        assert_eq!(body["two_factor_enabled"], true);
    }
}

async fn tokens_of_the_wrong_stage_are_refused(app: TestApp) {
    let registered = app.register(&unique_name("stage")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    // A pending token is not an access token: 403, not 401.
    let code = json!({"code": "123456"});
    let password_and_code = json!({"password": PASSWORD, "code": "123456"});
    for (method, path, body) in [
        (Method::GET, ME, None),
        (Method::GET, EVENTS, None),
        (Method::POST, LOGOUT, None),
        (Method::POST, RECOVERY_CODES, Some(code)),
        (Method::POST, DISABLE, Some(password_and_code)),
    ] {
        let response = app.request(method, path, Some(pending), body).await;
        assert_problem(response, 403, "two_factor_required").await;
    }
    // ...and that refusal did not spend it.
    app.setup(pending).await;

    let user = app.enrolled_user(&unique_name("stage")).await;
    let access = user.access_token();
    let response = app.request(Method::POST, SETUP, Some(access), None).await;
    assert_invalid_token(response, "access token on /2fa/setup").await;
    let code = app.code(&user.secret, 0);
    let response = app.post(VERIFY, Some(access), json!({"code": code})).await;
    assert_invalid_token(response, "access token on /2fa/verify").await;
    // The code was not used up by that refusal: a fresh login accepts it.
    let login = app.login(&user.username).await;
    assert_eq!(login["next_step"], "verify_2fa");
    let response = app
        .verify(login["pending_token"].as_str().unwrap(), &code)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn tokens_in_the_query_string_are_ignored(app: TestApp) {
    let user = app.enrolled_user(&unique_name("query")).await;
    let access = user.access_token();
    for query in [
        format!("access_token={access}"),
        format!("token={access}"),
        format!("bearer={access}"),
    ] {
        let response = app.get(&format!("{ME}?{query}"), None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{query}");
        let challenge = www_authenticate(&response);
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert_problem(response, 401, "invalid_token").await;
    }
    let registered = app.register(&unique_name("query")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let response = app
        .request(
            Method::POST,
            &format!("{SETUP}?access_token={pending}"),
            None,
            None,
        )
        .await;
    assert_problem(response, 401, "invalid_token").await;
}

/// A request with two Authorization headers, `first` then `second`.
async fn with_two_authorizations(
    app: &TestApp,
    method: Method,
    path: &str,
    first: &str,
    second: &str,
) -> Response {
    app.client
        .request(method, app.url(path))
        .header("authorization", first)
        .header("authorization", second)
        .send()
        .await
        .unwrap()
}

async fn two_authorization_headers_are_400(app: TestApp) {
    let user = app.enrolled_user(&unique_name("twice")).await;
    let access = format!("Bearer {}", user.access_token());
    // The token is good on its own.
    let response = app.get(ME, Some(user.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
    for second in [
        access.clone(),
        "Basic YWxpY2U6c2VjcmV0".to_owned(),
        "Bearer garbage".to_owned(),
    ] {
        let response = with_two_authorizations(&app, Method::GET, ME, &access, &second).await;
        expect_problem(
            response,
            400,
            "bad_request",
            &format!("me with {second:?} as well"),
        )
        .await;
    }
    let pending = format!("Bearer {}", pending_token(&app).await);
    let response = with_two_authorizations(&app, Method::POST, SETUP, &pending, &pending).await;
    expect_problem(
        response,
        400,
        "bad_request",
        "setup with two pending tokens",
    )
    .await;
}

on_both_backends!(
    missing_or_malformed_authorization_is_401,
    bearer_scheme_is_case_insensitive,
    tokens_of_the_wrong_stage_are_refused,
    tokens_in_the_query_string_are_ignored,
    two_authorization_headers_are_400,
);
