//! Known devices: an attacker who spends a username's hourly cap of wrong
//! passwords from many addresses locks out unknown clients, never the
//! owner's known devices (API.md 1.1, "Known devices").

use chrono::Duration;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::clients::{assert_too_many, login_as, spend_login_cap};
use crate::helpers::paths::DISABLE;
use crate::helpers::*;

/// A cap of ten failures an hour (quick to spend); every request comes
/// through a trusted proxy on 127.0.0.1 that names the client.
const SETTINGS: [(&str, &str); 2] = [
    ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
];
const CAP: u8 = 10;

/// A client address that has not been used before in the test.
const FRESH_CLIENT: &str = "203.0.113.50";

fn device_of(tokens: &Value) -> String {
    tokens["device_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a device_token in {tokens}"))
        .to_owned()
}

/// The owner's login with the right password from a fresh address.
async fn owner_login(app: &TestApp, user: &EnrolledUser, device: Option<&str>) -> Response {
    login_as(app, FRESH_CLIENT, &user.username, PASSWORD, device).await
}

/// Signs in (login, then the current code) carrying `device`; the token
/// response. Moves the clock a step on, for the next code.
async fn sign_in_with(app: &TestApp, user: &EnrolledUser, device: Option<&str>) -> Value {
    let response = owner_login(app, user, device).await;
    assert_eq!(response.status(), StatusCode::OK, "login");
    let login: Value = response.json().await.unwrap();
    let pending = login["pending_token"].as_str().unwrap();
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK, "verify");
    app.advance_steps(1);
    response.json().await.unwrap()
}

async fn verify_hands_a_device_token_only_to_unknown_devices(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &SETTINGS).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("device")).await;
    let device = device_of(&user.tokens);
    let known = sign_in_with(&app, &user, Some(&device)).await;
    assert!(known.get("device_token").is_none(), "{known}");
    let unknown = sign_in_with(&app, &user, None).await;
    assert_ne!(device_of(&unknown), device, "a new device, a new token");
    let garbage = sign_in_with(&app, &user, Some("not a device token")).await;
    device_of(&garbage);
}

async fn spending_the_username_cap_does_not_lock_out_a_known_device(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &SETTINGS).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("owner")).await;
    let device = device_of(&user.tokens);
    spend_login_cap(&app, &user.username, CAP).await;
    assert_too_many(owner_login(&app, &user, None).await).await;
    let tokens = sign_in_with(&app, &user, Some(&device)).await;
    assert!(tokens["access_token"].is_string());
}

async fn foreign_garbage_and_expired_device_tokens_are_ignored(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &SETTINGS).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("owner")).await;
    let expired = device_of(&user.tokens);
    // Device tokens live a year.
    app.clock.advance(Duration::days(366));
    let other = app.enrolled_user(&unique_name("other")).await;
    let live = device_of(&sign_in_with(&app, &user, None).await);
    spend_login_cap(&app, &user.username, CAP).await;

    let refused = owner_login(&app, &user, None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "no device");
    let refused: Value = refused.json().await.unwrap();
    let well_formed_unknown = "A".repeat(43);
    let ignored = [
        ("another user's", device_of(&other.tokens)),
        ("garbage", "garbage".to_owned()),
        ("well-formed, unknown", well_formed_unknown),
        ("expired", expired),
    ];
    for (label, device) in ignored {
        let response = owner_login(&app, &user, Some(&device)).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{label}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, refused, "{label}: the same answer as without one");
    }
    assert_eq!(
        owner_login(&app, &user, Some(&live)).await.status(),
        StatusCode::OK
    );
}

async fn wrong_passwords_from_a_known_device_lock_only_that_device(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &SETTINGS).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("owner")).await;
    let device = device_of(&user.tokens);
    for _ in 0..5 {
        let response = login_as(&app, FRESH_CLIENT, &user.username, "wrong", Some(&device)).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let retry = assert_too_many(owner_login(&app, &user, Some(&device)).await).await;
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    // The device's streak is its own: the username is not locked.
    let elsewhere = login_as(&app, "192.0.2.9", &user.username, PASSWORD, None).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);
}

async fn disabling_two_factor_kills_device_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &SETTINGS).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("owner")).await;
    let old_device = device_of(&user.tokens);
    let body = json!({"password": PASSWORD, "code": app.code(&user.secret, 0)});
    let response = app.post(DISABLE, Some(user.access_token()), body).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "disable");

    // Enrol again, as a new device.
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let response = app.verify(pending, &app.code(&secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK, "verify");
    let new_device = device_of(&response.json().await.unwrap());

    spend_login_cap(&app, &user.username, CAP).await;
    assert_too_many(owner_login(&app, &user, Some(&old_device)).await).await;
    assert_eq!(
        owner_login(&app, &user, Some(&new_device)).await.status(),
        StatusCode::OK
    );
}

on_both_backends_with_own_settings!(
    verify_hands_a_device_token_only_to_unknown_devices,
    spending_the_username_cap_does_not_lock_out_a_known_device,
    foreign_garbage_and_expired_device_tokens_are_ignored,
    wrong_passwords_from_a_known_device_lock_only_that_device,
    disabling_two_factor_kills_device_tokens,
);
