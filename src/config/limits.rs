//! Throttling: lockouts after wrong passwords or codes, and the per-IP rate.

use chrono::Duration;

use super::ConfigError;
use super::source::Source;
use crate::auth::throttle::{BucketPolicy, FailurePolicy};
use crate::service::Limits;

const LOCKOUT_BASE_SECS: &str = "OTPGATE_LOCKOUT_BASE_SECS";
const LOCKOUT_MAX_SECS: &str = "OTPGATE_LOCKOUT_MAX_SECS";

pub(super) fn read(source: Source) -> Result<Limits, ConfigError> {
    let base_lock = source.duration(LOCKOUT_BASE_SECS, 60, 1..=86_400, Duration::seconds)?;
    let max_lock = source.duration(LOCKOUT_MAX_SECS, 3600, 1..=7 * 86_400, Duration::seconds)?;
    if max_lock < base_lock {
        return Err(ConfigError {
            variable: LOCKOUT_MAX_SECS,
            message: format!("must be at least {LOCKOUT_BASE_SECS}"),
        });
    }
    let lockout = |failures_before_lock: i64,
                   streak_window: Option<Duration>,
                   failures_per_hour: i64| FailurePolicy {
        failures_before_lock: failures_before_lock as u32,
        streak_window_secs: streak_window.map(|window| window.num_seconds()),
        base_lock_secs: base_lock.num_seconds(),
        max_lock_secs: max_lock.num_seconds(),
        failures_per_hour: failures_per_hour as u32,
    };
    let ip_rate = source.number("OTPGATE_IP_RATE_PER_MIN", 30, 0..=1_000_000)?;
    let ip_burst = source.number("OTPGATE_IP_BURST", 60, 1..=1_000_000)?;
    Ok(Limits {
        second_factor: lockout(
            source.number("OTPGATE_OTP_FAILURES_BEFORE_LOCK", 5, 1..=1000)?,
            None,
            source.number("OTPGATE_OTP_FAILURES_PER_HOUR", 100, 1..=100_000)?,
        ),
        login_per_client: lockout(
            source.number("OTPGATE_LOGIN_FAILURES_BEFORE_LOCK", 5, 1..=1000)?,
            Some(source.duration(
                "OTPGATE_LOGIN_FAILURE_WINDOW_SECS",
                900,
                1..=86_400,
                Duration::seconds,
            )?),
            0,
        ),
        login_per_username: lockout(
            0,
            None,
            source.number("OTPGATE_LOGIN_FAILURES_PER_HOUR", 100, 1..=100_000)?,
        ),
        per_ip: (ip_rate > 0).then_some(BucketPolicy {
            rate_per_min: ip_rate as u32,
            burst: ip_burst as u32,
        }),
    })
}
