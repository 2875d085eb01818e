use actix_web::{HttpResponse, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authenticator;
use crate::auth::flow::AccessGrant;
use crate::auth::totp::{self, TotpCode};
use crate::http::extract::{Client, JsonObject, PendingToken};
use crate::http::problem::{ApiError, Problem};
use super::TokenType;

/// Everything an authenticator app needs to enrol.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResponse {
    /// The TOTP secret, base32 without padding (160 bits).
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    /// Google Authenticator key URI; the QR code encodes exactly this.
    #[schema(example = "otpauth://totp/otpgate:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=otpgate&algorithm=SHA1&digits=6&period=30")]
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

/// OAuth 2.0-style token response.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access JWT (`aal2`).
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: i64,
}

impl From<AccessGrant> for TokenResponse {
    fn from(grant: AccessGrant) -> Self {
        Self {
            access_token: grant.access_token,
            token_type: TokenType::Bearer,
            expires_in: grant.expires_in,
        }
    }
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
