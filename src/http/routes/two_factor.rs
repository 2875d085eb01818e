use actix_web::{HttpResponse, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use utoipa::ToSchema;

use super::{TokenResponse, code_of, password_and_code};
use crate::auth::recovery::RecoveryCode;
use crate::auth::totp;
use crate::http::extract::{AccessSession, Client, JsonObject, PendingToken};
use crate::http::openapi::{
    AccessTokenErrors, BadRequest, InvalidCode, InvalidToken, JsonBodyErrors, ServerErrors,
    TooManyAttempts, WrongPasswordOrCode, problem_example,
};
use crate::http::problem::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
use crate::service::{Authenticator, Enrolment};

/// Everything an authenticator app needs to enrol.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResponse {
    /// The TOTP secret: 160 random bits, base32 (RFC 4648) without padding.
    #[schema(
        pattern = "^[A-Z2-7]{32}$",
        example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    )]
    pub secret: String,
    /// Google Authenticator key URI
    /// (`otpauth://totp/<Issuer>:<username>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`,
    /// label and issuer percent-encoded); the QR code encodes exactly this.
    #[schema(
        example = "otpauth://totp/otpgate:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=otpgate&algorithm=SHA1&digits=6&period=30"
    )]
    pub otpauth_uri: String,
    /// The QR code of `otpauth_uri` as a PNG, bare base64.
    #[schema(
        content_encoding = "base64",
        content_media_type = "image/png",
        example = "iVBORw0KGgoAAAANSUhEUgAA..."
    )]
    pub qr_png_base64: String,
    /// The same PNG as a `data:image/png;base64,...` URI, ready for an
    /// `<img src>`.
    #[schema(example = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA...")]
    pub qr_data_uri: String,
    /// The issuer shown by authenticator apps.
    #[schema(example = "otpgate")]
    pub issuer: String,
    /// The account label shown by authenticator apps (the username).
    #[schema(example = "alice")]
    pub account_name: String,
    /// Always `SHA1`.
    #[schema(example = "SHA1")]
    pub algorithm: &'static str,
    /// Always 6.
    #[schema(minimum = 6, maximum = 6, example = 6)]
    pub digits: u32,
    /// Time step in seconds; always 30.
    #[schema(minimum = 30, maximum = 30, example = 30)]
    pub period: u64,
}

impl From<Enrolment> for SetupResponse {
    fn from(enrolment: Enrolment) -> Self {
        let png = STANDARD.encode(&enrolment.qr_png);
        Self {
            secret: enrolment.secret.to_base32(),
            otpauth_uri: enrolment.otpauth_uri,
            qr_data_uri: format!("data:image/png;base64,{png}"),
            qr_png_base64: png,
            issuer: enrolment.issuer,
            account_name: enrolment.account_name,
            algorithm: totp::ALGORITHM,
            digits: totp::DIGITS,
            period: totp::PERIOD_SECS,
        }
    }
}

/// A six-digit TOTP code.
#[derive(Debug, ToSchema)]
pub struct CodeRequest {
    /// Exactly six ASCII digits, as a string (RFC 6238, SHA1, 30 s).
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
        (status = 400, response = BadRequest),
        (status = 401, response = InvalidToken),
        (status = 409, description = "`two_factor_already_enabled`: the secret is never shown again", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::TwoFactorAlreadyEnabled))),
        ServerErrors,
    )
)]
#[post("/2fa/setup")]
pub async fn setup(
    auth: web::Data<Authenticator>,
    pending: PendingToken,
) -> Result<HttpResponse, ApiError> {
    let enrolment = auth.setup(&pending.0).await?;
    Ok(HttpResponse::Ok().json(SetupResponse::from(enrolment)))
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
        (status = 200, description = "Second factor accepted: a session is open. `recovery_codes` is present only on the verification that first enables two-factor", body = TokenResponse),
        (status = 401, description = "`invalid_otp` (wrong or replayed code) or `invalid_token` (pending token missing, expired, spent or dead after five wrong codes)", body = Problem, content_type = PROBLEM_JSON,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"invalid_token\"` for `invalid_token`")),
            examples(
                ("invalid_otp" = (value = json!(problem_example(ErrorCode::InvalidOtp)))),
                ("invalid_token" = (value = json!(problem_example(ErrorCode::InvalidToken)))),
            )),
        (status = 409, description = "`two_factor_setup_required`: call `/api/v1/2fa/setup` first", body = Problem, content_type = PROBLEM_JSON,
            example = json!(problem_example(ErrorCode::TwoFactorSetupRequired))),
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/verify")]
pub async fn verify(
    auth: web::Data<Authenticator>,
    pending: PendingToken,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let code = code_of(body)?;
    let grant = auth.verify(&pending.0, code, client.0).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(grant)))
}

/// A recovery code.
#[derive(Debug, ToSchema)]
pub struct RecoveryRequest {
    /// One of the codes shown at enrolment, `xxxxx-xxxxx` (ten characters
    /// of Crockford's base32); case, spaces and the dash do not matter, and
    /// `i`/`l` read as `1`, `o` as `0`.
    #[schema(
        pattern = "^[ -]*([0-9A-TV-Za-tv-z][ -]*){10}$",
        example = "7k3md-x9q2p"
    )]
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
        (status = 200, description = "Recovery code accepted and spent: a session is open", body = TokenResponse),
        (status = 401, description = "`invalid_recovery_code` (unknown or already used) or `invalid_token` (pending token missing, expired, spent or dead after five wrong codes)", body = Problem, content_type = PROBLEM_JSON,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"otpgate\", error=\"invalid_token\"` for `invalid_token`")),
            examples(
                ("invalid_recovery_code" = (value = json!(problem_example(ErrorCode::InvalidRecoveryCode)))),
                ("invalid_token" = (value = json!(problem_example(ErrorCode::InvalidToken)))),
            )),
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
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
    /// Ten new single-use codes (`xxxxx-xxxxx`); every older code is dead.
    /// Shown once: store them safely.
    #[schema(min_items = 10, max_items = 10, example = json!(["7k3md-x9q2p", "m2c8v-0gq4t", "a9f3k-pz7rd", "4hx2b-nw8cs", "t0e5j-6yvq1", "kq9wz-3m7fa", "r8d1c-xb5ne", "5vj0t-hk2wg", "ez4n6-c1sy9", "b3w7q-dk0mp"]))]
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
        (status = 200, description = "Ten new recovery codes; the old ones are dead", body = RecoveryCodesResponse),
        (status = 401, response = InvalidCode),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/recovery-codes")]
pub async fn regenerate_recovery_codes(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let code = code_of(body)?;
    let recovery_codes = auth
        .regenerate_recovery_codes(&session.0, code, client.0)
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesResponse { recovery_codes }))
}

/// Password and a current code.
#[derive(Debug, ToSchema)]
pub struct DisableRequest {
    /// The account's password.
    #[schema(min_length = 1, example = "correct horse battery staple")]
    pub password: String,
    /// A current TOTP code: exactly six ASCII digits, as a string.
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
        (status = 204, description = "Two-factor disabled; every session of the user revoked"),
        (status = 401, response = WrongPasswordOrCode),
        AccessTokenErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyAttempts),
        ServerErrors,
    )
)]
#[post("/2fa/disable")]
pub async fn disable(
    auth: web::Data<Authenticator>,
    session: AccessSession,
    client: Client,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let (password, code) = password_and_code(body)?;
    auth.disable_two_factor(&session.0, password, code, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
