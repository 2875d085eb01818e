//! What tokens claim, how long they live, and that logout revokes them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::jwt::{
    ACCESS_TTL, PENDING_TTL, assert_accepted, assert_invalid_token, assert_rejected, me, parts,
    sign,
};
use crate::helpers::paths::{LOGOUT, ME, REFRESH, SETUP};
use crate::helpers::{Backend, JWT_SECRET, TestApp, assert_problem, unique_name};

fn set_clock(app: &TestApp, unix: i64) {
    app.clock
        .set(chrono::DateTime::from_timestamp(unix, 0).unwrap());
}

async fn access_and_pending_token_claims(app: TestApp) {
    let before = app.clock_now().timestamp();
    let user = app.enrolled_user(&unique_name("claims")).await;
    let after = app.clock_now().timestamp();
    assert_eq!(user.tokens["token_type"], "Bearer");
    assert_eq!(user.tokens["expires_in"], ACCESS_TTL);

    let (header, claims) = parts(user.access_token());
    assert_eq!(header["alg"], "HS256", "{header}");
    assert!(header["typ"].is_string(), "{header}");
    assert_eq!(claims["sub"], user.user_id.as_str(), "{claims}");
    for name in ["sid", "jti", "iss"] {
        assert!(
            claims[name].as_str().is_some_and(|v| !v.is_empty()),
            "{name}: {claims}"
        );
    }
    assert_eq!(claims["iss"], "otpgate", "{claims}");
    assert!(
        claims["aud"].is_string() || claims["aud"].is_array(),
        "{claims}"
    );
    let iat = claims["iat"]
        .as_i64()
        .unwrap_or_else(|| panic!("iat: {claims}"));
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in {before}..={after}"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - iat,
        ACCESS_TTL,
        "{claims}"
    );
    assert_eq!(claims["amr"], json!(["pwd", "otp"]), "{claims}");
    assert_eq!(claims["aal"], "aal2", "{claims}");

    let login = app.login(&user.username).await;
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], PENDING_TTL);
    let pending = login["pending_token"].as_str().unwrap();
    let (pending_header, pending_claims) = parts(pending);
    assert_eq!(pending_header["alg"], "HS256");
    assert_ne!(
        pending_header["typ"], header["typ"],
        "{pending_header} vs {header}"
    );
    assert_eq!(pending_claims["sub"], user.user_id.as_str());
    assert_eq!(pending_claims["iss"], claims["iss"]);
    assert_ne!(pending_claims["aud"], claims["aud"], "{pending_claims}");
    assert!(pending_claims.get("aal").is_none(), "{pending_claims}");
    assert_ne!(
        pending_claims["amr"],
        json!(["pwd", "otp"]),
        "{pending_claims}"
    );
    let pending_iat = pending_claims["iat"].as_i64().unwrap();
    assert_eq!(
        pending_claims["exp"].as_i64().unwrap() - pending_iat,
        PENDING_TTL
    );

    // A second session has its own sid and jti.
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    let (_, second_claims) = parts(second["access_token"].as_str().unwrap());
    assert_ne!(second_claims["sid"], claims["sid"]);
    assert_ne!(second_claims["jti"], claims["jti"]);
    assert_eq!(second_claims["sub"], claims["sub"]);
}

async fn logout_revokes_the_session(app: TestApp) {
    let user = app.enrolled_user(&unique_name("logout")).await;
    let access = user.access_token();
    // A second session of the same user.
    let other = app.sign_in(&user).await;
    let other_access = other["access_token"].as_str().unwrap();

    let response = app.request(Method::POST, LOGOUT, Some(access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    assert_invalid_token(me(&app, access).await, "access token after logout").await;
    let response = app.request(Method::POST, LOGOUT, Some(access), None).await;
    assert_invalid_token(response, "second logout").await;
    // A re-signed copy is no better.
    let (header, claims) = parts(access);
    assert_rejected(
        &app,
        &sign(&header, &claims, JWT_SECRET.as_bytes()),
        "re-signed after logout",
    )
    .await;
    // The other session is untouched.
    assert_accepted(&app, other_access, &user, "the other session").await;
}

async fn tokens_expire_on_the_server_clock(app: TestApp) {
    let user = app.enrolled_user(&unique_name("expiry")).await;
    let (_, claims) = parts(user.access_token());
    let exp = claims["exp"].as_i64().unwrap();
    set_clock(&app, exp - 1);
    assert_accepted(&app, user.access_token(), &user, "one second before exp").await;
    set_clock(&app, exp + 6);
    assert_rejected(
        &app,
        user.access_token(),
        "6 s after exp (leeway is at most 5 s)",
    )
    .await;
    set_clock(&app, exp + 3600);
    assert_rejected(&app, user.access_token(), "an hour after exp").await;

    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let (_, pending_claims) = parts(pending);
    let pending_exp = pending_claims["exp"].as_i64().unwrap();
    set_clock(&app, pending_exp + 6);
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_invalid_token(response, "pending token 6 s after exp").await;
}

/// Short configured lifetimes, as a deployment may set them: tokens die on
/// the server's clock, within the 5 s leeway.
async fn configured_lifetimes_are_enforced(backend: Backend) {
    let extra = [
        ("OTPGATE_ACCESS_TTL_SECS", "1"),
        ("OTPGATE_PENDING_TTL_SECS", "1"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    let registered = app.register(&unique_name("ttl")).await;
    assert_eq!(registered["expires_in"], 1);
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let response = app.verify(pending, &app.code(&secret, 0)).await;
    let tokens: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get(ME, Some(access)).await.status(), 200);
    app.clock.advance(chrono::Duration::seconds(7));
    assert_invalid_token(app.get(ME, Some(access)).await, "expired access").await;
    let late = app
        .login(registered["user"]["username"].as_str().unwrap())
        .await;
    app.clock.advance(chrono::Duration::seconds(7));
    let response = app
        .request(
            reqwest::Method::POST,
            SETUP,
            late["pending_token"].as_str(),
            None,
        )
        .await;
    assert_invalid_token(response, "expired pending").await;
}

/// `POST /auth/refresh` with `token`; the new tokens, asserting 200.
async fn refreshed(app: &TestApp, token: &Value) -> Value {
    let response = app
        .post(REFRESH, None, json!({"refresh_token": token}))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "refresh");
    response.json().await.unwrap()
}

async fn assert_refresh_refused(app: &TestApp, token: &Value, context: &str) {
    let response = app
        .post(REFRESH, None, json!({"refresh_token": token}))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
    assert_problem(response, 401, "invalid_token").await;
}

/// Refresh tokens live 100 s and sessions 250 s: a refresh token dies on
/// time even in a live session, the last one ends with the session, and
/// refreshing never extends the session.
async fn refresh_tokens_and_sessions_expire(backend: Backend) {
    let extra = [
        ("OTPGATE_REFRESH_TTL_SECS", "100"),
        ("OTPGATE_SESSION_TTL_SECS", "250"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    // Whole seconds, so that every lifetime below is exact.
    let start = app.clock_now().timestamp();
    set_clock(&app, start);
    let user = app.enrolled_user(&unique_name("lifetime")).await;
    assert_eq!(user.tokens["refresh_expires_in"], 100);
    // A second session, opened 30 s after the first (enrolment's step).
    let other = app.sign_in(&user).await;

    let second = refreshed(&app, &user.tokens["refresh_token"]).await;
    assert_eq!(second["refresh_expires_in"], 100);
    set_clock(&app, start + 129);
    let third = refreshed(&app, &second["refresh_token"]).await;
    assert_eq!(third["refresh_expires_in"], 100);

    // The other session's first refresh token died at 130 s; its session
    // lives on, and retrying the dead token does not end it.
    set_clock(&app, start + 131);
    for attempt in ["first", "retry"] {
        assert_refresh_refused(&app, &other["refresh_token"], attempt).await;
    }
    let me = app.get(ME, other["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK, "the other session is live");

    // Near the session's end, a new refresh token lives only until it.
    set_clock(&app, start + 200);
    let last = refreshed(&app, &third["refresh_token"]).await;
    assert_eq!(
        last["refresh_expires_in"], 50,
        "capped at the session's end"
    );
    let access = last["access_token"].as_str();
    assert_eq!(app.get(ME, access).await.status(), StatusCode::OK);

    // At 251 s the session is over: its live access token (issued 51 s
    // ago for 900) and its last refresh token are refused.
    set_clock(&app, start + 251);
    assert_invalid_token(app.get(ME, access).await, "access after the session").await;
    assert_refresh_refused(&app, &last["refresh_token"], "after the session").await;
}

on_both_backends!(
    tokens_expire_on_the_server_clock,
    access_and_pending_token_claims,
    logout_revokes_the_session,
);
on_both_backends_with_own_settings!(
    configured_lifetimes_are_enforced,
    refresh_tokens_and_sessions_expire,
);
