//! Handlers, thin: parse, call the authenticator, shape the answer.

pub mod account;
pub mod auth;
pub mod authenticators;
pub mod docs;
pub mod sessions;
pub mod system;
pub mod two_factor;

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::password::Password;
use crate::auth::totp::TotpCode;
use crate::http::extract::JsonObject;
use crate::http::problem::ApiError;
use crate::service::{Account, NextStep, PendingGrant, TokenGrant};

/// A user account.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Stable account id.
    #[schema(format = Uuid, example = "0b9f1d4e-3c1a-4f7e-9a53-2d1c8e4b7a10")]
    pub id: String,
    /// The trimmed NFKC form, case as first registered.
    #[schema(example = "alice@example.org")]
    pub username: String,
    /// Whether a TOTP code has been verified (enrolment complete).
    pub two_factor_enabled: bool,
    /// When the account was created (RFC 3339, UTC).
    #[schema(example = "2025-01-31T09:15:00Z")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Account> for User {
    fn from(account: Account) -> Self {
        Self {
            id: account.id,
            username: account.username,
            two_factor_enabled: account.two_factor_enabled,
            created_at: account.created_at,
        }
    }
}

/// What the client must do next with its pending token.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum NextStepName {
    /// Call `POST /api/v1/2fa/setup`, then `POST /api/v1/2fa/verify`.
    #[serde(rename = "setup_2fa")]
    Setup2fa,
    /// Call `POST /api/v1/2fa/verify` (or `/2fa/recover`).
    #[serde(rename = "verify_2fa")]
    Verify2fa,
}

impl From<NextStep> for NextStepName {
    fn from(step: NextStep) -> Self {
        match step {
            NextStep::SetupTwoFactor => Self::Setup2fa,
            NextStep::VerifyTwoFactor => Self::Verify2fa,
        }
    }
}

/// The token type: always `Bearer` (RFC 6750).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum TokenType {
    Bearer,
}

/// A pending-2FA token: good only for the `/api/v1/2fa/*` steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingTokenResponse {
    /// Short-lived JWT for the second-factor step: single-use, dies after
    /// five wrong codes, never grants access. Send it as
    /// `Authorization: Bearer <pending_token>`.
    #[schema(
        example = "eyJhbGciOiJIUzI1NiIsInR5cCI6InBlbmRpbmcrand0In0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl"
    )]
    pub pending_token: String,
    pub token_type: TokenType,
    /// Seconds until the pending token expires.
    #[schema(example = 300)]
    pub expires_in: i64,
    pub next_step: NextStepName,
}

impl From<PendingGrant> for PendingTokenResponse {
    fn from(grant: PendingGrant) -> Self {
        Self {
            pending_token: grant.token,
            token_type: TokenType::Bearer,
            expires_in: grant.expires_in,
            next_step: grant.next_step.into(),
        }
    }
}

/// OAuth 2.0-style token response (RFC 6749 section 5.1 field names).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access JWT (`aal2`; `amr` names the second factor used). Send it
    /// as `Authorization: Bearer <access_token>`.
    #[schema(example = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl")]
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: i64,
    /// Opaque, single-use: `POST /api/v1/auth/refresh` swaps it for a new
    /// pair.
    #[schema(example = "q1T3mHn0b2yqG6cX8cE4Fh7V0pW9sK2aJd5uR1lZ8eA")]
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    #[schema(example = 2_592_000)]
    pub refresh_expires_in: i64,
    /// Ten single-use recovery codes (`xxxxx-xxxxx`), present only on the
    /// verification that first enables two-factor. Shown once: store them
    /// safely.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        min_items = 10,
        max_items = 10,
        example = json!(["7k3md-x9q2p", "m2c8v-0gq4t", "a9f3k-pz7rd", "4hx2b-nw8cs", "t0e5j-6yvq1", "kq9wz-3m7fa", "r8d1c-xb5ne", "5vj0t-hk2wg", "ez4n6-c1sy9", "b3w7q-dk0mp"])
    )]
    pub recovery_codes: Option<Vec<String>>,
    /// Opaque, long-lived (a year by default): present on a verify or
    /// recover whose login carried no valid device token. Keep it (local
    /// storage, keychain) and send it with later logins as `device_token`,
    /// so that throttling aimed at this username never locks this device
    /// out. It dies with a password change, `/2fa/disable` and account
    /// deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        example = "Zp4n0x7kq1T3mHn0b2yqG6cX8cE4Fh7V0pW9sK2aJd5"
    )]
    pub device_token: Option<String>,
}

impl From<TokenGrant> for TokenResponse {
    fn from(grant: TokenGrant) -> Self {
        Self {
            access_token: grant.access_token,
            token_type: TokenType::Bearer,
            expires_in: grant.expires_in,
            refresh_token: grant.refresh_token.as_str().to_owned(),
            refresh_expires_in: grant.refresh_expires_in,
            recovery_codes: grant.recovery_codes,
            device_token: grant.device_token.map(|token| token.as_str().to_owned()),
        }
    }
}

/// The `code` of a body that carries only a TOTP code.
fn code_of(body: JsonObject) -> Result<TotpCode, ApiError> {
    let mut fields = body.into_fields();
    let code = fields.parse("code", TotpCode::parse);
    fields.finish(code)
}

/// The `password` and `code` of a body that confirms an action with both.
fn password_and_code(body: JsonObject) -> Result<(Password, TotpCode), ApiError> {
    let mut fields = body.into_fields();
    let password = fields.text("password");
    let code = fields.parse("code", TotpCode::parse);
    let (password, code) = fields.finish(password.zip(code))?;
    Ok((Password::offered(&password), code))
}
