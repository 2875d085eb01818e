//! Password change and account deletion (API.md 1.1, "Password change and
//! account deletion"): each asks for the password and a current code,
//! throttled as every authenticated password check is.

use std::process::Command;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::clients::{assert_too_many, login_as, spend_login_cap, wrong_codes};
use crate::helpers::paths::{ACCOUNT_DELETE, LOGIN, PASSWORD_CHANGE};
use crate::helpers::sessions::{access, pair_is_live};
use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change_password(app: &TestApp, tokens: &Value, body: Value) -> Response {
    app.post(PASSWORD_CHANGE, Some(access(tokens)), body).await
}

fn change_body(current: &str, new: &str, code: &str) -> Value {
    json!({"current_password": current, "new_password": new, "code": code})
}

async fn delete_account(app: &TestApp, tokens: &Value, password: &str, code: &str) -> Response {
    let body = json!({"password": password, "code": code});
    app.post(ACCOUNT_DELETE, Some(access(tokens)), body).await
}

fn device_of(tokens: &Value) -> String {
    tokens["device_token"]
        .as_str()
        .expect("a device_token")
        .to_owned()
}

async fn a_password_change_keeps_the_caller_and_ends_everything_else(app: TestApp) {
    let user = app.enrolled_user(&unique_name("change")).await;
    let other = app.sign_in(&user).await;
    app.advance_steps(1);
    let code = app.code(&user.secret, 0);
    let response = change_password(
        &app,
        &user.tokens,
        change_body(PASSWORD, NEW_PASSWORD, &code),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert!(!pair_is_live(&app, &other).await, "the other session died");
    assert_eq!(app.event_types(&user.tokens).await[0], "password_changed");
    assert!(
        pair_is_live(&app, &user.tokens).await,
        "the caller's lives on"
    );
    let old = app.post_credentials(LOGIN, &user.username, PASSWORD).await;
    assert_problem(old, 401, "invalid_credentials").await;
    let new = app
        .post_credentials(LOGIN, &user.username, NEW_PASSWORD)
        .await;
    assert_eq!(new.status(), StatusCode::OK, "the new password signs in");
}

/// A device token from before the change is ignored afterwards: its login
/// is throttled like an unknown client's (here: refused by the spent
/// username cap, which a known device would bypass).
async fn a_password_change_kills_device_tokens(backend: Backend) {
    let settings = [
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("device")).await;
    let device = device_of(&user.tokens);
    let code = app.code(&user.secret, 0);
    let response = change_password(
        &app,
        &user.tokens,
        change_body(PASSWORD, NEW_PASSWORD, &code),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    spend_login_cap(&app, &user.username, 10).await;
    let login = login_as(
        &app,
        "203.0.113.50",
        &user.username,
        NEW_PASSWORD,
        Some(&device),
    )
    .await;
    assert_too_many(login).await;
}

async fn a_password_change_refuses_a_wrong_password_or_code(app: TestApp) {
    let user = app.enrolled_user(&unique_name("wrong")).await;
    let code = app.code(&user.secret, 0);
    let response = change_password(
        &app,
        &user.tokens,
        change_body("wrong password", NEW_PASSWORD, &code),
    )
    .await;
    assert_problem(response, 401, "invalid_credentials").await;
    let wrong = &wrong_codes(&app, &user.secret, 1)[0];
    let response = change_password(
        &app,
        &user.tokens,
        change_body(PASSWORD, NEW_PASSWORD, wrong),
    )
    .await;
    assert_problem(response, 401, "invalid_otp").await;
    // Nothing changed.
    let old = app.post_credentials(LOGIN, &user.username, PASSWORD).await;
    assert_eq!(old.status(), StatusCode::OK);
}

async fn a_new_password_must_follow_the_rules_before_anything_is_checked(app: TestApp) {
    let user = app.enrolled_user(&unique_name("rules")).await;
    let code = app.code(&user.secret, 0);
    let too_common = "password123";
    for new in ["short", user.username.to_uppercase().as_str(), too_common] {
        // A wrong current password: the 422 comes first all the same.
        let body = change_body("wrong password", new, &code);
        let response = change_password(&app, &user.tokens, body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "new_password", "{problem}");
    }
    let response = change_password(&app, &user.tokens, json!({"code": "12345"})).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    let mut fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["code", "current_password", "new_password"]);
    // None of those counted as a wrong password.
    let response = change_password(
        &app,
        &user.tokens,
        change_body(PASSWORD, NEW_PASSWORD, &code),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn five_wrong_current_passwords_lock_the_password_change(app: TestApp) {
    let user = app.enrolled_user(&unique_name("locked")).await;
    let code = app.code(&user.secret, 0);
    for _ in 0..5 {
        let body = change_body("wrong password", NEW_PASSWORD, &code);
        let response = change_password(&app, &user.tokens, body).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let body = change_body(PASSWORD, NEW_PASSWORD, &code);
    assert_too_many(change_password(&app, &user.tokens, body).await).await;
}

async fn wrong_codes_lock_deletion_whatever_the_password(app: TestApp) {
    let user = app.enrolled_user(&unique_name("codes")).await;
    for code in wrong_codes(&app, &user.secret, 5) {
        let response = delete_account(&app, &user.tokens, PASSWORD, &code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    let code = app.code(&user.secret, 0);
    assert_too_many(delete_account(&app, &user.tokens, "wrong password", &code).await).await;
    assert_too_many(delete_account(&app, &user.tokens, PASSWORD, &code).await).await;
    assert!(pair_is_live(&app, &user.tokens).await, "not deleted");
}

async fn deletion_refuses_a_wrong_password_or_code_and_bad_bodies(app: TestApp) {
    let user = app.enrolled_user(&unique_name("refuse")).await;
    let code = app.code(&user.secret, 0);
    let response = delete_account(&app, &user.tokens, "wrong password", &code).await;
    assert_problem(response, 401, "invalid_credentials").await;
    let wrong = &wrong_codes(&app, &user.secret, 1)[0];
    let response = delete_account(&app, &user.tokens, PASSWORD, wrong).await;
    assert_problem(response, 401, "invalid_otp").await;
    let response = app
        .post(
            ACCOUNT_DELETE,
            Some(user.access_token()),
            json!({"code": 123456}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
    let pending = pending_token(&app).await;
    let body = json!({"password": PASSWORD, "code": code});
    let response = app.post(ACCOUNT_DELETE, Some(&pending), body.clone()).await;
    assert_problem(response, 403, "two_factor_required").await;
    let response = app.post(ACCOUNT_DELETE, None, body).await;
    assert_problem(response, 401, "invalid_token").await;
    assert!(pair_is_live(&app, &user.tokens).await, "not deleted");
}

/// Every token of a deleted user is refused, and the name is free again.
async fn deletion_erases_the_account_and_frees_the_username(app: TestApp) {
    let user = app.enrolled_user(&unique_name("Gone")).await;
    let other = app.sign_in(&user).await;
    app.advance_steps(1);
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap().to_owned();
    let code = app.code(&user.secret, 0);
    let response = delete_account(&app, &user.tokens, PASSWORD, &code).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for tokens in [&user.tokens, &other] {
        assert!(
            !pair_is_live(&app, tokens).await,
            "a session of the deleted user"
        );
    }
    let verify = app.verify(&pending, &app.code(&user.secret, 1)).await;
    assert_problem(verify, 401, "invalid_token").await;
    let login = app.post_credentials(LOGIN, &user.username, PASSWORD).await;
    assert_problem(login, 401, "invalid_credentials").await;

    let again = app.register(&user.username.to_lowercase()).await;
    assert_ne!(again["user"]["id"], user.user_id.as_str(), "a new account");
    assert_eq!(again["next_step"], "setup_2fa");
}

/// The username's login counters go with the account: a new account of the
/// same name does not inherit the old one's spent hourly cap.
async fn deletion_forgets_the_throttle_rows_of_the_user(backend: Backend) {
    let settings = [
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("throttled")).await;
    spend_login_cap(&app, &user.username, 9).await;
    let code = app.code(&user.secret, 0);
    let response = delete_account(&app, &user.tokens, PASSWORD, &code).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.register(&user.username).await;
    spend_login_cap(&app, &user.username, 2).await;
    let login = login_as(&app, "203.0.113.50", &user.username, PASSWORD, None).await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "a fresh cap for the new account"
    );
}

fn admin_delete_user(app: &TestApp, name: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .args(["admin", "delete-user", name])
        .env("DATABASE_URL", &app.database_url)
        .env("OTPGATE_DATA_DIR", app.data_dir())
        .env("OTPGATE_JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .expect("otpgate runs")
}

async fn the_operator_can_delete_a_user(app: TestApp) {
    let user = app.enrolled_user(&unique_name("Operated")).await;
    let output = admin_delete_user(&app, &user.username.to_uppercase());
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.contains(&user.user_id) && out.contains("1 session(s)"),
        "{out}"
    );
    assert!(!pair_is_live(&app, &user.tokens).await);
    app.register(&user.username).await;

    let output = admin_delete_user(&app, "nobody-by-this-name");
    assert!(!output.status.success(), "an unknown user is an error");
}

on_both_backends!(
    a_password_change_keeps_the_caller_and_ends_everything_else,
    a_password_change_refuses_a_wrong_password_or_code,
    a_new_password_must_follow_the_rules_before_anything_is_checked,
    five_wrong_current_passwords_lock_the_password_change,
    wrong_codes_lock_deletion_whatever_the_password,
    deletion_refuses_a_wrong_password_or_code_and_bad_bodies,
    deletion_erases_the_account_and_frees_the_username,
    the_operator_can_delete_a_user,
);

on_both_backends_with_own_settings!(
    a_password_change_kills_device_tokens,
    deletion_forgets_the_throttle_rows_of_the_user,
);
