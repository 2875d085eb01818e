//! Throttling as pure state transitions; the store keeps the state per key
//! and applies these inside one transaction, so the limits hold across
//! every instance sharing the database.
//!
//! Two shapes: a failure counter with exponential lockout (second-factor
//! codes per account, passwords per username and client), and a token
//! bucket (requests per client IP).

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
    /// Most failures in any hour-long window (0: unlimited).
    pub failures_per_hour: u32,
}

/// The stored state of one failure counter. All times are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCounter {
    pub failures: i32,
    pub last_failure_at: i64,
    pub locked_until: i64,
    pub lockouts: i32,
    pub window_start: i64,
    pub window_failures: i32,
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
    /// Refuses while locked or over the hourly budget.
    pub fn check(&self, policy: &FailurePolicy, now: i64) -> Result<(), RetryAfter> {
        if self.locked_until > now {
            return Err(RetryAfter(self.locked_until - now));
        }
        let window_end = self.window_start + HOUR;
        if policy.failures_per_hour > 0
            && now < window_end
            && self.window_failures >= policy.failures_per_hour as i32
        {
            return Err(RetryAfter(window_end - now));
        }
        Ok(())
    }

    /// Counts one failed attempt, refusing if the counter already refuses.
    /// (Password logins count each attempt *before* checking it, so that a
    /// parallel burst stops at the limit; they undo it on success with
    /// [`FailureCounter::reservation_succeeded`].)
    pub fn count_failure(self, policy: &FailurePolicy, now: i64) -> Result<Counted, RetryAfter> {
        self.check(policy, now)?;
        let mut next = self;
        let streak_expired = policy
            .streak_window_secs
            .is_some_and(|window| now - self.last_failure_at > window);
        if streak_expired {
            next.failures = 0;
        }
        if now >= self.window_start + HOUR {
            next.window_start = now;
            next.window_failures = 0;
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
        Ok(Counted {
            counter: next,
            locked,
        })
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

    #[test]
    fn at_most_a_hundred_failures_an_hour() {
        let mut counter = FailureCounter::default();
        let policy = FailurePolicy {
            failures_before_lock: 0,
            ..OTP
        };
        for i in 0..100 {
            counter = counter.count_failure(&policy, 5000 + i).unwrap().counter;
        }
        assert_eq!(counter.count_failure(&policy, 5100), Err(RetryAfter(3500)));
        assert!(counter.count_failure(&policy, 8600).is_ok());
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
