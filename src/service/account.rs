//! What a signed-in user can do to their own account.

use chrono::{DateTime, Utc};

use super::security_log::Record as _;
use super::{Authenticator, EVENTS_SHOWN, Session};
use crate::auth::error::AuthError;
use crate::auth::password::Password;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::totp::TotpCode;
use crate::store::{
    DbConnection, StoreError, authenticators, devices, pending, recovery_codes, security_log,
    sessions, users,
};

/// One line of the user's security log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityLogEntry {
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<security_log::EventRow> for SecurityLogEntry {
    fn from(row: security_log::EventRow) -> Self {
        Self {
            event_type: row.event_type,
            at: row.created_at.and_utc(),
            ip: row.ip,
            user_agent: row.user_agent,
        }
    }
}

impl Authenticator {
    /// Replaces all recovery codes, given a current TOTP code.
    pub async fn regenerate_recovery_codes(
        &self,
        session: &Session,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let (codes, code_hashes) = self.inner.new_recovery_codes();
        let user_id = session.claims.sub.clone();
        let event_client = client.clone();
        self.with_fresh_code(session, code, client, move |conn, at| {
            recovery_codes::replace_all(conn, &user_id, &code_hashes, at)?;
            event_client.record(conn, &user_id, EventKind::RecoveryCodesRegenerated, at)?;
            Ok(())
        })
        .await?;
        Ok(codes)
    }

    /// Turns two-factor off, given the password and a current code: every
    /// authenticator and the recovery codes are erased and every session is revoked.
    pub async fn disable_two_factor(
        &self,
        session: &Session,
        password: Password,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        self.check_password_again(session, password, &client)
            .await?;
        let user_id = session.claims.sub.clone();
        let event_client = client.clone();
        self.with_fresh_code(session, code, client, move |conn, at| {
            erase_two_factor(conn, &user_id, at)?;
            event_client.record(conn, &user_id, EventKind::TwoFactorDisabled, at)?;
            Ok(())
        })
        .await
    }

    /// Replaces the password, given the current one and a current code.
    /// The caller's session lives on; every other session, every device
    /// token and every pending token of the user dies.
    pub async fn change_password(
        &self,
        session: &Session,
        current: Password,
        new: Password,
        code: TotpCode,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        self.check_password_again(session, current, &client).await?;
        // Hashed only once the throttled check passed, and outside the
        // transaction (bcrypt must not hold the write lock).
        let password_hash = self.inner.hasher.hash(new).await?;
        let (user_id, sid) = (session.claims.sub.clone(), session.claims.sid.clone());
        let event_client = client.clone();
        self.with_fresh_code(session, code, client, move |conn, at| {
            users::set_password_hash(conn, &user_id, &password_hash)?;
            sessions::revoke_others(conn, &user_id, &sid, at)?;
            pending::consume_all_for_user(conn, &user_id, at)?;
            devices::delete_all_for_user(conn, &user_id)?;
            event_client.record(conn, &user_id, EventKind::PasswordChanged, at)?;
            Ok(())
        })
        .await
    }

    /// The user's newest security events, at most 50.
    pub async fn security_log(
        &self,
        session: &Session,
    ) -> Result<Vec<SecurityLogEntry>, AuthError> {
        let user_id = session.claims.sub.clone();
        let rows = self
            .read(move |conn| security_log::latest(conn, &user_id, EVENTS_SHOWN))
            .await?;
        Ok(rows.into_iter().map(SecurityLogEntry::from).collect())
    }
}

/// Back to a password-only account: no authenticator, no recovery codes, no
/// session, no known device, no outstanding pending token.
pub(super) fn erase_two_factor(
    conn: &mut DbConnection,
    user_id: &str,
    at: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    users::disable_two_factor(conn, user_id)?;
    authenticators::delete_all_for_user(conn, user_id)?;
    recovery_codes::delete_all(conn, user_id)?;
    sessions::revoke_all_for_user(conn, user_id, at)?;
    pending::consume_all_for_user(conn, user_id, at)?;
    devices::delete_all_for_user(conn, user_id)?;
    Ok(())
}
