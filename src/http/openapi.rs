//! The OpenAPI document's frame: its description, the bearer schemes, and
//! the problem responses that operations share. Each operation's own entry
//! stands on its route.

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

use super::extract::body_limit_in_kib;
use super::problem::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::auth::FieldError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpgate",
        description = "Password + TOTP two-factor authentication as a JSON API. \
            Register or log in to get a pending-2FA token, enrol with `/2fa/setup`, \
            exchange a code at `/2fa/verify` for an access token. Errors are RFC 9457 \
            `application/problem+json` with a stable `code`.",
        license(name = "MIT", identifier = "MIT")
    ),
    modifiers(&BearerSchemes),
    components(responses(
        BadRequest,
        InvalidToken,
        InvalidCode,
        TwoFactorRequired,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyAttempts,
        Internal,
        ServiceUnavailable,
        WrongPasswordOrCode,
    )),
    tags(
        (name = "auth", description = "Registration, password login and sessions"),
        (name = "two-factor", description = "TOTP enrolment and verification"),
        (name = "account", description = "The signed-in user"),
        (name = "system", description = "Health, readiness, token keys and this documentation")
    )
)]
pub struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.bearer_format = Some("JWT".into());
            http.description = Some(description.into());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "pending_token",
            scheme(
                "Pending-2FA JWT from register or login: good only for the /api/v1/2fa \
                 steps, single-use, 5 minutes.",
            ),
        );
        components.add_security_scheme(
            "access_token",
            scheme("Access JWT issued after a verified second factor (aal2), 15 minutes."),
        );
    }
}

/// The problem `code` answers with when nothing more specific is said: the
/// example of a response that can carry it.
pub fn problem_example(code: ErrorCode) -> Problem {
    ApiError::new(code).problem()
}

/// A `validation_failed` problem with one invalid field.
pub fn validation_failed_example(field: &str, message: &str) -> Problem {
    ApiError::validation(vec![FieldError::new(field, message)]).problem()
}

// The problem responses several operations share, declared once under
// `components/responses`. Each type is named after its `ErrorCode` variant,
// which is how `shared` refers to it.

/// `bad_request`: the body is missing or is not JSON, or more than one
/// Authorization header was sent.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    example = json!(ApiError::new(ErrorCode::BadRequest)
        .with_detail("The body is not valid JSON: expected value at line 1 column 1.")
        .problem())
)]
pub struct BadRequest(pub Problem);

/// `invalid_token`: the bearer token is missing, malformed, badly signed,
/// expired, revoked, or of the wrong kind.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\"`, with `error=\"invalid_token\"` when a token was sent (RFC 6750)")),
    example = json!(problem_example(ErrorCode::InvalidToken))
)]
pub struct InvalidToken(pub Problem);

/// `invalid_otp` (a wrong or replayed code) or `invalid_token`: what an
/// operation that takes an access token and a code answers with.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"invalid_token\"` for `invalid_token`")),
    examples(
        ("invalid_otp" = (value = json!(problem_example(ErrorCode::InvalidOtp)))),
        ("invalid_token" = (value = json!(problem_example(ErrorCode::InvalidToken)))),
    )
)]
pub struct InvalidCode(pub Problem);

/// `two_factor_required`: a pending-2FA token was sent where a full access
/// token is needed.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"insufficient_scope\", ...`")),
    example = json!(problem_example(ErrorCode::TwoFactorRequired))
)]
pub struct TwoFactorRequired(pub Problem);

/// `payload_too_large`: the body is over [`BODY_LIMIT`](super::extract::BODY_LIMIT).
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    description = format!(
        "`payload_too_large`: the body (declared or as sent) is over {}.",
        body_limit_in_kib()
    ),
    example = json!(problem_example(ErrorCode::PayloadTooLarge))
)]
pub struct PayloadTooLarge(pub Problem);

/// `unsupported_media_type`: the body is not sent as `application/json`.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    example = json!(problem_example(ErrorCode::UnsupportedMediaType))
)]
pub struct UnsupportedMediaType(pub Problem);

/// `validation_failed`: well-formed JSON that is not an object, or whose
/// fields are missing, of the wrong type or invalid; one `errors` entry per
/// field.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    example = json!(validation_failed_example("code", "must be exactly 6 digits (0-9)"))
)]
pub struct ValidationFailed(pub Problem);

/// `too_many_attempts`: throttled; retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again")),
    example = json!(problem_example(ErrorCode::TooManyAttempts))
)]
pub struct TooManyAttempts(pub Problem);

/// `invalid_credentials`, `invalid_otp` or `invalid_token`: what an
/// operation that asks for the password and a code again answers with 401.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    description = "`invalid_credentials` (wrong password), `invalid_otp` (wrong or replayed code) or `invalid_token`",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"invalid_token\"` for `invalid_token`")),
    examples(
        ("invalid_credentials" = (value = json!(problem_example(ErrorCode::InvalidCredentials)))),
        ("invalid_otp" = (value = json!(problem_example(ErrorCode::InvalidOtp)))),
        ("invalid_token" = (value = json!(problem_example(ErrorCode::InvalidToken)))),
    )
)]
pub struct WrongPasswordOrCode(pub Problem);

/// `internal`: an unexpected server error (no detail is leaked).
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    example = json!(problem_example(ErrorCode::Internal))
)]
pub struct Internal(pub Problem);

/// `service_unavailable`: the database cannot be reached.
#[derive(ToResponse)]
#[response(
    content_type = PROBLEM_JSON,
    example = json!(problem_example(ErrorCode::ServiceUnavailable))
)]
pub struct ServiceUnavailable(pub Problem);

/// References to the shared responses of `codes`, each under its status.
fn shared(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    codes
        .iter()
        .map(|code| {
            let name = format!("{code:?}");
            (
                code.status().as_str().to_owned(),
                Ref::from_response_name(name).into(),
            )
        })
        .collect()
}

/// 400, 413, 415 and 422: what any operation that reads a JSON body can
/// answer before it looks at the fields' meaning.
pub struct JsonBodyErrors;

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        shared(&[
            ErrorCode::BadRequest,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::ValidationFailed,
        ])
    }
}

/// 400 and 403: what any operation that needs an access token can answer
/// (its 401 is its own, as some also refuse a wrong code or password).
pub struct AccessTokenErrors;

impl IntoResponses for AccessTokenErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        shared(&[ErrorCode::BadRequest, ErrorCode::TwoFactorRequired])
    }
}

/// 500 and 503: what any operation that touches the database can answer.
pub struct ServerErrors;

impl IntoResponses for ServerErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        shared(&[ErrorCode::Internal, ErrorCode::ServiceUnavailable])
    }
}

/// The document as served and committed: pretty JSON with the response
/// schemas closed.
pub fn document_json(api: &utoipa::openapi::OpenApi) -> String {
    let mut document = serde_json::to_value(api).unwrap_or_default();
    close_response_schemas(&mut document);
    let mut json = serde_json::to_string_pretty(&document).unwrap_or_default();
    json.push('\n');
    json
}

/// Marks every response schema closed, so that a client (and schemathesis)
/// can treat a field the document does not name as an error: plain objects
/// get `additionalProperties: false`, compositions `unevaluatedProperties:
/// false`. Request schemas stay open (the server ignores fields it does not
/// know), and so do the parts of a composition, which would each refuse the
/// other parts' fields.
fn close_response_schemas(document: &mut Value) {
    let mut requests = Vec::new();
    let mut parts = Vec::new();
    collect_refs(document, false, &mut requests, &mut parts);
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        if requests.contains(name) || parts.contains(name) {
            continue;
        }
        let Some(schema) = schema.as_object_mut() else {
            continue;
        };
        if schema.contains_key("allOf") {
            schema.insert("unevaluatedProperties".into(), false.into());
        } else if schema.get("type").and_then(Value::as_str) == Some("object") {
            schema.insert("additionalProperties".into(), false.into());
        }
    }
}

/// Collects the component schemas referenced anywhere in a request body,
/// and those that are direct members of an `allOf`.
fn collect_refs(
    value: &Value,
    in_request: bool,
    requests: &mut Vec<String>,
    parts: &mut Vec<String>,
) {
    let schema_name = |reference: &Value| {
        reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned)
    };
    match value {
        Value::Object(object) => {
            for (member, child) in object {
                if member == "$ref"
                    && in_request
                    && let Some(name) = schema_name(child)
                {
                    requests.push(name);
                }
                if member == "allOf"
                    && let Some(items) = child.as_array()
                {
                    parts.extend(
                        items
                            .iter()
                            .filter_map(|item| schema_name(item.get("$ref")?)),
                    );
                }
                collect_refs(
                    child,
                    in_request || member == "requestBody",
                    requests,
                    parts,
                );
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_refs(item, in_request, requests, parts);
            }
        }
        _ => {}
    }
}
