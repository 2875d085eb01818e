//! One second-factor attempt (TOTP or recovery code), decided and recorded
//! in a single transaction that holds the account's failure counter: the
//! lockout check, the code check and the bookkeeping cannot interleave with
//! another attempt on the same account, on any instance.

use chrono::{DateTime, Utc};

use super::security_log::Record as _;
use super::{MAX_CODE_ATTEMPTS, throttle};
use crate::auth::error::AuthError;
use crate::auth::security_log::{ClientInfo, EventKind};
use crate::auth::throttle::FailurePolicy;
use crate::store::{DbConnection, pending};

pub(super) struct Attempt<'a> {
    pub user_id: &'a str,
    pub client: &'a ClientInfo,
    pub policy: FailurePolicy,
    /// The account's second-factor failure counter.
    pub counter_key: String,
    pub now: DateTime<Utc>,
    /// The pending token used, which dies after five failures of its own.
    pub pending_jti: Option<&'a str>,
}

/// How an attempt ended (a failure is committed, not rolled back).
pub(super) enum Verdict<T> {
    Accepted(T),
    Rejected,
}

impl Attempt<'_> {
    /// Refuses while the account's second factor is locked; otherwise runs
    /// `check`, which writes the success and returns `Some`, or returns
    /// `None` having written nothing; a failure is then counted against the
    /// account and the pending token and logged.
    pub fn run<T>(
        &self,
        conn: &mut DbConnection,
        check: impl FnOnce(&mut DbConnection) -> Result<Option<T>, AuthError>,
    ) -> Result<Verdict<T>, AuthError> {
        let key = self.counter_key.as_str();
        let counter = throttle::lock(conn, key)?;
        let now = self.now.timestamp();
        counter
            .check(&self.policy, now)
            .map_err(throttle::too_many)?;
        if let Some(value) = check(conn)? {
            throttle::save(conn, key, counter, counter.succeeded())?;
            return Ok(Verdict::Accepted(value));
        }
        let at = self.now.naive_utc();
        if let Some(jti) = self.pending_jti {
            pending::record_failure(conn, jti, MAX_CODE_ATTEMPTS)?;
        }
        let counted = counter
            .count_failure(&self.policy, now)
            .map_err(throttle::too_many)?;
        throttle::save(conn, key, counter, counted.counter)?;
        self.client
            .record(conn, self.user_id, EventKind::OtpFailed, at)?;
        if counted.locked {
            self.client
                .record(conn, self.user_id, EventKind::LockedOut, at)?;
        }
        Ok(Verdict::Rejected)
    }
}
