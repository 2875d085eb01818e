//! The API's own description: the OpenAPI document and the interactive
//! docs (Swagger UI, compiled into the binary, so they work offline).

use std::sync::{Arc, OnceLock};

use actix_web::dev::HttpServiceFactory;
use actix_web::{HttpResponse, get, web};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The OpenAPI document as served: pretty JSON, exactly the committed
/// `openapi/openapi.json`.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub String);

/// The OpenAPI document.
///
/// This API's OpenAPI 3.1 description, the same bytes as the committed
/// `openapi/openapi.json`.
#[utoipa::path(
    tag = "system",
    operation_id = "get_openapi_document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
            body = Object, example = json!({"openapi": "3.1.0", "info": {"title": "otpgate", "version": "0.1.0"}, "paths": {}})),
    )
)]
#[get("/openapi.json")]
pub async fn openapi_document(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// Interactive API docs.
///
/// Swagger UI for this document, served from the binary (no network
/// needed). The same page is at `/docs/`.
#[utoipa::path(
    tag = "system",
    operation_id = "get_docs",
    responses(
        (status = 200, description = "The Swagger UI page", content_type = "text/html", body = String),
    )
)]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    docs_response()
}

fn docs_response() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(docs_page())
}

fn swagger_config() -> Config<'static> {
    Config::from(OPENAPI_PATH)
        .display_operation_id(true)
        .try_it_out_enabled(true)
        .persist_authorization(false)
}

/// Swagger UI's assets under `/docs/`, reading the document from
/// [`OPENAPI_PATH`] (served by [`openapi_document`], not by Swagger UI), and
/// `/docs/` itself answered with exactly the page of [`docs`] (registered
/// first, so Swagger UI's own index does not shadow it).
pub fn swagger_ui() -> impl HttpServiceFactory {
    (
        web::resource("/docs/").get(|| async { docs_response() }),
        SwaggerUi::new("/docs/{_:.*}").config(swagger_config()),
    )
}

/// Swagger UI's `index.html` with a `<base>` so its relative asset links
/// resolve under `/docs/` when the page is loaded from `/docs`.
fn docs_page() -> String {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let index = utoipa_swagger_ui::serve("index.html", Arc::new(swagger_config()))
            .ok()
            .flatten()
            .map(|file| String::from_utf8_lossy(&file.bytes).into_owned())
            .unwrap_or_default();
        index.replacen("<head>", "<head>\n    <base href=\"/docs/\" />", 1)
    })
    .clone()
}
