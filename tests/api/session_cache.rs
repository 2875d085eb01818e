//! The session cache (`OTPGATE_SESSION_CACHE_SIZE`): an instance that has
//! seen an access token answers it from memory, yet a session ended
//! anywhere (another instance on the same database, another process, a
//! hand edit) is refused by the very next request. Each test first makes
//! the instance cache the token (two answered requests), then ends the
//! session elsewhere: a cache that missed the change would answer 200.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::paths::{ACCOUNT_DELETE, DISABLE, LOGOUT, ME, PASSWORD_CHANGE};
use crate::helpers::sessions::{access, revoke_session, session_id};
use crate::helpers::*;

/// Asks `/me` twice with `tokens` (the second answer comes from the cache)
/// and checks it is the account of `user`.
async fn cache(app: &TestApp, user: &EnrolledUser, tokens: &Value) {
    for _ in 0..2 {
        let response = app.get(ME, Some(access(tokens))).await;
        assert_eq!(response.status(), 200, "/me before the change");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], json!(user.user_id));
    }
}

/// Sets `other`'s clock to `app`'s (each test server has a clock of its
/// own, and `app`'s moves on as users enrol).
fn same_time(other: &TestApp, app: &TestApp) {
    other.clock.set(app.clock_now());
}

async fn refused(app: &TestApp, tokens: &Value, context: &str) {
    expect_problem(
        app.get(ME, Some(access(tokens))).await,
        401,
        "invalid_token",
        context,
    )
    .await;
}

async fn a_logout_on_one_instance_is_refused_by_the_next_request_on_another(app: TestApp) {
    let other = app.spawn_sibling().await;
    // Several rounds: the refusal must not depend on timing.
    for round in 0..5 {
        let user = app.enrolled_user(&unique_name("cachelogout")).await;
        same_time(&other, &app);
        cache(&other, &user, &user.tokens).await;
        let response = app
            .post(LOGOUT, Some(user.access_token()), Value::Null)
            .await;
        assert_eq!(response.status(), 204);
        refused(&other, &user.tokens, &format!("round {round}")).await;
    }
}

async fn a_session_ended_by_id_on_one_instance_is_refused_on_another(app: TestApp) {
    let other = app.spawn_sibling().await;
    let user = app.enrolled_user(&unique_name("cacherevoke")).await;
    let second = app.sign_in(&user).await;
    same_time(&other, &app);
    cache(&other, &user, &second).await;
    let response = revoke_session(&app, &user.tokens, &session_id(&second)).await;
    assert_eq!(response.status(), 204);
    refused(&other, &second, "session deleted on the other instance").await;
    // The caller's own session is untouched, and answered.
    cache(&other, &user, &user.tokens).await;
}

async fn a_password_change_on_one_instance_ends_the_other_sessions_on_another(app: TestApp) {
    let other = app.spawn_sibling().await;
    let user = app.enrolled_user(&unique_name("cachepassword")).await;
    let second = app.sign_in(&user).await;
    same_time(&other, &app);
    cache(&other, &user, &second).await;
    app.advance_steps(1);
    let body = json!({
        "current_password": PASSWORD,
        "new_password": "a brand new passphrase",
        "code": app.code(&user.secret, 0),
    });
    let response = app
        .post(PASSWORD_CHANGE, Some(user.access_token()), body)
        .await;
    assert_eq!(response.status(), 204);
    refused(&other, &second, "after a password change elsewhere").await;
}

async fn disabling_two_factor_on_one_instance_is_seen_on_another(app: TestApp) {
    let other = app.spawn_sibling().await;
    let user = app.enrolled_user(&unique_name("cachedisable")).await;
    same_time(&other, &app);
    cache(&other, &user, &user.tokens).await;
    let body = json!({"password": PASSWORD, "code": app.code(&user.secret, 0)});
    let response = app.post(DISABLE, Some(user.access_token()), body).await;
    assert_eq!(response.status(), 204);
    refused(&other, &user.tokens, "after 2FA was disabled elsewhere").await;
}

async fn an_account_deleted_on_one_instance_is_refused_on_another(app: TestApp) {
    let other = app.spawn_sibling().await;
    let user = app.enrolled_user(&unique_name("cachedelete")).await;
    same_time(&other, &app);
    cache(&other, &user, &user.tokens).await;
    let body = json!({"password": PASSWORD, "code": app.code(&user.secret, 0)});
    let response = app
        .post(ACCOUNT_DELETE, Some(user.access_token()), body)
        .await;
    assert_eq!(response.status(), 204);
    refused(&other, &user.tokens, "after deletion elsewhere").await;
}

async fn a_revocation_by_another_process_is_refused_at_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("cacheadmin")).await;
    cache(&app, &user, &user.tokens).await;
    let output = Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .args(["admin", "revoke-sessions", &user.username])
        .env("DATABASE_URL", &app.database_url)
        .env("OTPGATE_DATA_DIR", app.data_dir())
        .env("OTPGATE_JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .expect("otpgate runs");
    assert!(output.status.success(), "{output:?}");
    refused(&app, &user.tokens, "after `otpgate admin revoke-sessions`").await;
}

async fn a_revocation_written_by_hand_is_refused_at_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("cachesql")).await;
    cache(&app, &user, &user.tokens).await;
    app.execute_sql(&format!(
        "UPDATE sessions SET revoked_at = created_at WHERE id = '{}'",
        session_id(&user.tokens)
    ));
    refused(
        &app,
        &user.tokens,
        "after an UPDATE behind the server's back",
    )
    .await;
}

/// A token is answered from the cache only while it is current: the
/// server's clock past its expiry (and the leeway) refuses it.
async fn a_cached_token_expires_on_time(app: TestApp) {
    let user = app.enrolled_user(&unique_name("cacheexpiry")).await;
    cache(&app, &user, &user.tokens).await;
    let lifetime = user.tokens["expires_in"].as_i64().unwrap();
    app.clock.advance(chrono::Duration::seconds(lifetime + 6));
    refused(&app, &user.tokens, "an expired access token").await;
}

on_both_backends!(
    a_logout_on_one_instance_is_refused_by_the_next_request_on_another,
    a_session_ended_by_id_on_one_instance_is_refused_on_another,
    a_password_change_on_one_instance_ends_the_other_sessions_on_another,
    disabling_two_factor_on_one_instance_is_seen_on_another,
    an_account_deleted_on_one_instance_is_refused_on_another,
    a_revocation_by_another_process_is_refused_at_once,
    a_revocation_written_by_hand_is_refused_at_once,
    a_cached_token_expires_on_time,
);
