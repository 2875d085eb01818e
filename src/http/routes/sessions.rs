//! The signed-in user's sessions: list them, end one.

use actix_web::{HttpResponse, delete, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::extract::{AccessSession, Client};
use crate::http::openapi::{AccessTokenErrors, InvalidToken, ServerErrors, problem_example};
use crate::http::problem::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::service::{Authenticator, SessionSummary};

/// One live session of the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// The session id (the access token's `sid`).
    #[schema(format = Uuid, example = "5d0c2f0e-8a7b-4c1d-9e3f-6a2b1c0d9e8f")]
    pub id: String,
    /// When its second factor was passed (RFC 3339, UTC).
    #[schema(example = "2025-01-31T09:15:00Z")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Its last refresh, or null if it was never refreshed.
    #[schema(example = "2025-01-31T10:02:00Z")]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it ends, whatever the refreshes.
    #[schema(example = "2025-03-02T09:15:00Z")]
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Address of the client that opened it, or null when unknown.
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    /// User-Agent of the client that opened it (at most 256 characters),
    /// or null when not sent.
    #[schema(example = "Mozilla/5.0")]
    pub user_agent: Option<String>,
    /// RFC 8176 methods of its sign-in: `["pwd","otp"]` or
    /// `["pwd","recovery_code"]`.
    #[schema(example = json!(["pwd", "otp"]))]
    pub amr: Vec<String>,
    /// Whether this is the session of the access token making the request.
    pub current: bool,
}

impl From<SessionSummary> for SessionInfo {
    fn from(summary: SessionSummary) -> Self {
        Self {
            id: summary.id,
            created_at: summary.created_at,
            last_used_at: summary.last_used_at,
            expires_at: summary.expires_at,
            ip: summary.ip,
            user_agent: summary.user_agent,
            amr: summary.amr,
            current: summary.current,
        }
    }
}

/// The user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsResponse {
    /// Newest first; the caller's own has `current: true`.
    pub sessions: Vec<SessionInfo>,
}

/// List the user's sessions.
///
/// Every live session of the signed-in user (not revoked, not expired),
/// newest first. `last_used_at` changes at each refresh.
#[utoipa::path(
    tag = "account",
    operation_id = "list_sessions",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "Live sessions, newest first", body = SessionsResponse),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        ServerErrors,
    )
)]
#[get("/me/sessions")]
pub async fn list(
    auth: web::Data<Authenticator>,
    session: AccessSession,
) -> Result<HttpResponse, ApiError> {
    let sessions = auth
        .sessions(&session.0)
        .await?
        .into_iter()
        .map(SessionInfo::from)
        .collect();
    Ok(HttpResponse::Ok().json(SessionsResponse { sessions }))
}

/// End one session.
///
/// Revokes a live session of the signed-in user (the caller's own
/// included): its access and refresh tokens are refused from then on.
#[utoipa::path(
    tag = "account",
    operation_id = "revoke_session",
    security(("access_token" = [])),
    params(("id" = String, Path, description = "A session id from `GET /api/v1/me/sessions`")),
    responses(
        (status = 204, description = "Session revoked"),
        (status = 401, response = InvalidToken),
        AccessTokenErrors,
        (status = 404, description = "`not_found`: not a live session of the user", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::NotFound))),
        ServerErrors,
    )
)]
#[delete("/me/sessions/{id}")]
pub async fn revoke(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !auth.revoke_session(&session.0, &id, client.0).await? {
        return Err(
            ApiError::new(ErrorCode::NotFound).with_detail("No live session of yours has that id.")
        );
    }
    Ok(HttpResponse::NoContent().finish())
}
