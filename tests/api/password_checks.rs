//! `/2fa/disable` asks for the password again: with a stolen access token
//! it must not become an unthrottled password oracle, nor a way to fill
//! the bcrypt pool (API.md 1.1, "Every check of a password or code is
//! throttled").

use std::sync::Arc;

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::clients::{assert_too_many, login_as, wrong_codes};
use crate::helpers::paths::DISABLE;
use crate::helpers::*;

async fn disable(app: &TestApp, access_token: &str, password: &str, code: &str) -> Response {
    let body = json!({"password": password, "code": code});
    app.post(DISABLE, Some(access_token), body).await
}

async fn wrong_passwords_on_disable_lock_it_whatever_the_password(app: TestApp) {
    let user = app.enrolled_user(&unique_name("oracle")).await;
    let code = app.code(&user.secret, 0);
    for _ in 0..5 {
        let response = disable(&app, user.access_token(), "wrong password", &code).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let response = disable(&app, user.access_token(), PASSWORD, &code).await;
    assert_too_many(response).await;
}

async fn wrong_codes_on_disable_lock_it_whatever_the_password(app: TestApp) {
    let user = app.enrolled_user(&unique_name("oracle")).await;
    for code in wrong_codes(&app, &user.secret, 5) {
        let response = disable(&app, user.access_token(), PASSWORD, &code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    // Locked: the answer no longer tells whether the password was right.
    let code = app.code(&user.secret, 0);
    let response = disable(&app, user.access_token(), "wrong password", &code).await;
    assert_too_many(response).await;
    let response = disable(&app, user.access_token(), PASSWORD, &code).await;
    assert_too_many(response).await;
}

async fn password_checks_count_toward_the_username_cap_without_blocking_the_owner(
    backend: Backend,
) {
    let settings = [
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("cap")).await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(app.sign_in(&user).await);
        app.advance_steps(1);
    }
    // Each session has its own streak of five: two of them spend the cap.
    let code = app.code(&user.secret, 0);
    for tokens in [&user.tokens, &sessions[0]] {
        let access = tokens["access_token"].as_str().unwrap();
        for _ in 0..5 {
            let response = disable(&app, access, "wrong password", &code).await;
            assert_problem(response, 401, "invalid_credentials").await;
        }
    }
    let login = login_as(&app, "203.0.113.5", &user.username, PASSWORD, None).await;
    assert_too_many(login).await;
    // The owner, past a second factor, is not refused by the spent cap.
    let access = sessions[1]["access_token"].as_str().unwrap();
    let response = disable(&app, access, PASSWORD, &code).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// Parallel guesses on one access token: only one bcrypt check of the user
/// is in flight at a time, so the session's streak of five holds however
/// the requests overlap (without that, all would pass the check first).
async fn parallel_password_guesses_on_disable_run_one_at_a_time(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("OTPGATE_BCRYPT_COST", "10")]).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("burst")).await;
    let code = app.code(&user.secret, 0);
    let app = Arc::new(app);
    const GUESSES: usize = 12;
    let start = Arc::new(tokio::sync::Barrier::new(GUESSES));
    let guesses: Vec<_> = (0..GUESSES)
        .map(|_| {
            let (app, start, code) = (app.clone(), start.clone(), code.clone());
            let access = user.access_token().to_owned();
            tokio::spawn(async move {
                start.wait().await;
                disable(&app, &access, "wrong password", &code).await
            })
        })
        .collect();
    let mut wrong = 0;
    for guess in guesses {
        let response = guess.await.unwrap();
        match response.status().as_u16() {
            401 => {
                assert_problem(response, 401, "invalid_credentials").await;
                wrong += 1;
            }
            _ => {
                assert_too_many(response).await;
            }
        }
    }
    assert!(
        (1..=5).contains(&wrong),
        "{wrong} of {GUESSES} parallel guesses reached bcrypt"
    );
}

on_both_backends!(
    wrong_passwords_on_disable_lock_it_whatever_the_password,
    wrong_codes_on_disable_lock_it_whatever_the_password,
);

on_both_backends_with_own_settings!(
    password_checks_count_toward_the_username_cap_without_blocking_the_owner,
    parallel_password_guesses_on_disable_run_one_at_a_time,
);
