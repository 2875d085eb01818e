//! The security log's vocabulary: which events a user's log records and who
//! caused them. Never a secret: only what happened, when, and from which
//! client. (Writing an entry is the service's job.)

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
        }
    }
}

/// The caller as the transport saw it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
