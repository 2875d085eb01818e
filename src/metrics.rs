//! Prometheus metrics, served by `GET /metrics` on a listener of its own
//! (`OTPGATE_METRICS_BIND`). The recorder is process-wide and installed only
//! when that listener is configured; until then every recording is a no-op.
//!
//! Labels are bounded: routes are the matched route templates (never the raw
//! path, which a client controls), methods outside the standard set are
//! `other`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use metrics::{Gauge, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::PoolState;

/// Latency buckets, in seconds: from a cached lookup to a bcrypt queue.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .expect("the bucket list is not empty")
                .install_recorder()
                // Only this function installs a recorder, and only once.
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// One answered request, by route template and status.
pub fn record_request(method: &Method, route: &str, status: u16, latency: Duration) {
    // The labels cost allocations: none while nothing records.
    if HANDLE.get().is_none() {
        return;
    }
    let method = match *method {
        Method::GET
        | Method::POST
        | Method::HEAD
        | Method::OPTIONS
        | Method::PUT
        | Method::DELETE
        | Method::PATCH => method.as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let labels = [
        ("method", method),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    counter!("otpgate_http_requests_total", &labels).increment(1);
    histogram!("otpgate_http_request_duration_seconds", &labels).record(latency.as_secs_f64());
}

/// A request's session found in the session cache, or not.
pub fn session_cache(hit: bool) {
    let outcome = if hit { "hit" } else { "miss" };
    counter!("otpgate_session_cache_lookups_total", "outcome" => outcome).increment(1);
}

/// A security event written (logins, second factors, lockouts by outcome).
pub fn record_security_event(event: &'static str) {
    counter!("otpgate_security_events_total", "event" => event).increment(1);
}

/// The database pool as it stands, set just before each scrape.
pub fn record_pool_state(state: PoolState) {
    gauge!("otpgate_db_pool_max_connections").set(state.max_size);
    gauge!("otpgate_db_pool_connections").set(state.connections);
    gauge!("otpgate_db_pool_idle_connections").set(state.idle);
}

/// Counts one in a gauge while alive.
pub struct Counted(Gauge);

impl Counted {
    fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A wait that is counted while it lasts and timed when it ends.
pub struct Wait {
    _waiting: Counted,
    started: Instant,
    seconds: &'static str,
}

impl Drop for Wait {
    fn drop(&mut self) {
        histogram!(self.seconds).record(self.started.elapsed().as_secs_f64());
    }
}

/// A password check or hash waiting for its turn on the bcrypt threads.
pub fn bcrypt_wait() -> Wait {
    Wait {
        _waiting: Counted::new(gauge!("otpgate_bcrypt_waiting")),
        started: Instant::now(),
        seconds: "otpgate_bcrypt_wait_seconds",
    }
}

/// A bcrypt computation running.
pub fn bcrypt_running() -> Counted {
    Counted::new(gauge!("otpgate_bcrypt_in_flight"))
}

/// A request waiting for a database connection.
pub fn db_pool_wait() -> Wait {
    Wait {
        _waiting: Counted::new(gauge!("otpgate_db_pool_waiting")),
        started: Instant::now(),
        seconds: "otpgate_db_pool_wait_seconds",
    }
}

/// A request being handled.
pub fn request_in_flight() -> Counted {
    Counted::new(gauge!("otpgate_http_requests_in_flight"))
}
