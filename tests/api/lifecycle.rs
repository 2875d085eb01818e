//! Recovery codes, refresh tokens, disable / re-enrol and the security log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::clients::wrong_codes;
use crate::helpers::jwt::claims;
use crate::helpers::paths::{
    DISABLE, EVENTS, LOGIN, LOGOUT, ME, RECOVER, RECOVERY_CODES, REFRESH, VERIFY,
};
use crate::helpers::raw_http::{RACE_ROUNDS, RacedPost, count_status, post_together};
use crate::helpers::*;

fn recovery_codes(tokens: &Value) -> Vec<String> {
    tokens["recovery_codes"]
        .as_array()
        .expect("recovery_codes present")
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

/// `POST /auth/refresh` with `token` (any JSON value, to probe bad ones).
async fn refresh(app: &TestApp, token: Value) -> reqwest::Response {
    app.post(REFRESH, None, json!({"refresh_token": token}))
        .await
}

async fn first_verification_returns_ten_recovery_codes_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("codes")).await;
    let codes = recovery_codes(&user.tokens);
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for code in &codes {
        assert_eq!(code.len(), 11, "{code}");
        assert_eq!(&code[5..6], "-");
        assert!(
            code.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase())
        );
    }
    assert!(user.tokens["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(user.tokens["refresh_expires_in"], 2_592_000);
    // A later verification carries no codes.
    let tokens = app.sign_in(&user).await;
    assert!(tokens.get("recovery_codes").is_none(), "{tokens}");
    assert!(tokens["refresh_token"].is_string());
}

async fn a_recovery_code_signs_in_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("recover")).await;
    let codes = recovery_codes(&user.tokens);
    // Case and dash do not matter.
    let typed = codes[0].to_uppercase().replace('-', "");
    let response = app.recover(&user.username, &typed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "recovery_code"])
    );
    assert!(tokens.get("recovery_codes").is_none());
    let response = app.get(ME, tokens["access_token"].as_str()).await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = app.recover(&user.username, &codes[0]).await;
    assert_problem(response, 401, "invalid_recovery_code").await;
    let response = app.recover(&user.username, "aaaaa-aaaaa").await;
    assert_problem(response, 401, "invalid_recovery_code").await;
    let response = app.recover(&user.username, &codes[1]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_recovery_code_raced_ten_times_succeeds_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("recrace")).await;
    for (round, code) in recovery_codes(&user.tokens)[..RACE_ROUNDS]
        .iter()
        .enumerate()
    {
        let mut posts = Vec::new();
        for _ in 0..10 {
            posts.push(RacedPost::recover(
                &app.login_pending(&user.username).await,
                code,
            ));
        }
        let answers = post_together(&app, posts).await;
        // One success; the rest are refused as spent (401) or, once five
        // failures pile up on the account, by its lockout (429).
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        let refused = count_status(&answers, 401) + count_status(&answers, 429);
        let counts = (count_status(&answers, 200), refused);
        assert_eq!(counts, (1, 9), "round {round}: {statuses:?}");
        // Past the lockout (at most an hour).
        app.clock.advance(chrono::Duration::hours(2));
    }
}

async fn wrong_recovery_codes_count_toward_the_pending_limit(app: TestApp) {
    let user = app.enrolled_user(&unique_name("reclimit")).await;
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    for _ in 0..3 {
        let response = app
            .post(
                RECOVER,
                Some(pending),
                json!({"recovery_code": "zzzzz-zzzzz"}),
            )
            .await;
        assert_problem(response, 401, "invalid_recovery_code").await;
    }
    for _ in 0..2 {
        let response = app.verify(pending, "000000").await;
        if response.status() == StatusCode::OK {
            return; // "000000" was the right code: nothing to learn this run.
        }
        assert_problem(response, 401, "invalid_otp").await;
    }
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_problem(response, 401, "invalid_token").await;
}

/// `POST /2fa/recovery-codes` for `user`, confirmed with `code`.
async fn regenerate_codes(app: &TestApp, user: &EnrolledUser, code: &str) -> reqwest::Response {
    app.post(
        RECOVERY_CODES,
        Some(user.access_token()),
        json!({"code": code}),
    )
    .await
}

async fn regenerating_codes_kills_the_old_ones(app: TestApp) {
    let user = app.enrolled_user(&unique_name("regen")).await;
    let old = recovery_codes(&user.tokens);
    let response = regenerate_codes(&app, &user, "12345").await;
    assert_problem(response, 422, "validation_failed").await;
    let response = regenerate_codes(&app, &user, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let new = recovery_codes(&response.json().await.unwrap());
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|code| !old.contains(code)));
    let response = app.recover(&user.username, &old[0]).await;
    assert_problem(response, 401, "invalid_recovery_code").await;
    let response = app.recover(&user.username, &new[0]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let types = app.event_types(&response.json().await.unwrap()).await;
    for logged in ["recovery_codes_regenerated", "recovery_code_used"] {
        assert!(types.iter().any(|t| t == logged), "{logged}: {types:?}");
    }
    // The code used to regenerate cannot be used again.
    let response = regenerate_codes(&app, &user, &app.code(&user.secret, 0)).await;
    assert_problem(response, 401, "invalid_otp").await;
}

async fn refresh_rotates_and_detects_reuse(app: TestApp) {
    let user = app.enrolled_user(&unique_name("refresh")).await;
    let first = user.tokens["refresh_token"].as_str().unwrap().to_owned();
    let response = refresh(&app, json!(first)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first);
    assert_eq!(second["token_type"], "Bearer");
    assert_eq!(second["expires_in"], 900);
    assert!(second.get("recovery_codes").is_none());
    let access = second["access_token"].as_str().unwrap();
    let (old_claims, new_claims) = (claims(user.access_token()), claims(access));
    assert_eq!(new_claims["sid"], old_claims["sid"]);
    assert_eq!(new_claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(new_claims["aal"], "aal2");
    assert_eq!(app.get(ME, Some(access)).await.status(), StatusCode::OK);

    // The first token again: reuse. The whole session dies, new tokens too.
    let response = refresh(&app, json!(first)).await;
    assert_problem(response, 401, "invalid_token").await;
    let response = refresh(&app, json!(second_refresh)).await;
    assert_problem(response, 401, "invalid_token").await;
    let response = app.get(ME, Some(access)).await;
    assert_problem(response, 401, "invalid_token").await;

    // It shows in the security log, seen from a new session.
    let tokens = app.sign_in(&user).await;
    let types = app.event_types(&tokens).await;
    assert!(
        types.iter().any(|t| t == "refresh_reuse_detected"),
        "{types:?}"
    );
}

async fn refresh_refuses_garbage_and_logged_out_sessions(app: TestApp) {
    for garbage in ["", "nope", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let response = refresh(&app, json!(garbage)).await;
        let (status, _) = problem(response).await;
        assert!(status == 401 || status == 422, "{garbage:?}: {status}");
    }
    let unknown = "A".repeat(43);
    let response = refresh(&app, json!(unknown)).await;
    assert_problem(response, 401, "invalid_token").await;

    let user = app.enrolled_user(&unique_name("logoutrefresh")).await;
    let response = app
        .request(Method::POST, LOGOUT, Some(user.access_token()), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = refresh(&app, json!(user.tokens["refresh_token"])).await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn refresh_keeps_the_recovery_amr(app: TestApp) {
    let user = app.enrolled_user(&unique_name("amr")).await;
    let code = recovery_codes(&user.tokens)[0].clone();
    let tokens: Value = app
        .recover(&user.username, &code)
        .await
        .json()
        .await
        .unwrap();
    let response = refresh(&app, json!(tokens["refresh_token"])).await;
    let refreshed: Value = response.json().await.unwrap();
    assert_eq!(
        claims(refreshed["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "recovery_code"])
    );
}

async fn disable_then_re_enrol_with_a_new_secret(app: TestApp) {
    let user = app.enrolled_user(&unique_name("disable")).await;
    let other_session = {
        let tokens = app.sign_in(&user).await;
        app.advance_steps(1);
        tokens
    };
    let token = Some(user.access_token());
    let response = app
        .post(
            DISABLE,
            token,
            json!({"password": "wrong password!", "code": app.code(&user.secret, 0)}),
        )
        .await;
    assert_problem(response, 401, "invalid_credentials").await;
    let wrong_code = &wrong_codes(&app, &user.secret, 1)[0];
    let response = app
        .post(
            DISABLE,
            token,
            json!({"password": PASSWORD, "code": wrong_code}),
        )
        .await;
    assert_problem(response, 401, "invalid_otp").await;
    // Two-factor is still on, and the session still live.
    let me: Value = app.get(ME, token).await.json().await.unwrap();
    assert_eq!(me["two_factor_enabled"], true, "{me}");
    let login = app.login(&user.username).await;
    assert_eq!(login["next_step"], "verify_2fa");
    let response = app
        .post(
            DISABLE,
            token,
            json!({"password": PASSWORD, "code": app.code(&user.secret, 0)}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // Every session is gone, refresh tokens included.
    for access in [
        user.access_token(),
        other_session["access_token"].as_str().unwrap(),
    ] {
        assert_problem(app.get(ME, Some(access)).await, 401, "invalid_token").await;
    }
    let response = refresh(&app, json!(other_session["refresh_token"])).await;
    assert_problem(response, 401, "invalid_token").await;
    // Recovery codes died with the secret.
    let response = app
        .recover(&user.username, &recovery_codes(&user.tokens)[0])
        .await;
    assert_problem(response, 401, "invalid_recovery_code").await;

    let login = app.login(&user.username).await;
    assert_eq!(login["next_step"], "setup_2fa");
    let pending = login["pending_token"].as_str().unwrap();
    let setup = app.setup(pending).await;
    let secret = setup["secret"].as_str().unwrap();
    assert_ne!(secret, user.secret);
    let response = app.verify(pending, &app.code(secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(
        recovery_codes(&tokens).len(),
        10,
        "re-enrolment issues new codes"
    );
    let types = app.event_types(&tokens).await;
    assert!(
        types.iter().any(|t| t == "two_factor_disabled"),
        "{types:?}"
    );
}

async fn the_security_log_lists_events_newest_first(app: TestApp) {
    let name = unique_name("log");
    // A second between events, so that their times tell their order.
    let tick = || app.clock.advance(chrono::Duration::seconds(1));
    let registered = app.register(&name).await;
    tick();
    let response = app.post_credentials(LOGIN, &name, "not the password").await;
    assert_problem(response, 401, "invalid_credentials").await;
    tick();
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let near = [-1, 0, 1].map(|offset| app.code(&secret, offset));
    let wrong = if near.contains(&"000000".to_owned()) {
        "111111"
    } else {
        "000000"
    };
    assert_problem(app.verify(pending, wrong).await, 401, "invalid_otp").await;
    tick();
    let response = app
        .client
        .post(app.url(VERIFY))
        .bearer_auth(pending)
        .header("user-agent", "log-test/1.0")
        .json(&json!({"code": app.code(&secret, 0)}))
        .send()
        .await
        .unwrap();
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let response = app.get(EVENTS, Some(access)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let events = body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "login_succeeded",
            "two_factor_enabled",
            "otp_failed",
            "login_failed",
            "registered"
        ]
    );
    assert_eq!(events[0]["user_agent"], "log-test/1.0");
    assert_eq!(events[0]["ip"], "127.0.0.1");
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    // Enabling and signing in happen in one request, at one time.
    assert!(times[0] == times[1], "{times:?}");
    assert!(
        times[1..].windows(2).all(|pair| pair[0] > pair[1]),
        "{times:?}"
    );
    // Nothing secret is in the log, the wrong password included.
    let text = body.to_string();
    for secret in [secret.as_str(), PASSWORD, "not the password"] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }

    let response = app.request(Method::POST, LOGOUT, Some(access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let pending = app.login(&name).await["pending_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance_steps(1);
    let tokens: Value = app
        .verify(&pending, &app.code(&secret, 0))
        .await
        .json()
        .await
        .unwrap();
    let types = app.event_types(&tokens).await;
    assert_eq!(types[..2], ["login_succeeded", "logout"]);
}

async fn the_security_log_shows_at_most_fifty(app: TestApp) {
    let user = app.enrolled_user(&unique_name("fifty")).await;
    let mut access = String::new();
    // Each round logs login_succeeded and logout: 52 events, plus enrolment's.
    for _ in 0..26 {
        let tokens = app.sign_in(&user).await;
        app.advance_steps(1);
        access = tokens["access_token"].as_str().unwrap().to_owned();
        let response = app.request(Method::POST, LOGOUT, Some(&access), None).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let tokens = app.sign_in(&user).await;
    assert_ne!(tokens["access_token"], json!(access));
    let events = app.events(&tokens).await;
    assert_eq!(events.len(), 50);
    assert_eq!(events[0]["type"], "login_succeeded");
    assert_eq!(events[1]["type"], "logout");
}

on_both_backends!(
    first_verification_returns_ten_recovery_codes_once,
    a_recovery_code_signs_in_once,
    a_recovery_code_raced_ten_times_succeeds_once,
    wrong_recovery_codes_count_toward_the_pending_limit,
    regenerating_codes_kills_the_old_ones,
    refresh_rotates_and_detects_reuse,
    refresh_refuses_garbage_and_logged_out_sessions,
    refresh_keeps_the_recovery_amr,
    disable_then_re_enrol_with_a_new_secret,
    the_security_log_lists_events_newest_first,
    the_security_log_shows_at_most_fifty,
);
