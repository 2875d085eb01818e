//! Routing: unknown paths, wrong methods, HEAD, the health endpoints, and
//! the docs page with or without its trailing slash.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::paths::{DOCS, EVENTS, HEALTHZ, LOGIN, ME, READYZ, REGISTER, VERIFY};
use crate::helpers::{TestApp, expect_problem, unique_name};

async fn unknown_routes_are_404(app: TestApp) {
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1/nope"),
        (Method::POST, "/api/v1/auth/nope"),
        (Method::GET, "/api/v2/me"),
        (Method::DELETE, "/api/v1/users/1"),
    ] {
        let context = format!("{method} {path}");
        let response = app.request(method, path, None, None).await;
        assert!(response.headers().get("allow").is_none(), "{context}");
        expect_problem(response, 404, "not_found", &context).await;
    }
}

fn allowed_methods(response: &Response) -> Vec<String> {
    let allow = response
        .headers()
        .get("allow")
        .unwrap_or_else(|| panic!("405 without Allow: {:?}", response.headers()))
        .to_str()
        .unwrap();
    allow
        .split(',')
        .map(|method| method.trim().to_ascii_uppercase())
        .collect()
}

async fn wrong_method_is_405_with_allow(app: TestApp) {
    for (method, path, right) in [
        (Method::GET, LOGIN, "POST"),
        (Method::PUT, REGISTER, "POST"),
        (Method::GET, VERIFY, "POST"),
        (Method::DELETE, HEALTHZ, "GET"),
        (Method::POST, HEALTHZ, "GET"),
        (Method::POST, ME, "GET"),
    ] {
        let context = format!("{method} {path}");
        let response = app.request(method.clone(), path, None, None).await;
        let allowed = allowed_methods(&response);
        assert!(
            allowed.iter().any(|m| m == right),
            "{context}: Allow {allowed:?}"
        );
        assert!(
            !allowed.iter().any(|m| *m == method.as_str()),
            "{context}: Allow {allowed:?}"
        );
        expect_problem(response, 405, "method_not_allowed", &context).await;
    }
}

fn assert_json_content_type(response: &Response) {
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

async fn health_endpoints_answer(app: TestApp) {
    let response = app.get(HEALTHZ, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_json_content_type(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
    let response = app.get(READYZ, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_json_content_type(&response);
}

/// HEAD is answered wherever GET is: same status and headers, no body.
async fn head_is_served_like_get(app: TestApp) {
    let get = app.get(HEALTHZ, None).await;
    let get_length = get.headers()["content-length"].clone();
    let head = app.client.head(app.url(HEALTHZ)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], get_length);
    assert_eq!(head.headers()["cache-control"], "no-store");
    assert!(head.bytes().await.unwrap().is_empty());
    let head = app.client.head(app.url(ME)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
    assert!(head.headers().contains_key("www-authenticate"));
    // HEAD where only POST is served: 405, and Allow says so.
    let head = app.client.head(app.url(LOGIN)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.headers()["allow"], "POST");
    let delete = app.client.delete(app.url(HEALTHZ)).send().await.unwrap();
    assert_eq!(delete.headers()["allow"], "GET, HEAD");
}

/// A failure the server did not foresee (here a table gone from under it)
/// is a 500 `internal` that names nothing inside.
async fn unexpected_failures_are_500_without_details(app: TestApp) {
    let user = app.enrolled_user(&unique_name("broken")).await;
    app.execute_sql("DROP TABLE auth_events");
    let response = app.get(EVENTS, Some(user.access_token())).await;
    let body = expect_problem(response, 500, "internal", "events without their table").await;
    let text = body.to_string().to_lowercase();
    for internal in [
        "auth_events",
        "table",
        "relation",
        "sql",
        "diesel",
        "database",
    ] {
        assert!(!text.contains(internal), "{internal:?} leaked: {body}");
    }
}

/// `/docs/` (as typed, or as a browser completes it) is the very page of
/// `/docs`, `<base>` and content type included, not Swagger UI's bare index.
async fn docs_with_a_trailing_slash_is_the_same_page(app: TestApp) {
    let without = app.get(DOCS, None).await;
    let with = app.get(&format!("{DOCS}/"), None).await;
    assert_eq!(without.status(), StatusCode::OK);
    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(
        with.headers()["content-type"],
        without.headers()["content-type"]
    );
    let page = without.text().await.unwrap();
    assert!(page.contains(r#"<base href="/docs/""#), "{page}");
    assert_eq!(with.text().await.unwrap(), page);
}

on_both_backends!(
    unexpected_failures_are_500_without_details,
    unknown_routes_are_404,
    docs_with_a_trailing_slash_is_the_same_page,
    wrong_method_is_405_with_allow,
    health_endpoints_answer,
    head_is_served_like_get,
);
