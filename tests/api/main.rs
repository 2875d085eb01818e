//! Integration tests: each starts the real server on port 0 with a fresh
//! database (a SQLite file, and a PostgreSQL database when
//! OTPGATE_TEST_POSTGRES_URL is set) and drives it over HTTP.

#[macro_use]
mod helpers;

mod account_changes;
mod admin;
mod authenticator_migration;
mod authenticators;
mod bearer;
mod bodies;
mod client_addresses;
mod config;
mod flow;
mod forgery;
mod headers;
mod hourly_cap;
mod jwks;
mod key_rotation;
mod known_devices;
mod lifecycle;
mod openapi;
mod password_checks;
mod production;
mod refresh_races;
mod routing;
mod security;
mod session_cache;
mod sessions;
mod slow_clients;
mod throttling;
mod tokens;
mod usernames;
mod write_batches;
