use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{PendingTokenResponse, TokenResponse, User};
use crate::auth::FieldError;
use crate::auth::opaque_token::{DeviceToken, RefreshToken};
use crate::auth::password::Password;
use crate::auth::username::Username;
use crate::http::extract::{AccessSession, Client, JsonObject};
use crate::http::openapi::{
    AccessTokenErrors, InvalidToken, JsonBodyErrors, ServerErrors, TooManyAttempts,
    problem_example, validation_failed_example,
};
use crate::http::problem::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::service::{Authenticator, LogoutScope};

/// A new account's username and password.
#[derive(Debug, ToSchema)]
pub struct RegisterRequest {
    /// 3 to 64 characters after trimming and Unicode NFKC normalisation;
    /// compared case-insensitively. Letters and digits of any script, ASCII
    /// punctuation (`@` included) and single inner spaces; each
    /// space-separated part must pass RFC 8265 (PRECIS
    /// UsernameCaseMapped), so control, format and invisible characters and
    /// symbols outside ASCII are refused.
    #[schema(min_length = 3, max_length = 64, example = "alice@example.org")]
    pub username: String,
    /// 8 to 128 characters after NFKC; not the username and not a common
    /// password (both compared case-insensitively).
    #[schema(
        min_length = 8,
        max_length = 128,
        example = "correct horse battery staple"
    )]
    pub password: String,
}

/// The new account and its first pending token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "user": {
        "id": "0b9f1d4e-3c1a-4f7e-9a53-2d1c8e4b7a10",
        "username": "alice@example.org",
        "two_factor_enabled": false,
        "created_at": "2025-01-31T09:15:00Z"
    },
    "pending_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6InBlbmRpbmcrand0In0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 300,
    "next_step": "setup_2fa"
}))]
pub struct RegisterResponse {
    /// The account just created (`two_factor_enabled` is false).
    pub user: User,
    #[serde(flatten)]
    pub pending: PendingTokenResponse,
}

/// Create an account.
///
/// Registers a username and password and returns a pending-2FA token whose
/// `next_step` is always `setup_2fa`. No access token is issued until a
/// TOTP code has been verified.
#[utoipa::path(
    tag = "auth",
    operation_id = "register_user",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = RegisterResponse),
        (status = 409, description = "`username_taken`: the name (after trimming, NFKC and case folding) is already registered", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::UsernameTaken))),
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
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

/// A username and password to check.
#[derive(Debug, ToSchema)]
pub struct LoginRequest {
    /// As registered; trimmed, NFKC-normalised and compared
    /// case-insensitively.
    #[schema(min_length = 1, example = "alice@example.org")]
    pub username: String,
    #[schema(min_length = 1, example = "correct horse battery staple")]
    pub password: String,
    /// The `device_token` of an earlier token response for this user, if
    /// the client kept one: its login is then throttled only on this
    /// device's own failures, so an attacker who spends the username's
    /// hourly cap cannot lock the owner out. An unknown, expired, revoked
    /// or other user's device token is ignored as if absent.
    #[schema(example = "Zp4n0x7kq1T3mHn0b2yqG6cX8cE4Fh7V0pW9sK2aJd5")]
    pub device_token: Option<String>,
}

/// Check a password.
///
/// Returns a pending-2FA token; `next_step` says whether the account must
/// enrol (`setup_2fa`) or present a code (`verify_2fa`). An unknown username
/// and a wrong password get the same answer after the same work.
#[utoipa::path(
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Password accepted", body = PendingTokenResponse),
        (status = 401, description = "`invalid_credentials`: unknown username or wrong password (one answer for both)", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::InvalidCredentials))),
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
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
    // A device token of the wrong shape is as unknown as any other: ignored.
    let device = fields
        .optional_text("device_token")
        .and_then(|raw| DeviceToken::parse(&raw).ok());
    let (username, password) = fields.finish(username.zip(password))?;
    let grant = auth
        .login(&username, Password::offered(&password), device, client.0)
        .await?;
    Ok(HttpResponse::Ok().json(PendingTokenResponse::from(grant)))
}

/// Which sessions `POST /auth/logout` ends.
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LogoutScopeName {
    /// The caller's session (the default).
    Local,
    /// Every other session of the user; the caller's lives on.
    Others,
    /// Every session of the user.
    Global,
}

/// The `scope` of the query string: absent is `local`; anything but one
/// `local`, `others` or `global` is 422.
fn logout_scope(query: &str) -> Result<LogoutScope, ApiError> {
    let invalid = || {
        ApiError::validation(vec![FieldError::new(
            "scope",
            "must be one of local, others, global",
        )])
    };
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query).map_err(|_| invalid())?;
    let mut scopes = pairs.0.into_iter().filter(|(name, _)| name == "scope");
    let scope = match (scopes.next(), scopes.next()) {
        (None, _) => return Ok(LogoutScope::Local),
        (Some((_, scope)), None) => scope,
        (Some(_), Some(_)) => return Err(invalid()),
    };
    match scope.as_str() {
        "local" => Ok(LogoutScope::Local),
        "others" => Ok(LogoutScope::Others),
        "global" => Ok(LogoutScope::Global),
        _ => Err(invalid()),
    }
}

/// End sessions.
///
/// `scope=local` (the default) revokes the session of the access token;
/// `others`, every other session of the user; `global`, all of them. A
/// revoked session's access and refresh tokens are refused from then on.
/// The security log says `logout` for the caller's session and
/// `session_revoked` when other sessions were ended.
#[utoipa::path(
    tag = "auth",
    operation_id = "logout",
    security(("access_token" = [])),
    params(
        ("scope" = inline(Option<LogoutScopeName>), Query, description = "Which sessions to end: `local` (default), `others` or `global`"),
    ),
    responses(
        (status = 204, description = "Sessions ended"),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        (status = 422, description = "`validation_failed`: `scope` is not `local`, `others` or `global`", body = Problem, content_type = PROBLEM_JSON,
            example = json!(validation_failed_example("scope", "must be one of local, others, global"))),
        ServerErrors,
    )
)]
#[post("/auth/logout")]
pub async fn logout(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let scope = logout_scope(req.query_string())?;
    auth.logout(&session.0, scope, client.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A refresh token.
#[derive(Debug, ToSchema)]
pub struct RefreshRequest {
    /// The `refresh_token` of the last token response.
    #[schema(
        min_length = 1,
        example = "q1T3mHn0b2yqG6cX8cE4Fh7V0pW9sK2aJd5uR1lZ8eA"
    )]
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
        (status = 200, description = "New tokens (no `recovery_codes`)", body = TokenResponse),
        (status = 401, description = "`invalid_token`: the refresh token is unknown, expired, already rotated or revoked", body = Problem, content_type = PROBLEM_JSON,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"invalid_token\"`")),
            example = json!(problem_example(ErrorCode::InvalidToken))),
        (status = 429, response = TooManyAttempts),
        JsonBodyErrors,
        ServerErrors,
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
