//! The OpenAPI document: the committed copy cannot drift from what the
//! server serves, it lists exactly the contract's routes, each documented
//! operation is really served, and the interactive docs are there.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::paths::{DOCS, OPENAPI};
use crate::helpers::{Backend, TestApp};

const REGENERATE: &str = "cargo run -q -- openapi > openapi/openapi.json";

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

async fn sqlite_app() -> TestApp {
    TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available")
}

async fn served_document(app: &TestApp) -> String {
    let response = app.get(OPENAPI, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_matches_the_committed_copy() {
    let app = sqlite_app().await;
    let served = served_document(&app).await;
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    if served != committed {
        let first_difference = served
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |line| format!("first difference at line {}", line + 1),
            );
        panic!(
            "openapi/openapi.json is out of date with the served /openapi.json \
             ({first_difference}).\nRegenerate it with:\n\n    {REGENERATE}\n\n\
             then review and commit the diff."
        );
    }
}

#[test]
fn generation_is_stable() {
    let first = otpgate::openapi_json(&otpgate::http::openapi());
    for _ in 0..5 {
        assert_eq!(
            otpgate::openapi_json(&otpgate::http::openapi()),
            first,
            "two generations of the document differ: key order is not stable"
        );
    }
    let value: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(value["openapi"], "3.1.0");
    // Pretty-printed, ending in one newline.
    assert!(first.starts_with("{\n  \"openapi\""));
    assert!(first.ends_with("}\n") && !first.ends_with("\n\n"));
}

fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                found.push((path.clone(), method.clone(), operation.clone()));
            }
        }
    }
    found
}

/// The endpoint table of the API contract, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_exactly_the_contract_routes() {
    let app = sqlite_app().await;
    let document: Value = serde_json::from_str(&served_document(&app).await).unwrap();
    let documented: BTreeSet<String> = operations(&document)
        .into_iter()
        .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    let contract: BTreeSet<String> = [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/2fa/setup",
        "POST /api/v1/2fa/verify",
        "POST /api/v1/2fa/recover",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "GET /api/v1/me",
        "POST /api/v1/2fa/recovery-codes",
        "POST /api/v1/2fa/disable",
        "GET /api/v1/2fa/authenticators",
        "POST /api/v1/2fa/authenticators",
        "POST /api/v1/2fa/authenticators/{id}/confirm",
        "POST /api/v1/2fa/authenticators/{id}/remove",
        "GET /api/v1/me/events",
        "GET /api/v1/me/sessions",
        "DELETE /api/v1/me/sessions/{id}",
        "POST /api/v1/me/password",
        "POST /api/v1/me/delete",
        "GET /.well-known/jwks.json",
        "GET /healthz",
        "GET /readyz",
        "GET /openapi.json",
        "GET /docs",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, contract);
}

/// Every documented path and method is served: with no token and no body
/// it may be refused (400, 401, 422, ...) but never 404 or 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let app = sqlite_app().await;
    let document: Value = serde_json::from_str(&served_document(&app).await).unwrap();
    let all = operations(&document);
    assert!(all.len() >= 16, "{} operations", all.len());
    for (path, method, _) in all {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app.request(method.clone(), &path, None, None).await;
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but answers {status}"
        );
    }
}

/// What each operation must document, derived from its shape: a JSON body
/// can always give 400/413/415/422, a bearer token 401 (and 403 for access
/// tokens), problems come as application/problem+json with examples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_document_every_status_they_can_give() {
    let app = sqlite_app().await;
    let document: Value = serde_json::from_str(&served_document(&app).await).unwrap();
    let shared = &document["components"]["responses"];
    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in operations(&document) {
        let name = format!("{} {path}", method.to_uppercase());
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{name}: duplicate {id}"
        );
        for field in ["summary", "description"] {
            assert!(
                operation[field].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: {field}"
            );
        }
        let responses = operation["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        if !operation["requestBody"].is_null() {
            for status in ["400", "413", "415", "422"] {
                assert!(has(status), "{name}: takes a JSON body but lacks {status}");
            }
        }
        let schemes: Vec<&str> = operation["security"]
            .as_array()
            .map(|list| {
                list.iter()
                    .flat_map(|requirement| requirement.as_object().unwrap().keys())
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        if !schemes.is_empty() {
            assert!(
                has("400") && has("401"),
                "{name}: bearer token but no 400/401"
            );
        }
        if schemes.contains(&"access_token") {
            assert!(has("403"), "{name}: access token but no 403");
        }
        if path.starts_with("/api/") {
            assert!(has("500") && has("503"), "{name}: no 500/503");
        }
        for (status, response) in responses {
            let response = match response["$ref"].as_str() {
                Some(reference) => &shared[reference.trim_start_matches("#/components/responses/")],
                None => response,
            };
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name} {status}: description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                let problem = &response["content"]["application/problem+json"];
                assert_eq!(
                    problem["schema"]["$ref"], "#/components/schemas/Problem",
                    "{name} {status}: problem+json"
                );
                assert!(
                    !problem["example"].is_null() || !problem["examples"].is_null(),
                    "{name} {status}: example"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_docs_are_served_from_the_binary() {
    let app = sqlite_app().await;
    for path in [DOCS, "/docs/"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY", "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("swagger-ui"), "{path}: {page}");
    }
    let page = app.get(DOCS, None).await.text().await.unwrap();
    assert!(page.contains(r#"<base href="/docs/""#), "{page}");
    // Every asset the page loads is served locally (no CDN).
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(page.contains(asset), "page loads {asset}");
        let response = app.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let initializer = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        initializer.contains(r#""url": "/openapi.json""#),
        "{initializer}"
    );
    // Unknown asset: a problem, not an empty body.
    let response = app.get("/docs/nothing-here.js", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
