//! The user's sessions (API.md 1.1, "Sessions"): the list, revoking one,
//! logout scopes, `last_used_at` at refresh and `auth_time` in the claims.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::jwt::claims;
use crate::helpers::paths::{LOGOUT, SESSIONS};
use crate::helpers::sessions::{
    access, list_sessions, pair_is_live, refresh, revoke_session, session_id,
};
use crate::helpers::*;

/// A user with three sessions, oldest first (the first from enrolment).
async fn user_with_three_sessions(app: &TestApp) -> (EnrolledUser, Vec<Value>) {
    let user = app.enrolled_user(&unique_name("sessions")).await;
    let mut sessions = vec![user.tokens.clone()];
    for _ in 0..2 {
        sessions.push(app.sign_in(&user).await);
        app.advance_steps(1);
    }
    (user, sessions)
}

async fn the_list_shows_live_sessions_newest_first(app: TestApp) {
    let (_, sessions) = user_with_three_sessions(&app).await;
    let listed = list_sessions(&app, &sessions[1]).await;
    let ids: Vec<_> = listed.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected: Vec<_> = sessions.iter().rev().map(session_id).collect();
    assert_eq!(ids, expected, "newest first");
    let current: Vec<_> = listed.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [false, true, false]);
    for session in &listed {
        assert_eq!(session["amr"], serde_json::json!(["pwd", "otp"]));
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(session["last_used_at"].is_null(), "{session}");
        let created = session["created_at"].as_str().unwrap();
        let expires = session["expires_at"].as_str().unwrap();
        assert!(created < expires, "{session}");
        assert!(session.get("user_agent").is_some(), "{session}");
    }
    // A revoked session leaves the list.
    app.post(LOGOUT, Some(access(&sessions[0])), Value::Null)
        .await;
    assert_eq!(list_sessions(&app, &sessions[1]).await.len(), 2);
}

async fn the_list_records_the_user_agent(app: TestApp) {
    let user = app.enrolled_user(&unique_name("agent")).await;
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let response = app
        .client
        .post(app.url(crate::helpers::paths::VERIFY))
        .bearer_auth(pending)
        .header("user-agent", "otpgate-tests/1.0")
        .json(&serde_json::json!({"code": app.code(&user.secret, 0)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let listed = list_sessions(&app, &tokens).await;
    assert_eq!(listed[0]["user_agent"], "otpgate-tests/1.0");
}

async fn last_used_at_changes_at_refresh_only(app: TestApp) {
    let user = app.enrolled_user(&unique_name("used")).await;
    // Authenticated requests do not write it (the hot path stays a read).
    app.get(crate::helpers::paths::ME, Some(user.access_token()))
        .await;
    assert!(list_sessions(&app, &user.tokens).await[0]["last_used_at"].is_null());

    let response = refresh(&app, user.tokens["refresh_token"].as_str().unwrap()).await;
    let first: Value = response.json().await.unwrap();
    let first_used = list_sessions(&app, &first).await[0]["last_used_at"].clone();
    let first_used = first_used.as_str().expect("set by the refresh").to_owned();

    app.clock.advance(chrono::Duration::seconds(90));
    let response = refresh(&app, first["refresh_token"].as_str().unwrap()).await;
    let second: Value = response.json().await.unwrap();
    let second_used = list_sessions(&app, &second).await[0]["last_used_at"].clone();
    assert!(
        second_used.as_str().unwrap() > first_used.as_str(),
        "{second_used}"
    );
}

async fn auth_time_is_when_the_second_factor_passed_and_survives_refresh(app: TestApp) {
    let user = app.enrolled_user(&unique_name("authtime")).await;
    let first = claims(user.access_token());
    let auth_time = first["auth_time"].as_i64().expect("an auth_time claim");
    assert_eq!(auth_time, first["iat"].as_i64().unwrap());

    app.clock.advance(chrono::Duration::minutes(20));
    let response = refresh(&app, user.tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    let later = claims(access(&refreshed));
    assert_eq!(later["auth_time"].as_i64(), Some(auth_time));
    assert!(later["iat"].as_i64().unwrap() >= auth_time + 20 * 60);
}

async fn revoking_a_session_kills_its_tokens_at_once(app: TestApp) {
    let (_, sessions) = user_with_three_sessions(&app).await;
    let victim = session_id(&sessions[0]);
    let response = revoke_session(&app, &sessions[2], &victim).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!pair_is_live(&app, &sessions[0]).await, "revoked");
    assert!(pair_is_live(&app, &sessions[1]).await, "untouched");
    assert_eq!(
        app.event_types(&sessions[2]).await[0],
        "session_revoked",
        "logged"
    );
    // Not live any more: 404.
    let again = revoke_session(&app, &sessions[2], &victim).await;
    assert_problem(again, 404, "not_found").await;
    // The caller's own session may be revoked too.
    let own = session_id(&sessions[2]);
    let response = revoke_session(&app, &sessions[2], &own).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        !pair_is_live(&app, &sessions[2]).await,
        "own session revoked"
    );
}

async fn another_users_session_is_not_found(app: TestApp) {
    let owner = app.enrolled_user(&unique_name("owner")).await;
    let intruder = app.enrolled_user(&unique_name("intruder")).await;
    let response = revoke_session(&app, &intruder.tokens, &session_id(&owner.tokens)).await;
    assert_problem(response, 404, "not_found").await;
    for unknown in ["0b9f1d4e-3c1a-4f7e-9a53-2d1c8e4b7a10", "not-a-session"] {
        let response = revoke_session(&app, &intruder.tokens, unknown).await;
        assert_problem(response, 404, "not_found").await;
    }
    assert!(
        pair_is_live(&app, &owner.tokens).await,
        "the owner's lives on"
    );
}

async fn session_endpoints_need_an_access_token(app: TestApp) {
    let user = app.enrolled_user(&unique_name("noauth")).await;
    let id = session_id(&user.tokens);
    let path = format!("{SESSIONS}/{id}");
    let pending = pending_token(&app).await;
    for (method, path) in [(Method::GET, SESSIONS), (Method::DELETE, path.as_str())] {
        let response = app.request(method.clone(), path, None, None).await;
        assert_problem(response, 401, "invalid_token").await;
        let response = app.request(method, path, Some(&pending), None).await;
        assert_problem(response, 403, "two_factor_required").await;
    }
}

async fn logout(app: &TestApp, tokens: &Value, query: &str) -> reqwest::Response {
    let path = format!("{LOGOUT}{query}");
    app.request(Method::POST, &path, Some(access(tokens)), None)
        .await
}

async fn logout_scopes_end_the_sessions_they_name(app: TestApp) {
    // (query, which of the three sessions survive a logout by the second)
    let cases = [
        ("", [true, false, true]),
        ("?scope=local", [true, false, true]),
        ("?scope=others", [false, true, false]),
        ("?scope=global", [false, false, false]),
    ];
    for (query, survivors) in cases {
        let (_, sessions) = user_with_three_sessions(&app).await;
        let response = logout(&app, &sessions[1], query).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{query}");
        for (n, (tokens, survives)) in sessions.iter().zip(survivors).enumerate() {
            assert_eq!(
                pair_is_live(&app, tokens).await,
                survives,
                "{query}: session {n}"
            );
        }
    }
}

async fn logout_scopes_are_logged(app: TestApp) {
    let (_, sessions) = user_with_three_sessions(&app).await;
    let response = logout(&app, &sessions[2], "?scope=others").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let types = app.event_types(&sessions[2]).await;
    assert_eq!(types[0], "session_revoked", "{types:?}");
    // Global: the others, then this one (read from a new session).
    let (user, sessions) = user_with_three_sessions(&app).await;
    let response = logout(&app, &sessions[2], "?scope=global").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let fresh = app.sign_in(&user).await;
    let types = app.event_types(&fresh).await;
    assert_eq!(
        types[..3],
        ["login_succeeded", "logout", "session_revoked"],
        "{types:?}"
    );
}

async fn an_unknown_logout_scope_is_refused(app: TestApp) {
    let user = app.enrolled_user(&unique_name("scope")).await;
    for query in [
        "?scope=everything",
        "?scope=",
        "?scope=LOCAL",
        "?scope=local&scope=global",
    ] {
        let response = logout(&app, &user.tokens, query).await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "scope", "{query}: {body}");
    }
    assert!(pair_is_live(&app, &user.tokens).await, "nothing was ended");
}

on_both_backends!(
    the_list_shows_live_sessions_newest_first,
    the_list_records_the_user_agent,
    last_used_at_changes_at_refresh_only,
    auth_time_is_when_the_second_factor_passed_and_survives_refresh,
    revoking_a_session_kills_its_tokens_at_once,
    another_users_session_is_not_found,
    session_endpoints_need_an_access_token,
    logout_scopes_end_the_sessions_they_name,
    logout_scopes_are_logged,
    an_unknown_logout_scope_is_refused,
);
