//! The API's paths, named once for all the tests.

pub const REGISTER: &str = "/api/v1/auth/register";
pub const LOGIN: &str = "/api/v1/auth/login";
pub const REFRESH: &str = "/api/v1/auth/refresh";
pub const LOGOUT: &str = "/api/v1/auth/logout";

/// The two-factor steps (setup and verify take the pending token).
pub const SETUP: &str = "/api/v1/2fa/setup";
pub const VERIFY: &str = "/api/v1/2fa/verify";
pub const RECOVER: &str = "/api/v1/2fa/recover";
pub const RECOVERY_CODES: &str = "/api/v1/2fa/recovery-codes";
pub const DISABLE: &str = "/api/v1/2fa/disable";
pub const AUTHENTICATORS: &str = "/api/v1/2fa/authenticators";

/// `/confirm` or `/remove` of one authenticator.
pub fn authenticator_action(id: &str, action: &str) -> String {
    format!("{AUTHENTICATORS}/{id}/{action}")
}

pub const ME: &str = "/api/v1/me";
pub const EVENTS: &str = "/api/v1/me/events";
pub const SESSIONS: &str = "/api/v1/me/sessions";
pub const PASSWORD_CHANGE: &str = "/api/v1/me/password";
pub const ACCOUNT_DELETE: &str = "/api/v1/me/delete";

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const JWKS: &str = "/.well-known/jwks.json";
pub const OPENAPI: &str = "/openapi.json";
pub const DOCS: &str = "/docs";
