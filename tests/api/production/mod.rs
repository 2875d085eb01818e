//! Production behaviour of the real binary: graceful shutdown under load,
//! metrics, key fingerprints, a database outage, several instances behind
//! nginx. Each test runs `otpgate` processes of its own.

mod instance;
mod key_mismatch;
mod metrics;
mod outage;
mod shutdown;
