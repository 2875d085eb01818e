use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::error::error_chain;
use crate::http::openapi::ServiceUnavailable;
use crate::http::problem::{ApiError, ErrorCode};
use crate::lifecycle::Lifecycle;
use crate::service::Authenticator;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness.
///
/// Answers while the process runs; touches nothing else.
#[utoipa::path(
    tag = "system",
    operation_id = "get_health",
    responses((status = 200, description = "Alive", body = Status))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness.
///
/// 200 when the database answers, 503 otherwise, and 503 from the moment
/// the instance begins shutting down (so the balancer stops sending).
#[utoipa::path(
    tag = "system",
    operation_id = "get_readiness",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[get("/readyz")]
pub async fn readyz(
    auth: web::Data<Authenticator>,
    lifecycle: web::Data<Lifecycle>,
) -> Result<HttpResponse, ApiError> {
    if lifecycle.is_draining() {
        return Err(ApiError::new(ErrorCode::ServiceUnavailable));
    }
    match auth.ping().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Status { status: "ok" })),
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "readiness check failed");
            Err(ApiError::new(ErrorCode::ServiceUnavailable))
        }
    }
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    /// Ed25519 public keys (`kty` OKP) that verify access tokens, the
    /// current one first, then any retiring one. Empty under HS256.
    #[schema(value_type = Vec<Object>, example = json!([{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "use": "sig", "alg": "EdDSA"}]))]
    pub keys: Vec<serde_json::Value>,
}

/// Public keys for verifying access tokens.
///
/// With `OTPGATE_JWT_ALG=EdDSA`, the keys that verify access tokens, so a
/// resource server needs no shared secret; `{"keys": []}` under HS256.
#[utoipa::path(
    tag = "system",
    operation_id = "get_jwks",
    responses((status = 200, description = "The key set", body = JwkSet))
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(auth: web::Data<Authenticator>) -> HttpResponse {
    HttpResponse::Ok().json(JwkSet {
        keys: auth.tokens().jwks().to_vec(),
    })
}
