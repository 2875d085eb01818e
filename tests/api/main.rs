//! Integration tests: each starts the real server on port 0 with a fresh
//! database (a SQLite file, and a PostgreSQL database when
//! OTPGATE_TEST_POSTGRES_URL is set) and drives it over HTTP.

#[macro_use]
mod helpers;

mod admin;
mod bearer;
mod bodies;
mod config;
mod flow;
mod forgery;
mod headers;
mod jwks;
mod lifecycle;
mod openapi;
mod routing;
mod security;
mod slow_clients;
mod throttling;
mod tokens;
mod usernames;
