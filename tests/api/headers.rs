//! The headers every answer carries, and CORS.

use reqwest::{Method, Response, StatusCode};

use crate::helpers::paths::{HEALTHZ, LOGIN, LOGOUT, ME, READYZ, REGISTER};
use crate::helpers::{Backend, PASSWORD, TestApp, assert_hardened, unique_name};

async fn success_responses_carry_security_headers(app: TestApp) {
    let response = app.get(HEALTHZ, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "healthz");
    let response = app.get(READYZ, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "readyz");

    let name = unique_name("headers");
    let response = app.post_credentials(REGISTER, &name, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_hardened(response.headers(), "register");
    let response = app.post_credentials(LOGIN, &name, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "login");

    let user = app.enrolled_user(&unique_name("headers")).await;
    let response = app.get(ME, Some(user.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "me");
    let response = app
        .request(Method::POST, LOGOUT, Some(user.access_token()), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_hardened(response.headers(), "logout");
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(LOGIN))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

async fn get_with_origin(app: &TestApp, origin: &str) -> Response {
    app.client
        .get(app.url(HEALTHZ))
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

fn assert_no_cors_grant(response: &Response, context: &str) {
    assert!(
        response.status().as_u16() < 500,
        "{context}: {}",
        response.status()
    );
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert!(
            response.headers().get(name).is_none(),
            "{context}: {name} {:?}",
            response.headers().get(name)
        );
    }
    assert_hardened(response.headers(), context);
}

async fn cors_without_configured_origins_grants_nothing(app: TestApp) {
    for origin in ["https://evil.example", "null", &app.address.clone()] {
        let response = preflight(&app, origin).await;
        assert_no_cors_grant(&response, &format!("preflight from {origin}"));
        let response = get_with_origin(&app, origin).await;
        assert_no_cors_grant(&response, &format!("GET from {origin}"));
    }
}

async fn cors_with_configured_origins_grants_only_those(backend: Backend) {
    let Some(app) =
        TestApp::spawn_with(backend, &[("OTPGATE_CORS_ORIGINS", "https://app.example")]).await
    else {
        eprintln!("OTPGATE_TEST_POSTGRES_URL unset: PostgreSQL variant not run");
        return;
    };
    let response = preflight(&app, "https://app.example").await;
    assert!(
        response.status().is_success(),
        "allowed preflight: {}",
        response.status()
    );
    assert_hardened(response.headers(), "allowed preflight");
    let header = |response: &Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "allow-methods {methods:?}");
    // `DELETE /me/sessions/{id}` is called from browsers too.
    assert!(methods.contains("DELETE"), "allow-methods {methods:?}");
    let response = get_with_origin(&app, "https://app.example").await;
    assert_eq!(response.status(), StatusCode::OK);
    let vary = header(&response, "vary").unwrap_or_default();
    assert!(
        vary.to_ascii_lowercase().contains("origin"),
        "Vary {vary:?}"
    );
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );

    for origin in [
        "https://evil.example",
        "null",
        "http://app.example",
        "https://app.example.evil.example",
        "https://app.example:8443",
    ] {
        let response = preflight(&app, origin).await;
        assert_no_cors_grant(&response, &format!("preflight from {origin}"));
        let response = get_with_origin(&app, origin).await;
        assert_no_cors_grant(&response, &format!("GET from {origin}"));
    }
}

on_both_backends!(
    success_responses_carry_security_headers,
    cors_without_configured_origins_grants_nothing,
);
on_both_backends_with_own_settings!(cors_with_configured_origins_grants_only_those);
