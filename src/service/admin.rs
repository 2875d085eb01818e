//! Operator actions, by username, for the command line.

use super::account::{SecurityLogEntry, erase_two_factor};
use super::security_log::Record as _;
use super::{Account, Authenticator};
use crate::auth::error::AuthError;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::username;
use crate::store::users::UserRow;
use crate::store::{
    DbConnection, StoreError, authenticators, devices, pending, recovery_codes, security_log,
    sessions, throttle, users,
};

/// What `otpgate admin show` prints: state, never secrets.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub account: Account,
    pub live_sessions: i64,
    pub unused_recovery_codes: i64,
    pub recent_events: Vec<SecurityLogEntry>,
}

/// How admin actions appear in the user's security log.
fn operator() -> ClientInfo {
    ClientInfo {
        ip: None,
        user_agent: Some("otpgate admin".into()),
        local: true,
    }
}

impl Authenticator {
    pub(super) async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, AuthError> {
        let key = username::lookup_key(name);
        Ok(self
            .read(move |conn| users::find_by_key(conn, &key))
            .await?)
    }

    /// Same effect as the user disabling two-factor. None: no such user.
    pub async fn admin_reset_two_factor(&self, name: &str) -> Result<Option<Account>, AuthError> {
        let Some(user) = self.user_by_name(name).await? else {
            return Ok(None);
        };
        let at = self.now().naive_utc();
        let user_id = user.id.clone();
        self.write(move |conn| {
            erase_two_factor(conn, &user_id, at)?;
            operator().record(conn, &user_id, EventKind::TwoFactorDisabled, at)
        })
        .await?;
        Ok(Some(Account {
            two_factor_enabled: false,
            ..Account::from(&user)
        }))
    }

    /// Revokes every session; returns how many were live. None: no such user.
    pub async fn admin_revoke_sessions(&self, name: &str) -> Result<Option<usize>, AuthError> {
        let Some(user) = self.user_by_name(name).await? else {
            return Ok(None);
        };
        let at = self.now().naive_utc();
        let revoked = self
            .write(move |conn| sessions::revoke_all_for_user(conn, &user.id, at))
            .await?;
        Ok(Some(revoked))
    }

    /// The account's state. None: no such user.
    pub async fn admin_summary(&self, name: &str) -> Result<Option<AccountSummary>, AuthError> {
        let Some(user) = self.user_by_name(name).await? else {
            return Ok(None);
        };
        let now = self.now().naive_utc();
        let user_id = user.id.clone();
        let (live_sessions, unused_recovery_codes, rows) = self
            .read(move |conn| {
                Ok::<_, AuthError>((
                    sessions::count_live(conn, &user_id, now)?,
                    recovery_codes::count_unused(conn, &user_id)?,
                    security_log::latest(conn, &user_id, 10)?,
                ))
            })
            .await?;
        Ok(Some(AccountSummary {
            account: Account::from(&user),
            live_sessions,
            unused_recovery_codes,
            recent_events: rows.into_iter().map(SecurityLogEntry::from).collect(),
        }))
    }
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pruned {
    pub events: usize,
    pub pending_tokens: usize,
    pub sessions: usize,
    pub devices: usize,
    pub throttles: usize,
}

impl Authenticator {
    /// Forgets what can no longer matter: events past the retention period,
    /// pending tokens expired an hour ago, sessions ended a retention period
    /// ago (their refresh tokens go with them).
    ///
    /// In transactions of at most [`PRUNE_BATCH`] rows each: a backlog of
    /// millions (the first pass after a month) must not hold SQLite's one
    /// write lock for minutes, as a single transaction did at 1M users.
    pub async fn prune(&self) -> Result<Pruned, AuthError> {
        let now = self.now();
        let retention_start = (now - self.inner.settings.event_retention).naive_utc();
        let pending_cutoff = (now - chrono::Duration::hours(1)).naive_utc();
        Ok(Pruned {
            events: self
                .delete_in_batches(move |conn, limit| {
                    security_log::delete_older_than(conn, retention_start, limit)
                })
                .await?,
            pending_tokens: self
                .delete_in_batches(move |conn, limit| {
                    pending::delete_expired(conn, pending_cutoff, limit)
                })
                .await?,
            sessions: self
                .delete_in_batches(move |conn, limit| {
                    sessions::delete_ended(conn, retention_start, limit)
                })
                .await?,
            devices: self
                .delete_in_batches(move |conn, limit| {
                    devices::delete_expired(conn, now.naive_utc(), limit)
                })
                .await?,
            // A day idle: older counters can no longer lock anything.
            throttles: self
                .write(move |conn| throttle::delete_idle(conn, now.timestamp() - 86_400))
                .await?,
        })
    }

    /// Runs `delete` (at most `limit` rows) in write transactions until one
    /// deletes fewer than that; returns the total.
    async fn delete_in_batches<F>(&self, delete: F) -> Result<usize, AuthError>
    where
        F: Fn(&mut DbConnection, i64) -> Result<usize, StoreError> + Clone + Send + 'static,
    {
        let mut total = 0;
        loop {
            let batch = delete.clone();
            let deleted = self.write(move |conn| batch(conn, PRUNE_BATCH)).await?;
            total += deleted;
            if deleted < PRUNE_BATCH as usize {
                return Ok(total);
            }
        }
    }
}

/// Rows one pruning transaction deletes at most.
const PRUNE_BATCH: i64 = 2_000;

impl Authenticator {
    /// Re-encrypts every TOTP secret still sealed under a retiring key with
    /// the current key, in batches, while the service keeps running (it can
    /// read both keys meanwhile). Returns how many were re-encrypted.
    pub async fn admin_reseal_secrets(&self) -> Result<usize, AuthError> {
        let current = self.inner.secrets.key_id().to_owned();
        let mut resealed = 0;
        loop {
            let key_id = current.clone();
            let batch = self
                .read(move |conn| authenticators::sealed_under_other_keys(conn, &key_id, 100))
                .await?;
            if batch.is_empty() {
                return Ok(resealed);
            }
            for authenticator in batch {
                let secret = self.inner.open_secret(&authenticator)?;
                let sealed = self
                    .inner
                    .secrets
                    .seal(secret.as_bytes(), &authenticator.user_id)?;
                let key_id = current.clone();
                // Only if the secret is still the one re-sealed: an instance
                // on the old key may have replaced it meanwhile, and the new
                // secret must not be overwritten.
                let done = self
                    .write(move |conn| {
                        authenticators::reseal_secret(
                            conn,
                            &authenticator.id,
                            &authenticator.totp_secret,
                            &sealed,
                            &key_id,
                        )
                    })
                    .await?;
                resealed += usize::from(done);
            }
        }
    }
}
