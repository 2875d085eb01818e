//! Applying the throttling rules of `auth::throttle` inside the service's
//! transactions, keyed by digests of what they count.

use crate::auth::error::AuthError;
use crate::auth::throttle::{Bucket, BucketPolicy, FailureCounter, FailurePolicy, RetryAfter};
use crate::store::throttle::{self as store, CounterRow};
use crate::store::{DbConnection, StoreError};

/// Every limit the flow enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Wrong TOTP or recovery codes per account, across tokens and clients.
    pub second_factor: FailurePolicy,
    /// Wrong passwords per (username, client IP).
    pub login_per_client: FailurePolicy,
    /// Wrong passwords per username, from anywhere.
    pub login_per_username: FailurePolicy,
    /// Login and registration requests per client IP; None: unlimited.
    pub per_ip: Option<BucketPolicy>,
}

impl From<CounterRow> for FailureCounter {
    fn from(row: CounterRow) -> Self {
        Self {
            failures: row.failures,
            last_failure_at: row.last_failure_at,
            locked_until: row.locked_until,
            lockouts: row.lockouts,
            window_start: row.window_start,
            window_failures: row.window_failures,
            previous_window_failures: row.previous_window_failures,
        }
    }
}

impl From<FailureCounter> for CounterRow {
    fn from(counter: FailureCounter) -> Self {
        Self {
            failures: counter.failures,
            last_failure_at: counter.last_failure_at,
            locked_until: counter.locked_until,
            lockouts: counter.lockouts,
            window_start: counter.window_start,
            window_failures: counter.window_failures,
            previous_window_failures: counter.previous_window_failures,
        }
    }
}

pub(super) fn too_many(retry: RetryAfter) -> AuthError {
    AuthError::TooManyAttempts {
        retry_after_secs: retry.0,
    }
}

/// The counter for `key`, locked until the transaction ends.
pub(super) fn lock(conn: &mut DbConnection, key: &str) -> Result<FailureCounter, StoreError> {
    Ok(store::lock_counter(conn, key)?.into())
}

/// Stores `counter` if it differs from `before`.
pub(super) fn save(
    conn: &mut DbConnection,
    key: &str,
    before: FailureCounter,
    counter: FailureCounter,
) -> Result<(), StoreError> {
    if counter == before {
        return Ok(());
    }
    store::save_counter(conn, key, &counter.into())
}

/// Counts an attempt as failed ahead of checking it (see
/// [`FailureCounter::count_failure`]); returns whether it started a lockout.
pub(super) fn reserve(
    conn: &mut DbConnection,
    key: &str,
    policy: &FailurePolicy,
    now: i64,
) -> Result<bool, AuthError> {
    let counter = lock(conn, key)?;
    let counted = counter.count_failure(policy, now).map_err(too_many)?;
    save(conn, key, counter, counted.counter)?;
    Ok(counted.locked)
}

/// Counts a failure that must not be refused (see
/// [`FailureCounter::add_failure`]); returns whether it started a lockout.
pub(super) fn add_failure(
    conn: &mut DbConnection,
    key: &str,
    policy: &FailurePolicy,
    now: i64,
) -> Result<bool, StoreError> {
    let counter = lock(conn, key)?;
    let counted = counter.add_failure(policy, now);
    save(conn, key, counter, counted.counter)?;
    Ok(counted.locked)
}

/// Refuses while the counter at `key` refuses.
pub(super) fn check(
    conn: &mut DbConnection,
    key: &str,
    policy: &FailurePolicy,
    now: i64,
) -> Result<(), AuthError> {
    lock(conn, key)?.check(policy, now).map_err(too_many)
}

/// The reserved attempt succeeded: the streak and any lockout end.
pub(super) fn release(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    let counter = lock(conn, key)?;
    save(conn, key, counter, counter.reservation_succeeded())
}

/// Takes a token from the bucket, or refuses.
pub(super) fn take_token(
    conn: &mut DbConnection,
    key: &str,
    policy: &BucketPolicy,
    now: f64,
) -> Result<(), AuthError> {
    let full = Bucket::full(policy, now);
    let (tokens, refilled_at) = store::lock_bucket(conn, key, (full.tokens, full.refilled_at))?;
    let bucket = Bucket {
        tokens,
        refilled_at,
    }
    .take(policy, now)
    .map_err(too_many)?;
    store::save_bucket(conn, key, bucket.tokens, bucket.refilled_at)?;
    Ok(())
}
