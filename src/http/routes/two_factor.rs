use actix_web::{HttpResponse, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use utoipa::ToSchema;

use super::TokenResponse;
use crate::auth::Authenticator;
use crate::auth::password::Password;
use crate::auth::recovery::RecoveryCode;
use crate::auth::totp::{self, TotpCode};
use crate::http::extract::{AccessSession, Client, JsonObject, PendingToken};
use crate::http::problem::{ApiError, Problem};

/// Everything an authenticator app needs to enrol.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResponse {
    /// The TOTP secret, base32 without padding (160 bits).
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    /// Google Authenticator key URI; the QR code encodes exactly this.
    #[schema(
        example = "otpauth://totp/otpgate:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=otpgate&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_uri: String,
    /// The QR code as a PNG, bare base64.
    pub qr_png_base64: String,
    /// The same PNG as a `data:image/png;base64,...` URI for an `<img src>`.
    pub qr_data_uri: String,
    #[schema(example = "otpgate")]
    pub issuer: String,
    #[schema(example = "alice")]
    pub account_name: String,
    #[schema(example = "SHA1")]
    pub algorithm: &'static str,
    #[schema(example = 6)]
    pub digits: u32,
    #[schema(example = 30)]
    pub period: u64,
}

/// A six-digit TOTP code.
#[derive(Debug, ToSchema)]
pub struct CodeRequest {
    /// Exactly six ASCII digits, as a string.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// Start TOTP enrolment.
///
/// Returns the secret, the otpauth URI and a QR code of it. The secret is
/// created on the first call and returned unchanged by later calls until a
/// code has been verified; after that it is never shown again.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "setup_two_factor",
    security(("pending_token" = [])),
    responses(
        (status = 200, description = "Enrolment data", body = SetupResponse),
        (status = 401, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`two_factor_already_enabled`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/2fa/setup")]
pub async fn setup(
    auth: web::Data<Authenticator>,
    pending: PendingToken,
) -> Result<HttpResponse, ApiError> {
    let enrolment = auth.setup(&pending.0).await?;
    let png = STANDARD.encode(&enrolment.qr_png);
    Ok(HttpResponse::Ok().json(SetupResponse {
        secret: enrolment.secret.to_base32(),
        otpauth_uri: enrolment.otpauth_uri,
        qr_data_uri: format!("data:image/png;base64,{png}"),
        qr_png_base64: png,
        issuer: enrolment.issuer,
        account_name: enrolment.account_name,
        algorithm: totp::ALGORITHM,
        digits: totp::DIGITS,
        period: totp::PERIOD_SECS,
    }))
}

/// Verify a TOTP code.
///
/// Spends the pending token and opens a session. Accepts the current 30 s
/// step and one either side; a code whose step is not newer than the last
/// one accepted is refused like a wrong code. Five wrong codes kill the
/// pending token.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "verify_two_factor",
    security(("pending_token" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "Second factor accepted", body = TokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_otp` or `invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`two_factor_setup_required`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/2fa/verify")]
pub async fn verify(
    auth: web::Data<Authenticator>,
    pending: PendingToken,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let code = fields.parse("code", TotpCode::parse);
    let code = fields.finish(code)?;
    let grant = auth.verify(&pending.0, code, client.0).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(grant)))
}

/// A recovery code.
#[derive(Debug, ToSchema)]
pub struct RecoveryRequest {
    /// One of the codes shown at enrolment, `xxxxx-xxxxx`; case and the
    /// dash do not matter.
    #[schema(example = "7k3md-x9q2p")]
    pub recovery_code: String,
}

/// Sign in with a recovery code.
///
/// For a user without their authenticator: spends one recovery code and the
/// pending token, and opens a session whose `amr` is
/// `["pwd","recovery_code"]`. Wrong codes count toward the pending token's
/// limit of five.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "recover_two_factor",
    security(("pending_token" = [])),
    request_body = RecoveryRequest,
    responses(
        (status = 200, description = "Recovery code accepted", body = TokenResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_recovery_code` or `invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/2fa/recover")]
pub async fn recover(
    auth: web::Data<Authenticator>,
    pending: PendingToken,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let code = fields.parse("recovery_code", RecoveryCode::parse);
    let code = fields.finish(code)?;
    let grant = auth.recover(&pending.0, code, client.0).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(grant)))
}

/// Fresh recovery codes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten new single-use codes; every older code is dead.
    #[schema(example = json!(["7k3md-x9q2p", "..."]))]
    pub recovery_codes: Vec<String>,
}

/// Replace the recovery codes.
///
/// Given a current TOTP code, issues ten new recovery codes; the old ones
/// stop working.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "regenerate_recovery_codes",
    security(("access_token" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "New recovery codes", body = RecoveryCodesResponse),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_otp` or `invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`two_factor_required`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/2fa/recovery-codes")]
pub async fn regenerate_recovery_codes(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let code = fields.parse("code", TotpCode::parse);
    let code = fields.finish(code)?;
    let recovery_codes = auth
        .regenerate_recovery_codes(&session.0, code, client.0)
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

/// Password and a current code.
#[derive(Debug, ToSchema)]
pub struct DisableRequest {
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub code: String,
}

/// Turn two-factor off.
///
/// Needs the password and a current TOTP code. Erases the secret and the
/// recovery codes and revokes every session of the user; the next login
/// answers `next_step: "setup_2fa"`.
#[utoipa::path(
    tag = "two-factor",
    operation_id = "disable_two_factor",
    security(("access_token" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Two-factor disabled; all sessions revoked"),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`, `invalid_otp` or `invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`two_factor_required`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/2fa/disable")]
pub async fn disable(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let mut fields = body.into_fields();
    let password = fields.text("password");
    let code = fields.parse("code", TotpCode::parse);
    let (password, code) = fields.finish(password.zip(code))?;
    auth.disable_two_factor(&session.0, Password::offered(&password), code, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
