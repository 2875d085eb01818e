use actix_web::{HttpResponse, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{PendingTokenResponse, TokenResponse, User};
use crate::auth::Authenticator;
use crate::auth::password::Password;
use crate::auth::refresh::RefreshToken;
use crate::auth::username::Username;
use crate::http::extract::{AccessSession, Client, JsonObject};
use crate::http::problem::{ApiError, ErrorCode, Problem};

/// Username and password. (Describes the body; parsing goes through `Fields`.)
#[derive(Debug, ToSchema)]
pub struct Credentials {
    /// 3 to 64 characters after trimming and NFKC; compared case-insensitively.
    #[schema(min_length = 3, max_length = 64, example = "alice@example.org")]
    pub username: String,
    /// 8 to 128 characters after NFKC; not the username, not a common password.
    #[schema(
        min_length = 8,
        max_length = 128,
        example = "correct horse battery staple"
    )]
    pub password: String,
}

/// The new account and its first pending token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: User,
    #[serde(flatten)]
    pub pending: PendingTokenResponse,
}

/// Create an account.
///
/// Registers a username and password and returns a pending-2FA token whose
/// next step is always `setup_2fa`. No access token is issued until a TOTP
/// code has been verified.
#[utoipa::path(
    tag = "auth",
    operation_id = "register_user",
    request_body = Credentials,
    responses(
        (status = 201, description = "Account created", body = RegisterResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/register")]
pub async fn register(
    auth: web::Data<Authenticator>,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let username = fields.parse("username", Username::parse);
    let password = fields.parse("password", |raw| Password::new_for(raw, username.as_ref()));
    let (username, password) = fields.finish(username.zip(password))?;
    let registration = auth.register(username, password, client.0).await?;
    Ok(HttpResponse::Created().json(RegisterResponse {
        user: registration.account.into(),
        pending: registration.grant.into(),
    }))
}

/// Check a password.
///
/// Returns a pending-2FA token; `next_step` says whether the account must
/// enrol (`setup_2fa`) or present a code (`verify_2fa`). An unknown username
/// and a wrong password get the same answer after the same work.
#[utoipa::path(
    tag = "auth",
    operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, description = "Password accepted", body = PendingTokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub async fn login(
    auth: web::Data<Authenticator>,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let username = fields.text("username");
    let password = fields.text("password");
    let (username, password) = fields.finish(username.zip(password))?;
    let grant = auth
        .login(&username, Password::offered(&password), client.0)
        .await?;
    Ok(HttpResponse::Ok().json(PendingTokenResponse::from(grant)))
}

/// End the session.
///
/// Revokes the session of the access token: it and the session's refresh
/// token are refused from then on.
#[utoipa::path(
    tag = "auth",
    operation_id = "logout",
    security(("access_token" = [])),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`two_factor_required`: a pending token was sent", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/logout")]
pub async fn logout(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    auth.logout(&session.0, client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A refresh token.
#[derive(Debug, ToSchema)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last token response.
    pub refresh_token: String,
}

/// Swap a refresh token for new tokens.
///
/// Rotates the refresh token: the one presented dies and a new access +
/// refresh pair is returned, keeping the session's `amr`. Presenting an
/// already-rotated refresh token revokes the whole session.
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh_tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`: unknown, expired, rotated or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    auth: web::Data<Authenticator>,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let token = fields.text("refresh_token");
    let token = fields.finish(token)?;
    // A string of the wrong shape is as unknown as any other.
    let token = RefreshToken::parse(&token).map_err(|_| ApiError::new(ErrorCode::InvalidToken))?;
    let grant = auth.refresh(token, client.0).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(grant)))
}
