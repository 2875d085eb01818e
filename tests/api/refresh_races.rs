//! `/auth/refresh` under retries and floods: an expired token presented
//! again is not mistaken for reuse, and a made-up token never waits for
//! SQLite's one write lock.

use std::time::{Duration, Instant};

use chrono::Duration as ClockDuration;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::paths::{ME, REFRESH};
use crate::helpers::*;

async fn a_retried_expired_refresh_token_does_not_revoke_the_session(backend: Backend) {
    let settings = [("OTPGATE_REFRESH_TTL_SECS", "60")];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("retry")).await;
    // Past the refresh token's minute, within the access token's 15.
    app.clock.advance(ClockDuration::seconds(120));
    let body = json!({"refresh_token": user.tokens["refresh_token"]});
    for attempt in ["first", "retry"] {
        let response = app.post(REFRESH, None, body.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{attempt}");
        assert_problem(response, 401, "invalid_token").await;
    }
    let me = app.get(ME, Some(user.access_token())).await;
    assert_eq!(me.status(), StatusCode::OK, "the session is still live");
}

on_both_backends_with_own_settings!(a_retried_expired_refresh_token_does_not_revoke_the_session);

/// SQLite has one writer; while another connection holds the write lock,
/// a refresh with an unknown token is answered from a read at once (it
/// used to queue for the lock, for up to the 5 s busy timeout, then 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_refresh_token_does_not_wait_for_the_sqlite_write_lock() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    let mut writer = SqliteConnection::establish(&app.database_url).expect("open the database");
    // The server may be writing at that moment (pruning at start-up): wait
    // for it rather than fail.
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut writer)
        .unwrap();
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .expect("take the write lock");
    let started = Instant::now();
    let body = json!({"refresh_token": "A".repeat(43)});
    let response = app.post(REFRESH, None, body).await;
    let waited = started.elapsed();
    diesel::sql_query("ROLLBACK").execute(&mut writer).unwrap();
    assert_problem(response, 401, "invalid_token").await;
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
}

/// Another process holding SQLite's write lock past the busy timeout makes
/// a write wait and then fail: that is the database being unavailable
/// (503, retry later), not an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_blocked_by_another_process_is_503() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("SQLite");
    let user = app.enrolled_user(&unique_name("blocked")).await;
    let mut writer = SqliteConnection::establish(&app.database_url).expect("open the database");
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut writer)
        .unwrap();
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .expect("take the write lock");
    let body = json!({"refresh_token": user.tokens["refresh_token"]});
    let response = app.post(REFRESH, None, body).await;
    diesel::sql_query("ROLLBACK").execute(&mut writer).unwrap();
    assert_problem(response, 503, "service_unavailable").await;
}

/// Made-up refresh tokens take from the client's request bucket, so one
/// client cannot flood the pool with lookups; a real one from another
/// address is unaffected.
async fn a_flood_of_unknown_refresh_tokens_is_throttled(backend: Backend) {
    let settings = [
        ("OTPGATE_IP_BURST", "3"),
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let refresh_from = |ip: &'static str, token: Value| {
        app.client
            .post(app.url(REFRESH))
            .header("x-forwarded-for", ip)
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let made_up = || json!("q1T3mHn0b2yqG6cX8cE4Fh7V0pW9sK2aJd5uR1lZ8eA");
    for _ in 0..3 {
        let response = refresh_from("198.51.100.20", made_up()).await.unwrap();
        assert_problem(response, 401, "invalid_token").await;
    }
    let response = refresh_from("198.51.100.20", made_up()).await.unwrap();
    assert_problem(response, 429, "too_many_attempts").await;
    let user = app.enrolled_user(&unique_name("flood")).await;
    let response = refresh_from("198.51.100.21", user.tokens["refresh_token"].clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

on_both_backends_with_own_settings!(a_flood_of_unknown_refresh_tokens_is_throttled);
