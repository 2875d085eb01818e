use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{User, password_and_code};
use crate::auth::password::Password;
use crate::auth::totp::TotpCode;
use crate::auth::username::Username;
use crate::http::extract::{AccessSession, Client, JsonObject};
use crate::http::openapi::{
    AccessTokenErrors, InvalidToken, JsonBodyErrors, ServerErrors, TooManyAttempts,
    WrongPasswordOrCode,
};
use crate::http::problem::ApiError;
use crate::service::Authenticator;

/// The signed-in user.
///
/// The account of the access token's session. Needs a full access token; a
/// pending-2FA token gets 403 `two_factor_required`.
#[utoipa::path(
    tag = "account",
    operation_id = "get_current_user",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The current user", body = User),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        ServerErrors,
    )
)]
#[get("/me")]
pub async fn me(session: AccessSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(User::from(session.0.account.clone())))
}

/// One entry of the security log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvent {
    /// What happened: `registered`, `login_succeeded`, `login_failed`,
    /// `two_factor_enabled`, `otp_failed`, `recovery_code_used`,
    /// `recovery_codes_regenerated`, `two_factor_disabled`, `logout`,
    /// `refresh_reuse_detected`, `locked_out`, `password_changed`,
    /// `session_revoked`, `authenticator_added` or `authenticator_removed`
    /// (more may be added).
    #[serde(rename = "type")]
    #[schema(example = "login_succeeded")]
    pub event_type: String,
    /// When it happened (RFC 3339, UTC).
    #[schema(example = "2025-01-31T09:15:00Z")]
    pub at: chrono::DateTime<chrono::Utc>,
    /// Client address, or null when unknown.
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    /// Client User-Agent (at most 256 characters), or null when not sent.
    #[schema(example = "Mozilla/5.0")]
    pub user_agent: Option<String>,
}

/// The security log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsResponse {
    /// Newest first, at most 50.
    #[schema(max_items = 50)]
    pub events: Vec<SecurityEvent>,
}

/// The user's own security log.
///
/// The latest 50 security events of the signed-in user, newest first:
/// registrations, logins, second-factor successes and failures, recovery
/// code use, logouts, refresh-token reuse and lockouts.
#[utoipa::path(
    tag = "account",
    operation_id = "list_security_events",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "Security events, newest first", body = EventsResponse),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        ServerErrors,
    )
)]
#[get("/me/events")]
pub async fn events(
    auth: web::Data<Authenticator>,
    session: AccessSession,
) -> Result<HttpResponse, ApiError> {
    let events = auth
        .security_log(&session.0)
        .await?
        .into_iter()
        .map(|entry| SecurityEvent {
            event_type: entry.event_type,
            at: entry.at,
            ip: entry.ip,
            user_agent: entry.user_agent,
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventsResponse { events }))
}

/// The current password, a current code and the new password.
#[derive(Debug, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, example = "correct horse battery staple")]
    pub current_password: String,
    /// 8 to 128 characters after NFKC; not the username and not a common
    /// password (both compared case-insensitively).
    #[schema(
        min_length = 8,
        max_length = 128,
        example = "staple battery horse correct"
    )]
    pub new_password: String,
    /// A current 6-digit TOTP code.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// Change the password.
///
/// Needs the current password and a current code (checked in that order,
/// each throttled: once the session's password streak or the account's
/// second factor is locked, every request gets 429). The caller's session
/// lives on; every other session, every device token and every pending
/// token of the user dies.
#[utoipa::path(
    tag = "account",
    operation_id = "change_password",
    security(("access_token" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; every other session and every device token revoked"),
        (status = 401, response = WrongPasswordOrCode),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/me/password")]
pub async fn change_password(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let username = Username::parse(&session.0.account.username).ok();
    let mut fields = body.into_fields();
    let current = fields.text("current_password");
    let new = fields.parse("new_password", |raw| {
        Password::new_for(raw, username.as_ref())
    });
    let code = fields.parse("code", TotpCode::parse);
    let ((current, new), code) = fields.finish(current.zip(new).zip(code))?;
    auth.change_password(&session.0, Password::offered(&current), new, code, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The password and a current code, to delete the account.
#[derive(Debug, ToSchema)]
pub struct DeleteAccountRequest {
    #[schema(min_length = 1, example = "correct horse battery staple")]
    pub password: String,
    /// A current 6-digit TOTP code.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// Delete the account.
///
/// Needs the password and a current code (throttled as for a password
/// change). The user and everything of theirs (sessions, refresh and device
/// tokens, the TOTP secret, recovery codes, the security log) are erased in
/// one step; every token of theirs is refused from then on and the username
/// can be registered again.
#[utoipa::path(
    tag = "account",
    operation_id = "delete_account",
    security(("access_token" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Account deleted"),
        (status = 401, response = WrongPasswordOrCode),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/me/delete")]
pub async fn delete_account(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let (password, code) = password_and_code(body)?;
    auth.delete_account(&session.0, password, code, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
