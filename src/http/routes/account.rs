use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::User;
use crate::auth::Authenticator;
use crate::http::extract::AccessSession;
use crate::http::problem::{ApiError, Problem};

/// The signed-in user.
///
/// Needs a full access token; a pending-2FA token gets 403.
#[utoipa::path(
    tag = "account",
    operation_id = "get_current_user",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The current user", body = User),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`two_factor_required`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/me")]
pub async fn me(session: AccessSession) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(User::from(session.0.account)))
}

/// One entry of the security log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvent {
    /// registered, login_succeeded, login_failed, two_factor_enabled,
    /// otp_failed, recovery_code_used, recovery_codes_regenerated,
    /// two_factor_disabled, logout, refresh_reuse_detected or locked_out.
    #[serde(rename = "type")]
    #[schema(example = "login_succeeded")]
    pub event_type: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Client address, when known.
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    /// Client User-Agent, when sent (at most 256 characters).
    pub user_agent: Option<String>,
}

/// The security log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsResponse {
    /// Newest first, at most 50.
    pub events: Vec<SecurityEvent>,
}

/// The user's own security log.
///
/// The latest 50 security events of the signed-in user, newest first.
#[utoipa::path(
    tag = "account",
    operation_id = "list_security_events",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "Security events", body = EventsResponse),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`two_factor_required`", body = Problem, content_type = "application/problem+json"),
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
