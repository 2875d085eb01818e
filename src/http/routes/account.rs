use actix_web::{HttpResponse, get};

use super::User;
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
