//! An instance's life as the load balancer sees it: ready, then draining
//! from the moment shutdown begins (`/readyz` answers 503), with a count of
//! the requests still being answered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Lifecycle {
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Requests entered and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn request_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            lifecycle: self,
            _metric: crate::metrics::request_in_flight(),
        }
    }
}

pub struct InFlight<'a> {
    lifecycle: &'a Lifecycle,
    _metric: crate::metrics::Counted,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.lifecycle.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
