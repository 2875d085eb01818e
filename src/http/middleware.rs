//! Cross-cutting behaviour of every response.

use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, ResponseError};
use tracing::Instrument;
use uuid::Uuid;

use super::extract::BODY_LIMIT;
use super::problem::{ApiError, ErrorCode, PROBLEM_JSON};

/// Headers every response carries, errors included.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        // Set here rather than by actix-cors, whose order varies per worker.
        .add((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "WWW-Authenticate, Retry-After, X-Request-Id",
        ))
}

/// One log line per request (method, path, status, latency, request id);
/// the id is echoed in `X-Request-Id`. Never the body, query or headers.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = Uuid::new_v4();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let span = tracing::info_span!("request", %request_id);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    span.in_scope(|| tracing::info!(%method, %path, status, latency_ms, "request"));
    result.map(|mut response| {
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        response
    })
}

/// Serves HEAD wherever GET is served (RFC 9110 9.3.2): the request is
/// routed as GET, and actix's encoder, which remembers it was HEAD, sends
/// the headers (`Content-Length` included) without the body.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}

/// Refuses a declared body over the limit before anything reads it, on
/// every route (chunked bodies are cut off by the JSON extractor).
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        let response = ApiError::new(ErrorCode::PayloadTooLarge).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Turns any error response not already problem+json (from actix itself or
/// a middleware such as CORS) into one, so no client ever parses HTML or an
/// empty body.
pub async fn problem_fallback(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let response = match next.call(req).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.as_response_error().status_code();
            return Err(actix_web::error::InternalError::from_response(
                "",
                ApiError::new(ErrorCode::for_status(status)).error_response(),
            )
            .into());
        }
    };
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if status.as_u16() < 400 || is_problem {
        return Ok(response.map_into_left_body());
    }
    let (request, original) = response.into_parts();
    let mut replacement = ApiError::new(ErrorCode::for_status(status)).error_response();
    // Keep what the original said about methods and CORS.
    for name in [header::ALLOW, header::VARY] {
        if let Some(value) = original.headers().get(&name) {
            replacement.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ServiceResponse::new(request, replacement).map_into_right_body())
}
