//! Request bodies: malformed, mistyped, oversized (declared, chunked or
//! compressed) and invalid JSON; field validation; and the answers that
//! must not tell one refusal from another.

use base64::Engine as _;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::paths::{LOGIN, REGISTER, VERIFY};
use crate::helpers::raw_http::{assert_raw_problem, chunked_head, chunked_request};
use crate::helpers::{
    PASSWORD, TestApp, assert_hardened, expect_problem, pending_token, unique_name,
};

const LIMIT: usize = 16 * 1024;

/// The fields named by a 422's `errors`, sorted; each entry has a message.
fn error_fields(body: &Value) -> Vec<String> {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"));
    let mut fields: Vec<String> = errors
        .iter()
        .map(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "entry without a message: {body}");
            entry["field"]
                .as_str()
                .unwrap_or_else(|| panic!("entry without a field: {body}"))
                .to_owned()
        })
        .collect();
    fields.sort();
    fields
}

async fn expect_invalid_fields(response: Response, fields: &[&str], context: &str) {
    let body = expect_problem(response, 422, "validation_failed", context).await;
    assert_eq!(error_fields(&body), fields, "{context}: {body}");
}

/// A POST with exactly these bytes and this content type (none if None).
async fn post_raw(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// A POST of exactly these bytes as `application/json`.
async fn post_json_bytes(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    post_raw(app, path, token, Some("application/json"), body).await
}

/// The endpoints that read a JSON body, with the token each needs.
async fn body_endpoints(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    vec![
        (REGISTER, None),
        (LOGIN, None),
        (VERIFY, Some(pending_token(app).await)),
    ]
}

async fn malformed_json_is_400(app: TestApp) {
    let malformed: [&[u8]; 7] = [
        b"{\"username\":",
        b"{username: \"alice\"}",
        b"not json",
        b"{\"username\":\"alice\",}",
        b"{\"username\":\"alice\"} trailing",
        b"{\"username\":\"al\xffice\",\"password\":\"correct horse battery staple\"}",
        b"\xef\xbb\xbf{}",
    ];
    for (path, token) in body_endpoints(&app).await {
        for body in malformed {
            let context = format!("{path} {:?}", String::from_utf8_lossy(body));
            let response = post_json_bytes(&app, path, token.as_deref(), body.to_vec()).await;
            let problem = expect_problem(response, 400, "bad_request", &context).await;
            assert!(problem.get("errors").is_none(), "{context}: {problem}");
        }
    }
}

async fn missing_body_is_400(app: TestApp) {
    for (path, token) in body_endpoints(&app).await {
        let response = app
            .request(Method::POST, path, token.as_deref(), None)
            .await;
        expect_problem(
            response,
            400,
            "bad_request",
            &format!("{path} without a body"),
        )
        .await;
        let response = post_json_bytes(&app, path, token.as_deref(), Vec::new()).await;
        expect_problem(
            response,
            400,
            "bad_request",
            &format!("{path} with an empty JSON body"),
        )
        .await;
    }
}

async fn wrong_content_type_is_415(app: TestApp) {
    let name = unique_name("ctype");
    let credentials = json!({"username": name, "password": PASSWORD}).to_string();
    for (path, token) in body_endpoints(&app).await {
        let body = if path == VERIFY {
            json!({"code": "123456"}).to_string()
        } else {
            credentials.clone()
        };
        let form = format!("username={name}&password=correct+horse+battery+staple");
        let cases = [
            (Some("text/plain"), body.clone()),
            (Some("text/plain; charset=utf-8"), body.clone()),
            (Some("application/x-www-form-urlencoded"), form),
            (None, body.clone()),
        ];
        for (content_type, body) in cases {
            let context = format!("{path} as {content_type:?}");
            let response = post_raw(&app, path, token.as_deref(), content_type, body).await;
            let status = response.status().as_u16();
            let code = if status == 400 {
                "bad_request"
            } else {
                "unsupported_media_type"
            };
            assert!(status == 415 || status == 400, "{context}: {status}");
            expect_problem(response, status, code, &context).await;
        }
    }
    // Nothing was registered by the refused requests...
    let response = app.post_credentials(LOGIN, &name, PASSWORD).await;
    expect_problem(
        response,
        401,
        "invalid_credentials",
        "login after refused registers",
    )
    .await;
    // ...and a charset parameter is fine.
    let response = post_raw(
        &app,
        REGISTER,
        None,
        Some("application/json; charset=utf-8"),
        credentials,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "application/json; charset=utf-8"
    );
    assert_hardened(response.headers(), "register 201");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], name);
}

async fn non_object_json_is_422(app: TestApp) {
    for (path, token) in body_endpoints(&app).await {
        for body in [
            "[]",
            "\"text\"",
            "42",
            "null",
            "true",
            "[{\"username\":\"alice\"}]",
        ] {
            let context = format!("{path} {body}");
            let response = post_json_bytes(&app, path, token.as_deref(), body.to_owned()).await;
            let problem = expect_problem(response, 422, "validation_failed", &context).await;
            let errors = problem["errors"].as_array();
            assert!(
                errors.is_some_and(|e| !e.is_empty()),
                "{context}: {problem}"
            );
        }
    }
}

async fn every_invalid_field_is_listed(app: TestApp) {
    let cases = [
        (REGISTER, json!({}), vec!["password", "username"]),
        (
            REGISTER,
            json!({"username": null, "password": false}),
            vec!["password", "username"],
        ),
        (
            REGISTER,
            json!({"username": 42, "password": PASSWORD}),
            vec!["username"],
        ),
        (
            REGISTER,
            json!({"username": "alice", "password": ["x"]}),
            vec!["password"],
        ),
        (
            REGISTER,
            json!({"username": "ab", "password": "short"}),
            vec!["password", "username"],
        ),
        (
            REGISTER,
            json!({"username": "  ab  ", "password": PASSWORD}),
            vec!["username"],
        ),
        (
            REGISTER,
            json!({"username": "x".repeat(65), "password": PASSWORD}),
            vec!["username"],
        ),
        (
            REGISTER,
            json!({"username": "alice", "password": "y".repeat(129)}),
            vec!["password"],
        ),
        (LOGIN, json!({}), vec!["password", "username"]),
        (
            LOGIN,
            json!({"username": 42, "password": 42}),
            vec!["password", "username"],
        ),
        (LOGIN, json!({"username": "alice"}), vec!["password"]),
    ];
    for (path, body, fields) in cases {
        let response = app.post(path, None, body.clone()).await;
        expect_invalid_fields(response, &fields, &format!("{path} {body}")).await;
    }
    let pending = pending_token(&app).await;
    for body in [
        json!({}),
        json!({"code": 123456}),
        json!({"code": "12345"}),
        json!({"code": "12345a"}),
    ] {
        let response = app.post(VERIFY, Some(&pending), body.clone()).await;
        expect_invalid_fields(response, &["code"], &format!("verify {body}")).await;
    }
}

async fn usernames_with_control_or_format_characters_are_422(app: TestApp) {
    for bad in [
        "ab\u{0}cd",
        "ab\u{202E}cd",
        "ab\u{200B}cd",
        "ab\tcd",
        "ab\u{FEFF}cd",
        "ab\u{2028}cd",
    ] {
        let response = app.post_credentials(REGISTER, bad, PASSWORD).await;
        expect_invalid_fields(response, &["username"], &format!("register {bad:?}")).await;
    }
    // Inner spaces and @ are printable and allowed.
    let registered = app.register("Jane Doe@example.org").await;
    assert_eq!(registered["user"]["username"], "Jane Doe@example.org");
}

async fn weak_passwords_are_422(app: TestApp) {
    let username = unique_name("Mallory");
    let cases = [
        "password123".to_owned(),
        "PassWord123".to_owned(),
        username.clone(),
        username.to_lowercase(),
        username.to_uppercase(),
    ];
    for password in cases {
        let response = app.post_credentials(REGISTER, &username, &password).await;
        expect_invalid_fields(response, &["password"], &format!("password {password:?}")).await;
    }
    // None of those created the account.
    app.register(&username).await;
}

/// A JSON object of exactly `len` bytes whose fields are invalid.
fn padded_invalid_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"username":"ab","password":"short"}"#.to_vec();
    body.resize(len, b' ');
    body
}

async fn oversized_declared_bodies_are_413(app: TestApp) {
    for (path, token) in body_endpoints(&app).await {
        let response =
            post_json_bytes(&app, path, token.as_deref(), padded_invalid_body(LIMIT + 1)).await;
        expect_problem(
            response,
            413,
            "payload_too_large",
            &format!("{path} {} bytes", LIMIT + 1),
        )
        .await;
        let response =
            post_json_bytes(&app, path, token.as_deref(), padded_invalid_body(64 * 1024)).await;
        expect_problem(
            response,
            413,
            "payload_too_large",
            &format!("{path} 64 KiB"),
        )
        .await;
    }
    // Exactly 16 KiB is within the limit: it is read and validated.
    let response = post_json_bytes(&app, REGISTER, None, padded_invalid_body(LIMIT)).await;
    expect_invalid_fields(
        response,
        &["password", "username"],
        "register of exactly 16 KiB",
    )
    .await;
}

/// gzip (RFC 1952) of `{"username":"ab","password":"short"}` followed by
/// 256 KiB of spaces: 326 bytes on the wire.
fn gzip_bomb() -> Vec<u8> {
    let encoded = format!(
        "{}{}{}",
        "H4sIAAAAAAACA+3HuQmAQBAAwFZkYyuwmxMPTHy4VQzE3jW2hpls7jiztrUsNYYoY/Sxl8xra9P3nLd2xNMB",
        "A".repeat(337),
        "Py8DKfoviQABAA="
    );
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap()
}

async fn compressed_bodies_are_limited_after_decoding(app: TestApp) {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 400);
    for (path, token) in body_endpoints(&app).await {
        let mut request = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone());
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let context = format!("{path}: 326 bytes of gzip, 256 KiB decoded");
        // Refused for its decoded size, or not decoded at all; never read
        // whole (which would be a 422 here).
        let status = response.status().as_u16();
        let code = match status {
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            _ => "bad_request",
        };
        expect_problem(response, status, code, &context).await;
    }
}

async fn oversized_chunked_bodies_are_413(app: TestApp) {
    // The raw client works: a small chunked registration succeeds.
    let name = unique_name("chunked");
    let small = json!({"username": name, "password": PASSWORD}).to_string();
    let response = chunked_request(&app, &chunked_head(&app, REGISTER), small.as_bytes(), 7).await;
    assert_eq!(
        response.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_hardened(&response.headers, "chunked register");
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["user"]["username"], name);

    // Exactly 16 KiB in chunks is read and validated.
    let response = chunked_request(
        &app,
        &chunked_head(&app, REGISTER),
        &padded_invalid_body(LIMIT),
        1024,
    )
    .await;
    assert_raw_problem(&response, 422, "validation_failed", "16 KiB chunked");

    for path in [REGISTER, LOGIN] {
        for (size, chunk) in [(LIMIT + 1, 1024), (20 * 1024, 1024), (256 * 1024, 8192)] {
            let context = format!("{path}: {size} bytes chunked");
            let response = chunked_request(
                &app,
                &chunked_head(&app, path),
                &padded_invalid_body(size),
                chunk,
            )
            .await;
            assert_raw_problem(&response, 413, "payload_too_large", &context);
        }
    }
}

async fn duplicate_usernames_are_409(app: TestApp) {
    let registered = app.register("alice").await;
    assert_eq!(registered["user"]["username"], "alice");
    for duplicate in [
        "alice",
        "Alice",
        "ALICE",
        "ａｌｉｃｅ",
        " alice ",
        "\u{3000}Ａlice\t",
    ] {
        let response = app.post_credentials(REGISTER, duplicate, PASSWORD).await;
        expect_problem(
            response,
            409,
            "username_taken",
            &format!("register {duplicate:?}"),
        )
        .await;
    }
    // The display form is trimmed NFKC, case as first registered...
    let registered = app.register("  Ｃａｒｏｌ Ｓmith ").await;
    assert_eq!(registered["user"]["username"], "Carol Smith");
    assert_eq!(registered["user"]["two_factor_enabled"], false);
    let response = app
        .post_credentials(REGISTER, "carol smith", PASSWORD)
        .await;
    expect_problem(response, 409, "username_taken", "carol smith").await;
    // ...and login finds it under any of its forms.
    for form in ["carol smith", "CAROL SMITH", " Ｃａｒｏｌ Ｓｍｉｔｈ "] {
        let response = app.post_credentials(LOGIN, form, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {form:?}");
    }
}

async fn login_failures_are_indistinguishable(app: TestApp) {
    let name = unique_name("victim");
    app.register(&name).await;
    let mut bodies = Vec::new();
    for (username, password) in [
        (name.as_str(), "wrong password, quite long"),
        ("nobody-by-that-name", PASSWORD),
        ("ab", PASSWORD),
        (name.as_str(), "Correct Horse Battery Staple"),
    ] {
        let response = app.post_credentials(LOGIN, username, password).await;
        let context = format!("login {username:?}/{password:?}");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
        assert_hardened(response.headers(), &context);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/problem+json",
            "{context}"
        );
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{context}"
        );
        let bytes = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], "invalid_credentials", "{context}: {body}");
        assert_eq!(body["status"], 401, "{context}: {body}");
        bodies.push((context, bytes));
    }
    for (context, bytes) in &bodies[1..] {
        assert_eq!(
            bytes, &bodies[0].1,
            "{context} differs from {}",
            bodies[0].0
        );
    }
}

on_both_backends!(
    malformed_json_is_400,
    missing_body_is_400,
    wrong_content_type_is_415,
    non_object_json_is_422,
    every_invalid_field_is_listed,
    usernames_with_control_or_format_characters_are_422,
    weak_passwords_are_422,
    oversized_declared_bodies_are_413,
    oversized_chunked_bodies_are_413,
    compressed_bodies_are_limited_after_decoding,
    duplicate_usernames_are_409,
    login_failures_are_indistinguishable,
);
