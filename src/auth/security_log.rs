//! The security log's vocabulary: which events a user's log records and who
//! caused them. Never a secret: only what happened, when, and from which
//! client. (Writing an entry is the service's job.)

use std::net::IpAddr;

use super::throttle::address_unit;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Registered,
    LoginSucceeded,
    LoginFailed,
    TwoFactorEnabled,
    OtpFailed,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    TwoFactorDisabled,
    Logout,
    RefreshReuseDetected,
    LockedOut,
    PasswordChanged,
    SessionRevoked,
    AuthenticatorAdded,
    AuthenticatorRemoved,
}

impl EventKind {
    /// The stable name clients see in `GET /me/events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::TwoFactorEnabled => "two_factor_enabled",
            Self::OtpFailed => "otp_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::TwoFactorDisabled => "two_factor_disabled",
            Self::Logout => "logout",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::LockedOut => "locked_out",
            Self::PasswordChanged => "password_changed",
            Self::SessionRevoked => "session_revoked",
            Self::AuthenticatorAdded => "authenticator_added",
            Self::AuthenticatorRemoved => "authenticator_removed",
        }
    }
}

/// The caller as the transport saw it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address (through trusted proxies), IPv4-mapped forms
    /// as IPv4; None when it cannot be told (no peer, or a forwarded chain
    /// that does not parse).
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// A loopback peer that is not a listed proxy (a local tool): exempt
    /// from the per-address request bucket.
    pub local: bool,
}

impl ClientInfo {
    /// What the throttles count this client as: its address unit (an
    /// IPv6 /64), or one "unknown" unit shared by every client whose
    /// address cannot be told, throttled like any other.
    pub fn throttle_unit(&self) -> String {
        self.ip.map_or_else(|| "unknown".to_owned(), address_unit)
    }
}
