//! What the security log records. Never a secret: only what happened, when,
//! and from which client.

use crate::store::{DbConnection, StoreError, events};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
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

impl SecurityEvent {
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

impl ClientInfo {
    pub(crate) fn record(
        &self,
        conn: &mut DbConnection,
        user_id: &str,
        event: SecurityEvent,
        at: chrono::NaiveDateTime,
    ) -> Result<(), StoreError> {
        events::record(
            conn,
            &events::NewEvent {
                user_id,
                event_type: event.as_str(),
                ip: self.ip.as_deref(),
                user_agent: self.user_agent.as_deref(),
                created_at: at,
            },
        )
    }
}
