use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::User;
use crate::http::extract::AccessSession;
use crate::http::openapi::{AccessTokenErrors, InvalidToken, ServerErrors};
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
    Ok(HttpResponse::Ok().json(User::from(session.0.account)))
}

/// One entry of the security log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvent {
    /// What happened: `registered`, `login_succeeded`, `login_failed`,
    /// `two_factor_enabled`, `otp_failed`, `recovery_code_used`,
    /// `recovery_codes_regenerated`, `two_factor_disabled`, `logout`,
    /// `refresh_reuse_detected`, `locked_out`, `authenticator_added` or
    /// `authenticator_removed` (more may be added).
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
