//! The HTTP edge: malformed, oversized and misdirected requests, field
//! validation, the headers every answer carries, and CORS.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem};

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";
const VERIFY: &str = "/api/v1/2fa/verify";
const LIMIT: usize = 16 * 1024;

/// The headers the contract puts on every response, errors included.
fn assert_hardened(headers: &HeaderMap, context: &str) {
    let single = |name: &str| -> String {
        let values: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(
            values.len(),
            1,
            "{context}: exactly one {name} header, got {values:?}"
        );
        values[0].to_str().unwrap().to_owned()
    };
    assert_eq!(single("cache-control"), "no-store", "{context}");
    assert_eq!(single("x-content-type-options"), "nosniff", "{context}");
    assert_eq!(single("x-frame-options"), "DENY", "{context}");
    let csp = single("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "{context}: CSP {csp:?}"
    );
}

/// A problem+json answer with this status and code and the security headers.
async fn expect_problem(response: Response, status: u16, code: &str, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context}");
    assert_hardened(response.headers(), context);
    assert_problem(response, status, code).await
}

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

/// A pending token of a freshly registered user (for /2fa/verify).
async fn pending_token(app: &TestApp) -> String {
    let registered = app.register(&crate::helpers::unique_name("pending")).await;
    registered["pending_token"].as_str().unwrap().to_owned()
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
            let response = post_raw(
                &app,
                path,
                token.as_deref(),
                Some("application/json"),
                body.to_vec(),
            )
            .await;
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
        let response = post_raw(
            &app,
            path,
            token.as_deref(),
            Some("application/json"),
            Vec::new(),
        )
        .await;
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
    let name = crate::helpers::unique_name("ctype");
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
    let response = app
        .post(LOGIN, None, json!({"username": name, "password": PASSWORD}))
        .await;
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
            let response = post_raw(
                &app,
                path,
                token.as_deref(),
                Some("application/json"),
                body.to_owned(),
            )
            .await;
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
        let response = app
            .post(
                REGISTER,
                None,
                json!({"username": bad, "password": PASSWORD}),
            )
            .await;
        expect_invalid_fields(response, &["username"], &format!("register {bad:?}")).await;
    }
    // Inner spaces and @ are printable and allowed.
    let registered = app.register("Jane Doe@example.org").await;
    assert_eq!(registered["user"]["username"], "Jane Doe@example.org");
}

async fn weak_passwords_are_422(app: TestApp) {
    let username = crate::helpers::unique_name("Mallory");
    let cases = [
        "password123".to_owned(),
        "PassWord123".to_owned(),
        username.clone(),
        username.to_lowercase(),
        username.to_uppercase(),
    ];
    for password in cases {
        let response = app
            .post(
                REGISTER,
                None,
                json!({"username": username, "password": password}),
            )
            .await;
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
        let response = post_raw(
            &app,
            path,
            token.as_deref(),
            Some("application/json"),
            padded_invalid_body(LIMIT + 1),
        )
        .await;
        expect_problem(
            response,
            413,
            "payload_too_large",
            &format!("{path} {} bytes", LIMIT + 1),
        )
        .await;
        let response = post_raw(
            &app,
            path,
            token.as_deref(),
            Some("application/json"),
            padded_invalid_body(64 * 1024),
        )
        .await;
        expect_problem(
            response,
            413,
            "payload_too_large",
            &format!("{path} 64 KiB"),
        )
        .await;
    }
    // Exactly 16 KiB is within the limit: it is read and validated.
    let response = post_raw(
        &app,
        REGISTER,
        None,
        Some("application/json"),
        padded_invalid_body(LIMIT),
    )
    .await;
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

/// An HTTP/1.1 answer read off a raw socket.
struct RawResponse {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Sends `head` (request line and headers, ending in a blank line) and
/// then `body` in HTTP/1.1 chunks of `chunk` bytes, reading the answer
/// meanwhile (the server may answer before the body is complete).
async fn chunked_request(app: &TestApp, head: &str, body: &[u8], chunk: usize) -> RawResponse {
    let address = app.address.trim_start_matches("http://");
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut wire = head.as_bytes().to_vec();
    for piece in body.chunks(chunk) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let sender = tokio::spawn(async move {
        // Errors are expected once the server has answered and closed.
        let _ = writer.write_all(&wire).await;
        let _ = writer.flush().await;
        writer
    });
    let mut received = Vec::new();
    let read_all = async {
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
            if response_complete(&received) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("an answer within 10 s");
    sender.abort();
    parse_response(&received)
}

fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&bytes[..end], &bytes[end + 4..]))
}

fn response_complete(bytes: &[u8]) -> bool {
    let Some((head, body)) = split_head(bytes) else {
        return false;
    };
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    if let Some(length) = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let (head, body) = split_head(bytes)
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8(head.to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("header {line:?}"));
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|value| value.to_str().unwrap().eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&bytes[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

fn chunked_head(app: &TestApp, path: &str) -> String {
    let host = app.address.trim_start_matches("http://");
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
}

fn assert_raw_problem(response: &RawResponse, status: u16, code: &str, context: &str) {
    assert_eq!(
        response.status,
        status,
        "{context}: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_hardened(&response.headers, context);
    assert_eq!(
        response
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{context}"
    );
    let body: Value = serde_json::from_slice(&response.body).expect("problem JSON");
    assert_eq!(body["status"], status, "{context}: {body}");
    assert_eq!(body["code"], code, "{context}: {body}");
}

async fn oversized_chunked_bodies_are_413(app: TestApp) {
    // The raw client works: a small chunked registration succeeds.
    let name = crate::helpers::unique_name("chunked");
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
        (Method::DELETE, "/healthz", "GET"),
        (Method::POST, "/healthz", "GET"),
        (Method::POST, "/api/v1/me", "GET"),
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

async fn success_responses_carry_security_headers(app: TestApp) {
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "healthz");
    let response = app.get("/readyz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "readyz");

    let name = crate::helpers::unique_name("headers");
    let response = app
        .post(
            REGISTER,
            None,
            json!({"username": name, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_hardened(response.headers(), "register");
    let response = app
        .post(LOGIN, None, json!({"username": name, "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "login");

    let user = app
        .enrolled_user(&crate::helpers::unique_name("headers"))
        .await;
    let response = app.get("/api/v1/me", Some(user.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_hardened(response.headers(), "me");
    let response = app
        .request(
            Method::POST,
            "/api/v1/auth/logout",
            Some(user.access_token()),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_hardened(response.headers(), "logout");
}

async fn two_authorization_headers_are_400(app: TestApp) {
    let user = app
        .enrolled_user(&crate::helpers::unique_name("twice"))
        .await;
    let access = format!("Bearer {}", user.access_token());
    // The token is good on its own.
    let response = app.get("/api/v1/me", Some(user.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
    for second in [
        access.clone(),
        "Basic YWxpY2U6c2VjcmV0".to_owned(),
        "Bearer garbage".to_owned(),
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/me"))
            .header("authorization", &access)
            .header("authorization", &second)
            .send()
            .await
            .unwrap();
        expect_problem(
            response,
            400,
            "bad_request",
            &format!("me with {second:?} as well"),
        )
        .await;
    }
    let pending = format!("Bearer {}", pending_token(&app).await);
    let response = app
        .client
        .post(app.url("/api/v1/2fa/setup"))
        .header("authorization", &pending)
        .header("authorization", &pending)
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        400,
        "bad_request",
        "setup with two pending tokens",
    )
    .await;
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
        let response = app
            .post(
                REGISTER,
                None,
                json!({"username": duplicate, "password": PASSWORD}),
            )
            .await;
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
        .post(
            REGISTER,
            None,
            json!({"username": "carol smith", "password": PASSWORD}),
        )
        .await;
    expect_problem(response, 409, "username_taken", "carol smith").await;
    // ...and login finds it under any of its forms.
    for form in ["carol smith", "CAROL SMITH", " Ｃａｒｏｌ Ｓｍｉｔｈ "] {
        let response = app
            .post(LOGIN, None, json!({"username": form, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login as {form:?}");
    }
}

async fn login_failures_are_indistinguishable(app: TestApp) {
    let name = crate::helpers::unique_name("victim");
    app.register(&name).await;
    let mut bodies = Vec::new();
    for (username, password) in [
        (name.as_str(), "wrong password, quite long"),
        ("nobody-by-that-name", PASSWORD),
        ("ab", PASSWORD),
        (name.as_str(), "Correct Horse Battery Staple"),
    ] {
        let response = app
            .post(
                LOGIN,
                None,
                json!({"username": username, "password": password}),
            )
            .await;
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

async fn health_endpoints_answer(app: TestApp) {
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
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
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"status": "ok"}));
    let response = app.get("/readyz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
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
        .get(app.url("/healthz"))
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

async fn cors_with_configured_origin(backend: Backend) {
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
    let response = get_with_origin(&app, "https://app.example").await;
    assert_eq!(response.status(), StatusCode::OK);
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

mod cors_with_configured_origins_grants_only_those {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        cors_with_configured_origin(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        cors_with_configured_origin(Backend::Postgres).await;
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
    unknown_routes_are_404,
    wrong_method_is_405_with_allow,
    success_responses_carry_security_headers,
    two_authorization_headers_are_400,
    duplicate_usernames_are_409,
    login_failures_are_indistinguishable,
    health_endpoints_answer,
    cors_without_configured_origins_grants_nothing,
);

/// HEAD is answered wherever GET is: same status and headers, no body.
async fn head_is_served_like_get(app: TestApp) {
    let get = app.get("/healthz", None).await;
    let get_length = get.headers()["content-length"].clone();
    let head = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], get_length);
    assert_eq!(head.headers()["cache-control"], "no-store");
    assert!(head.bytes().await.unwrap().is_empty());
    let head = app.client.head(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
    assert!(head.headers().contains_key("www-authenticate"));
    // HEAD where only POST is served: 405, and Allow says so.
    let head = app
        .client
        .head(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.headers()["allow"], "POST");
    let delete = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(delete.headers()["allow"], "GET, HEAD");
}

on_both_backends!(head_is_served_like_get);
