//! Throttling as pure state transitions; the service keeps the state per
//! key in the database and applies these inside one transaction, so the
//! limits hold across every instance sharing it.
//!
//! Two shapes: a failure counter with exponential lockout (second-factor
//! codes per account, passwords per username and client), and a token
//! bucket (requests per client IP). What they count is named by
//! [`ThrottleKeys`], keyed digests that reveal nothing to a database copy.

use std::net::IpAddr;

use super::keyed_hash::{derive_key, hmac_hex};

/// Limits of one failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Failures in a row that start a lockout (0: never lock).
    pub failures_before_lock: u32,
    /// A streak older than this is forgotten (None: only a success ends it).
    pub streak_window_secs: Option<i64>,
    /// First lockout; each further one doubles, up to `max_lock_secs`.
    pub base_lock_secs: i64,
    pub max_lock_secs: i64,
    /// Most failures in any hour-long span (0: unlimited).
    pub failures_per_hour: u32,
}

/// The stored state of one failure counter. All times are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCounter {
    pub failures: i32,
    pub last_failure_at: i64,
    pub locked_until: i64,
    pub lockouts: i32,
    /// Start of the clock hour `window_failures` counts (a multiple of 3600).
    pub window_start: i64,
    pub window_failures: i32,
    /// Failures of the clock hour before `window_start`.
    pub previous_window_failures: i32,
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

/// What counting one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub counter: FailureCounter,
    /// This attempt started a lockout.
    pub locked: bool,
}

const HOUR: i64 = 3600;

impl FailureCounter {
    /// The hourly windows as of `now`: the current clock hour's failures
    /// and the previous one's.
    fn windows_at(self, now: i64) -> Self {
        // Never back to an earlier hour: another instance whose clock runs
        // ahead may have opened the next one already.
        let start = (now - now.rem_euclid(HOUR)).max(self.window_start);
        let (previous, current) = match (start - self.window_start) / HOUR {
            0 => (self.previous_window_failures, self.window_failures),
            1 => (self.window_failures, 0),
            _ => (0, 0),
        };
        Self {
            window_start: start,
            window_failures: current,
            previous_window_failures: previous,
            ..self
        }
    }

    /// Refuses while locked or over the hourly budget. The budget counts
    /// this clock hour and the previous one together: any hour-long span
    /// lies within two consecutive clock hours, so none can hold more than
    /// the cap (a fixed window would let twice the cap through around its
    /// edge).
    pub fn check(&self, policy: &FailurePolicy, now: i64) -> Result<(), RetryAfter> {
        if self.locked_until > now {
            return Err(RetryAfter(self.locked_until - now));
        }
        let cap = policy.failures_per_hour as i32;
        let windows = self.windows_at(now);
        if cap > 0 && windows.previous_window_failures + windows.window_failures >= cap {
            // The previous hour's failures drop out at the next hour; if
            // this hour's alone fill the cap, at the one after.
            let hours = if windows.window_failures >= cap { 2 } else { 1 };
            return Err(RetryAfter(windows.window_start + hours * HOUR - now));
        }
        Ok(())
    }

    /// Counts one failed attempt, refusing if the counter already refuses.
    /// (Password logins count each attempt *before* checking it, so that a
    /// parallel burst stops at the limit; they undo it on success with
    /// [`FailureCounter::reservation_succeeded`].)
    pub fn count_failure(self, policy: &FailurePolicy, now: i64) -> Result<Counted, RetryAfter> {
        self.check(policy, now)?;
        Ok(self.add_failure(policy, now))
    }

    /// Counts one failed attempt without refusing it: for checks that an
    /// exhausted budget must not block (the owner's own authenticated
    /// password checks count toward the username's cap, never against it).
    pub fn add_failure(self, policy: &FailurePolicy, now: i64) -> Counted {
        let mut next = self.windows_at(now);
        let streak_expired = policy
            .streak_window_secs
            .is_some_and(|window| now - self.last_failure_at > window);
        if streak_expired {
            next.failures = 0;
        }
        next.failures += 1;
        next.window_failures += 1;
        next.last_failure_at = now;
        let locked =
            policy.failures_before_lock > 0 && next.failures >= policy.failures_before_lock as i32;
        if locked {
            let doublings = next.lockouts.clamp(0, 30) as u32;
            let lock = policy
                .base_lock_secs
                .saturating_mul(1_i64 << doublings)
                .min(policy.max_lock_secs);
            next.locked_until = now + lock;
            next.lockouts += 1;
            next.failures = 0;
        }
        Counted {
            counter: next,
            locked,
        }
    }

    /// A success ends the streak, the lockout and the backoff; the hourly
    /// budget keeps counting.
    pub fn succeeded(self) -> Self {
        Self {
            failures: 0,
            locked_until: 0,
            lockouts: 0,
            ..self
        }
    }

    /// A success of an attempt counted in advance: as [`Self::succeeded`],
    /// and the attempt no longer counts toward the hourly budget.
    pub fn reservation_succeeded(self) -> Self {
        Self {
            window_failures: (self.window_failures - 1).max(0),
            ..self.succeeded()
        }
    }
}

/// A token bucket: `rate_per_min` tokens a minute, at most `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketPolicy {
    pub rate_per_min: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    /// Unix seconds, fractional.
    pub refilled_at: f64,
}

impl Bucket {
    pub fn full(policy: &BucketPolicy, now: f64) -> Self {
        Self {
            tokens: f64::from(policy.burst),
            refilled_at: now,
        }
    }

    /// Takes one token, or says when the next one comes.
    pub fn take(self, policy: &BucketPolicy, now: f64) -> Result<Self, RetryAfter> {
        let per_sec = f64::from(policy.rate_per_min) / 60.0;
        let elapsed = (now - self.refilled_at).max(0.0);
        let tokens = (self.tokens + elapsed * per_sec).min(f64::from(policy.burst));
        if tokens >= 1.0 {
            Ok(Self {
                tokens: tokens - 1.0,
                refilled_at: now,
            })
        } else {
            let wait = ((1.0 - tokens) / per_sec).ceil() as i64;
            Err(RetryAfter(wait.max(1)))
        }
    }
}

/// Names what a counter or bucket counts: an HMAC of its kind and parts
/// under a key derived from the secrets-at-rest key, so the throttling
/// tables hold neither usernames nor addresses, and a database copy cannot
/// tell who was attacked from where (nor brute-force a password typed into
/// the username field from its digest).
pub struct ThrottleKeys {
    key: [u8; 32],
}

impl ThrottleKeys {
    pub fn derived_from(master: &[u8; 32]) -> Self {
        Self {
            key: derive_key(master, "otpgate/throttle-keys/v1"),
        }
    }

    /// The row key of `kind` over `parts`.
    pub fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut input = kind.as_bytes().to_vec();
        for part in parts {
            input.push(0);
            input.extend_from_slice(part.as_bytes());
        }
        hmac_hex(&self.key, &input)
    }
}

/// The unit an address is throttled as: an IPv4 address (IPv4-mapped IPv6
/// included), or the /64 of an IPv6 one, since one subscriber commonly
/// holds a whole /64 and could otherwise rotate through 2^64 addresses.
pub fn address_unit(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTP: FailurePolicy = FailurePolicy {
        failures_before_lock: 5,
        streak_window_secs: None,
        base_lock_secs: 60,
        max_lock_secs: 3600,
        failures_per_hour: 100,
    };

    fn fail(counter: FailureCounter, now: i64) -> Result<Counted, RetryAfter> {
        counter.count_failure(&OTP, now)
    }

    #[test]
    fn the_fifth_failure_locks_and_the_sixth_is_refused() {
        let mut counter = FailureCounter::default();
        for attempt in 1..=5 {
            let counted = fail(counter, 1000).unwrap();
            assert_eq!(counted.locked, attempt == 5);
            counter = counted.counter;
        }
        assert_eq!(fail(counter, 1000), Err(RetryAfter(60)));
        assert_eq!(counter.check(&OTP, 1059), Err(RetryAfter(1)));
        assert!(counter.check(&OTP, 1060).is_ok());
    }

    #[test]
    fn lockouts_double_up_to_an_hour() {
        let mut counter = FailureCounter::default();
        let mut now = 0;
        let mut locks = Vec::new();
        for _ in 0..9 {
            for _ in 0..5 {
                counter = fail(counter, now).unwrap().counter;
            }
            locks.push(counter.locked_until - now);
            now = counter.locked_until;
            // Keep under the hourly budget: it is not what this tests.
            counter.window_failures = 0;
        }
        assert_eq!(locks, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn success_resets_the_streak_and_backoff() {
        let mut counter = FailureCounter::default();
        for _ in 0..4 {
            counter = fail(counter, 10).unwrap().counter;
        }
        counter = counter.succeeded();
        assert_eq!(counter.failures, 0);
        let counted = fail(counter, 10).unwrap();
        assert!(!counted.locked);
    }

    const NO_LOCK: FailurePolicy = FailurePolicy {
        failures_before_lock: 0,
        ..OTP
    };

    fn fail_many(mut counter: FailureCounter, at: impl IntoIterator<Item = i64>) -> FailureCounter {
        for now in at {
            counter = counter.count_failure(&NO_LOCK, now).unwrap().counter;
        }
        counter
    }

    #[test]
    fn at_most_a_hundred_failures_an_hour() {
        // Hour [3600, 7200): 100 failures, then refused until the hour
        // after next, when these have left both windows.
        let counter = fail_many(FailureCounter::default(), 5000..5100);
        assert_eq!(counter.count_failure(&NO_LOCK, 5100), Err(RetryAfter(5700)));
        assert!(counter.check(&NO_LOCK, 8600).is_err());
        assert!(counter.check(&NO_LOCK, 10_800).is_ok());
    }

    #[test]
    fn no_burst_around_a_window_edge() {
        // 100 failures in the last minute of one hour, then the first
        // minute of the next: a fixed window would allow 200 in two minutes.
        let counter = fail_many(FailureCounter::default(), (0..100).map(|i| 7140 + i / 2));
        assert_eq!(counter.check(&NO_LOCK, 7200), Err(RetryAfter(3600)));
        // Failures of the previous hour count until that hour has passed.
        let counter = fail_many(FailureCounter::default(), (0..50).map(|i| 3600 + i * 70));
        let counter = fail_many(counter, (0..50).map(|i| 7200 + i));
        assert_eq!(counter.check(&NO_LOCK, 7250), Err(RetryAfter(3550)));
        assert!(counter.check(&NO_LOCK, 10_800).is_ok());
    }

    #[test]
    fn a_clock_behind_another_instance_does_not_reset_the_cap() {
        // Another instance, a few seconds ahead, opened hour [7200, 10800).
        let counter = fail_many(FailureCounter::default(), 7200..7300);
        assert!(counter.check(&NO_LOCK, 7195).is_err());
        assert!(counter.count_failure(&NO_LOCK, 7195).is_err());
    }

    #[test]
    fn uncapped_failures_still_count() {
        let counter = fail_many(FailureCounter::default(), 5000..5100);
        let counted = counter.add_failure(&NO_LOCK, 5100);
        assert_eq!(counted.counter.window_failures, 101);
    }

    #[test]
    fn throttle_keys_are_keyed_and_unambiguous() {
        let one = ThrottleKeys::derived_from(&[1; 32]);
        let two = ThrottleKeys::derived_from(&[2; 32]);
        assert_ne!(one.key("ip", &["192.0.2.1"]), two.key("ip", &["192.0.2.1"]));
        assert_ne!(one.key("a", &["bc"]), one.key("ab", &["c"]));
        assert_eq!(one.key("ip", &["192.0.2.1"]), one.key("ip", &["192.0.2.1"]));
    }

    #[test]
    fn ipv6_clients_are_one_unit_per_64() {
        let unit = |text: &str| address_unit(text.parse().unwrap());
        assert_eq!(
            unit("2001:db8:1:2::1"),
            unit("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(unit("2001:db8:1:2::1"), unit("2001:db8:1:3::1"));
        assert_eq!(unit("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(unit("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn password_streaks_expire() {
        let policy = FailurePolicy {
            streak_window_secs: Some(900),
            ..OTP
        };
        let mut counter = FailureCounter::default();
        for _ in 0..4 {
            counter = counter.count_failure(&policy, 0).unwrap().counter;
        }
        let counted = counter.count_failure(&policy, 901).unwrap();
        assert!(!counted.locked);
        assert_eq!(counted.counter.failures, 1);
    }

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let policy = BucketPolicy {
            rate_per_min: 30,
            burst: 60,
        };
        let mut bucket = Bucket::full(&policy, 0.0);
        for _ in 0..60 {
            bucket = bucket.take(&policy, 0.0).unwrap();
        }
        assert_eq!(bucket.take(&policy, 0.0), Err(RetryAfter(2)));
        assert!(bucket.take(&policy, 2.0).is_ok());
    }
}
