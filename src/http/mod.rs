//! The HTTP surface: routes (each registered together with its OpenAPI
//! entry), extractors, middleware and the problem+json error mapping.

pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod routes;

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};

use problem::{ApiError, ErrorCode};

/// Registers every route; utoipa-actix-web records each one's OpenAPI entry
/// at the same time, so no route exists without its description.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(
            scope::scope("/api/v1")
                .service(routes::auth::register)
                .service(routes::auth::login)
                .service(routes::auth::refresh)
                .service(routes::auth::logout)
                .service(routes::account::me)
                .service(routes::account::events)
                .service(routes::sessions::list)
                .service(routes::sessions::revoke)
                .service(routes::account::change_password)
                .service(routes::account::delete_account)
                .service(routes::two_factor::setup)
                .service(routes::two_factor::verify)
                .service(routes::two_factor::recover)
                .service(routes::two_factor::regenerate_recovery_codes)
                .service(routes::two_factor::disable)
                .service(routes::authenticators::list)
                .service(routes::authenticators::add)
                .service(routes::authenticators::confirm)
                .service(routes::authenticators::remove),
        )
        .service(routes::system::jwks)
        .service(routes::system::healthz)
        .service(routes::system::readyz)
        .service(routes::docs::openapi_document)
        .service(routes::docs::docs)
        // Swagger UI's assets under /docs/: served, but not API operations,
        // so deliberately outside the document.
        .map(|config| config.service(routes::docs::swagger_ui()));
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    api
}

/// Methods served per path, so an unmatched request can tell 404 from 405.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(BTreeMap<String, Vec<String>>);

impl RouteTable {
    pub fn from_openapi(api: &utoipa::openapi::OpenApi) -> Self {
        let mut table = BTreeMap::new();
        for (path, item) in &api.paths.paths {
            let methods = serde_json::to_value(item)
                .ok()
                .and_then(|value| value.as_object().cloned())
                .map(|object| {
                    object
                        .keys()
                        .filter(|key| {
                            ["get", "post", "put", "patch", "delete"].contains(&key.as_str())
                        })
                        .map(|key| key.to_uppercase())
                        // HEAD is served wherever GET is (middleware::head_as_get).
                        .flat_map(|method| match method.as_str() {
                            "GET" => vec![method, "HEAD".to_owned()],
                            _ => vec![method],
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            table.insert(path.clone(), methods);
        }
        Self(table)
    }
}

/// Anything no route matched: 405 with `Allow` for a known path, else 404.
pub async fn unmatched(
    req: HttpRequest,
    table: web::Data<RouteTable>,
) -> Result<actix_web::HttpResponse, ApiError> {
    Err(match table.0.get(req.path()) {
        Some(methods) if !methods.is_empty() => ApiError::method_not_allowed(methods.join(", ")),
        _ => ApiError::new(ErrorCode::NotFound),
    })
}
