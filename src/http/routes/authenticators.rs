//! Several authenticators per user: list, add, confirm, remove.

use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::code_of;
use super::two_factor::{CodeRequest, SetupResponse};
use crate::auth::authenticator::AuthenticatorName;
use crate::auth::totp::TotpCode;
use crate::http::extract::{AccessSession, Client, JsonObject};
use crate::http::openapi::{
    AccessTokenErrors, InvalidCode, InvalidToken, JsonBodyErrors, ServerErrors, TooManyAttempts,
    problem_example,
};
use crate::http::problem::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::service::{AddedAuthenticator, Authenticator, AuthenticatorInfo};

/// A confirmed authenticator (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorSummary {
    /// Stable id, for confirming and removing it.
    #[schema(format = Uuid, example = "5f0c2a9e-8b1d-4c3e-a7f4-1e2d3c4b5a69")]
    pub id: String,
    /// Its name: `default` for the one enrolled with `/2fa/setup`.
    #[schema(example = "work phone")]
    pub name: String,
    /// When it was added (RFC 3339, UTC).
    #[schema(example = "2025-01-31T09:15:00Z")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When a code of it was last accepted, or null.
    #[schema(example = "2025-02-03T18:02:30Z")]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<AuthenticatorInfo> for AuthenticatorSummary {
    fn from(info: AuthenticatorInfo) -> Self {
        Self {
            id: info.id,
            name: info.name,
            created_at: info.created_at,
            last_used_at: info.last_used_at,
        }
    }
}

/// The user's authenticators.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorsResponse {
    /// Confirmed ones only, oldest first (at most 10).
    #[schema(max_items = 10)]
    pub authenticators: Vec<AuthenticatorSummary>,
    /// Unused recovery codes.
    #[schema(minimum = 0, maximum = 10, example = 7)]
    pub recovery_codes_left: i64,
}

/// A new, unconfirmed authenticator: what an app needs to enrol it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewAuthenticatorResponse {
    /// Its id, for `/api/v1/2fa/authenticators/{id}/confirm`.
    #[schema(format = Uuid, example = "5f0c2a9e-8b1d-4c3e-a7f4-1e2d3c4b5a69")]
    pub id: String,
    /// Its name, as stored (spaces trimmed, NFKC).
    #[schema(example = "work phone")]
    pub name: String,
    #[serde(flatten)]
    pub enrolment: SetupResponse,
}

/// A name for the new authenticator and a code of an existing one.
#[derive(Debug, ToSchema)]
pub struct AddAuthenticatorRequest {
    /// 1 to 64 printable characters, unique among the user's
    /// authenticators.
    #[schema(min_length = 1, max_length = 64, example = "work phone")]
    pub name: String,
    /// A current code of an existing authenticator: exactly six ASCII
    /// digits, as a string.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// List the authenticators.
///
/// The user's confirmed authenticators, oldest first, and how many
/// recovery codes are left.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "list_authenticators",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The confirmed authenticators", body = AuthenticatorsResponse),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        ServerErrors,
    )
)]
#[get("/2fa/authenticators")]
pub async fn list(
    auth: web::Data<Authenticator>,
    session: AccessSession,
) -> Result<HttpResponse, ApiError> {
    let list = auth.list_authenticators(&session.0).await?;
    Ok(HttpResponse::Ok().json(AuthenticatorsResponse {
        authenticators: list.authenticators.into_iter().map(Into::into).collect(),
        recovery_codes_left: list.recovery_codes_left,
    }))
}

/// Add an authenticator.
///
/// Needs a current code of an existing authenticator, so that an access
/// token alone cannot enrol another phone. Returns the new secret and its
/// QR code, labelled like the first (`<Issuer>:<username>`); the
/// authenticator is unconfirmed until `/confirm` gets a code of it, within
/// the pending-token lifetime. A new request replaces an earlier
/// unconfirmed one.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "add_authenticator",
    security(("access_token" = [])),
    request_body = AddAuthenticatorRequest,
    responses(
        (status = 201, description = "A new, unconfirmed authenticator", body = NewAuthenticatorResponse),
        (status = 401, response = InvalidCode),
        (status = 409, description = "`authenticator_name_taken` (the user has one of that name) or `too_many_authenticators` (10 already)", body = Problem, content_type = PROBLEM_JSON,
            examples(
                ("authenticator_name_taken" = (value = json!(problem_example(ErrorCode::AuthenticatorNameTaken)))),
                ("too_many_authenticators" = (value = json!(problem_example(ErrorCode::TooManyAuthenticators)))),
            )),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/authenticators")]
pub async fn add(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let name = fields.parse("name", AuthenticatorName::parse);
    let code = fields.parse("code", TotpCode::parse);
    let (name, code) = fields.finish(name.zip(code))?;
    let AddedAuthenticator {
        authenticator,
        enrolment,
    } = auth
        .add_authenticator(&session.0, name, code, client.0)
        .await?;
    Ok(HttpResponse::Created().json(NewAuthenticatorResponse {
        id: authenticator.id,
        name: authenticator.name,
        enrolment: SetupResponse::from(enrolment),
    }))
}

/// Confirm an added authenticator.
///
/// A current code of the new authenticator confirms it: from then on its
/// codes sign in like any other's.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "confirm_authenticator",
    security(("access_token" = [])),
    params(("id" = String, Path, description = "The id `POST /api/v1/2fa/authenticators` returned")),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "Confirmed", body = AuthenticatorSummary),
        (status = 401, response = InvalidCode),
        (status = 404, description = "`not_found`: no unconfirmed authenticator of the user has this id (unknown, confirmed already, replaced or expired)", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::NotFound))),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/authenticators/{id}/confirm")]
pub async fn confirm(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    id: web::Path<String>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let code = code_of(body)?;
    let info = auth
        .confirm_authenticator(&session.0, id.into_inner(), code, client.0)
        .await?;
    Ok(HttpResponse::Ok().json(AuthenticatorSummary::from(info)))
}

/// Remove an authenticator.
///
/// Needs a current code of any confirmed authenticator. The last one
/// cannot be removed: turn two-factor off with `/api/v1/2fa/disable`.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "remove_authenticator",
    security(("access_token" = [])),
    params(("id" = String, Path, description = "The id of a confirmed authenticator")),
    request_body = CodeRequest,
    responses(
        (status = 204, description = "Removed: its codes are refused from now on"),
        (status = 401, response = InvalidCode),
        (status = 404, description = "`not_found`: no confirmed authenticator of the user has this id", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::NotFound))),
        (status = 409, description = "`last_authenticator`: the only one left", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::LastAuthenticator))),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/authenticators/{id}/remove")]
pub async fn remove(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    id: web::Path<String>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let code = code_of(body)?;
    auth.remove_authenticator(&session.0, id.into_inner(), code, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
