use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authenticator;
use crate::http::problem::{ApiError, ErrorCode, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
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
/// 200 when the database answers, 503 otherwise.
#[utoipa::path(
    tag = "system",
    operation_id = "get_readiness",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(auth: web::Data<Authenticator>) -> Result<HttpResponse, ApiError> {
    match auth.store().ping().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Status { status: "ok" })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(ErrorCode::ServiceUnavailable))
        }
    }
}
