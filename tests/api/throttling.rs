//! Throttling and lockout, held in the database so that every instance
//! enforces the same limits.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::clients::{
    assert_too_many, login_as, post_as, registered_ip, spend_login_cap, wrong_codes,
};
use crate::helpers::paths::{HEALTHZ, LOGIN, RECOVER, REGISTER};
use crate::helpers::raw_http::{RACE_ROUNDS, RacedPost, count_status, post_together};
use crate::helpers::*;

/// Behind a trusted proxy on 127.0.0.1, whose `X-Forwarded-For` names the
/// client.
const BEHIND_A_PROXY: [(&str, &str); 1] = [("OTPGATE_TRUSTED_PROXIES", "127.0.0.1")];

async fn code_guessing_stops_at_the_sixth_try_across_tokens_and_instances(app: TestApp) {
    let user = app.enrolled_user(&unique_name("brute")).await;
    let other = app.spawn_sibling().await;
    let wrong = wrong_codes(&app, &user.secret, 5);
    let tokens = [
        app.login_pending(&user.username).await,
        other.login_pending(&user.username).await,
        app.login_pending(&user.username).await,
    ];
    // Five wrong codes spread over three pending tokens and two servers.
    let plan = [(&app, 0), (&other, 1), (&app, 1), (&other, 2), (&app, 0)];
    for ((server, token), code) in plan.into_iter().zip(&wrong) {
        let response = server.verify(&tokens[token], code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    // The sixth try is refused even with the right code, on either server.
    let retry = assert_too_many(other.verify(&tokens[2], &app.code(&user.secret, 0)).await).await;
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    let response = app
        .post(
            RECOVER,
            Some(&tokens[2]),
            json!({"recovery_code": "aaaaa-bbbbb"}),
        )
        .await;
    assert_too_many(response).await;

    // The lock ends after a minute; a right code then works and resets it.
    app.clock.advance(chrono::Duration::seconds(61));
    other.clock.advance(chrono::Duration::seconds(61));
    let response = app.verify(&tokens[2], &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();

    let types = app.event_types(&tokens).await;
    assert!(types.iter().any(|t| t == "locked_out"), "{types:?}");
}

async fn lockouts_double(app: TestApp) {
    let user = app.enrolled_user(&unique_name("double")).await;
    let wrong = wrong_codes(&app, &user.secret, 5);
    let mut retries = Vec::new();
    for _ in 0..2 {
        let pending = app.login_pending(&user.username).await;
        for code in &wrong {
            app.verify(&pending, code).await;
        }
        let pending = app.login_pending(&user.username).await;
        retries.push(assert_too_many(app.verify(&pending, &wrong[0]).await).await);
        app.clock
            .advance(chrono::Duration::seconds(retries[retries.len() - 1]));
    }
    assert_eq!(retries, [60, 120]);
}

async fn a_correct_code_resets_the_failure_streak(app: TestApp) {
    let user = app.enrolled_user(&unique_name("reset")).await;
    let wrong = wrong_codes(&app, &user.secret, 5);
    for round in 0..2 {
        let pending = app.login_pending(&user.username).await;
        for code in &wrong[..4] {
            assert_problem(app.verify(&pending, code).await, 401, "invalid_otp").await;
        }
        let response = app.verify(&pending, &app.code(&user.secret, 0)).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        app.advance_steps(1);
    }
}

async fn password_guessing_is_throttled_per_user_and_client(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &BEHIND_A_PROXY).await else {
        return;
    };
    let name = unique_name("pwd");
    app.register(&name).await;
    let (attacker, owner) = ("198.51.100.1", "203.0.113.1");
    for _ in 0..5 {
        let response = login_as(&app, attacker, &name, "wrong password", None).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    // Locked for this (username, address) pair, right password or not.
    let response = login_as(&app, attacker, &name, PASSWORD, None).await;
    let retry = assert_too_many(response).await;
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    // The same name from another address is not locked...
    let response = login_as(&app, owner, &name, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK, "the owner elsewhere");
    // ...nor another name from the attacker's address.
    let other = unique_name("pwd-other");
    app.register(&other).await;
    let response = login_as(&app, attacker, &other, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK, "another account");
    // The lock ends.
    app.clock.advance(chrono::Duration::seconds(61));
    let response = login_as(&app, attacker, &name, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK, "after the lock");
}

/// `name` in full-width letters and digits (U+FF01..U+FF5E), which NFKC
/// maps back to ASCII.
fn full_width(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            other => other,
        })
        .collect()
}

async fn case_and_width_forms_of_a_name_share_one_streak(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &BEHIND_A_PROXY).await else {
        return;
    };
    let name = unique_name("forms");
    app.register(&name).await;
    let forms = [
        name.to_uppercase(),
        full_width(&name),
        full_width(&name.to_uppercase()),
    ];
    // Each form alone is a valid way to sign in as this user.
    for form in &forms {
        let response = login_as(&app, "198.51.100.1", form, PASSWORD, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{form}");
    }
    let client = "198.51.100.2";
    for form in forms.iter().chain(&forms[..2]) {
        let response = login_as(&app, client, form, "wrong password", None).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let response = login_as(&app, client, &name, PASSWORD, None).await;
    assert_too_many(response).await;
}

async fn the_code_cap_holds_across_successes_and_pending_tokens(backend: Backend) {
    let settings = [("OTPGATE_OTP_FAILURES_PER_HOUR", "7")];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("codecap")).await;
    let wrong = wrong_codes(&app, &user.secret, 7);
    // Four wrong, then the right code: the streak resets, the hour's count
    // does not.
    let pending = app.login_pending(&user.username).await;
    for code in &wrong[..4] {
        assert_problem(app.verify(&pending, code).await, 401, "invalid_otp").await;
    }
    let response = app.verify(&pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.advance_steps(1);
    // Three more on a new token: a streak of three, seven in the hour.
    let pending = app.login_pending(&user.username).await;
    for code in &wrong[4..] {
        assert_problem(app.verify(&pending, code).await, 401, "invalid_otp").await;
    }
    let pending = app.login_pending(&user.username).await;
    let response = app.verify(&pending, &app.code(&user.secret, 0)).await;
    assert_too_many(response).await;
    // Two clock hours on, the failures have aged out.
    app.clock.advance(chrono::Duration::hours(2));
    let response = app
        .verify(
            &app.login_pending(&user.username).await,
            &app.code(&user.secret, 0),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "after the hour");
}

async fn a_parallel_burst_of_wrong_codes_stops_at_five(app: TestApp) {
    let user = app.enrolled_user(&unique_name("burst")).await;
    for round in 0..RACE_ROUNDS {
        // Four codes on each of three pending tokens (a token dies at five).
        let mut posts = Vec::new();
        for _ in 0..3 {
            let pending = app.login_pending(&user.username).await;
            for code in wrong_codes(&app, &user.secret, 4) {
                posts.push(RacedPost::verify(&pending, &code));
            }
        }
        let answers = post_together(&app, posts).await;
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        let counts = (count_status(&answers, 401), count_status(&answers, 429));
        assert_eq!(counts, (5, 7), "round {round}: {statuses:?}");
        // Past the lockout (at most an hour).
        app.clock.advance(chrono::Duration::hours(2));
    }
}

async fn the_username_cap_holds_from_many_addresses(backend: Backend) {
    let settings = [
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let name = unique_name("cap");
    app.register(&name).await;
    // Ten addresses, one wrong password each: no pair's streak locks.
    spend_login_cap(&app, &name, 10).await;
    let response = login_as(&app, "203.0.113.1", &name, PASSWORD, None).await;
    assert_too_many(response).await;
    // Other names are not affected.
    let other = unique_name("cap-other");
    app.register(&other).await;
    let response = login_as(&app, "198.51.100.1", &other, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn unknown_usernames_are_throttled_like_real_ones(app: TestApp) {
    let real = unique_name("real");
    app.register(&real).await;
    let unknown = unique_name("ghost");
    let mut answers = Vec::new();
    for name in [&real, &unknown] {
        let mut statuses = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..6 {
            let response = app.post_credentials(LOGIN, name, "wrong password").await;
            statuses.push(response.status().as_u16());
            let retry = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            bodies.push((body, retry));
        }
        answers.push((statuses, bodies));
    }
    assert_eq!(answers[0].0, [401, 401, 401, 401, 401, 429]);
    assert_eq!(
        answers[0], answers[1],
        "a real and an unknown name look the same"
    );
}

async fn per_ip_requests_are_rate_limited(backend: Backend) {
    let extra = [
        ("OTPGATE_IP_RATE_PER_MIN", "30"),
        ("OTPGATE_IP_BURST", "3"),
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    let client = "198.51.100.7";
    let credentials = |name: &str| json!({"username": name, "password": PASSWORD});
    let name = unique_name("ip");
    for path in [REGISTER, LOGIN, LOGIN] {
        let response = post_as(&app, client, path, credentials(&name)).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    let response = post_as(&app, client, LOGIN, credentials(&name)).await;
    let retry = assert_too_many(response).await;
    assert_eq!(retry, 2, "30 a minute: one every 2 s");
    // Other clients and other endpoints are not counted.
    let response = post_as(&app, "198.51.100.8", LOGIN, credentials(&name)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get(HEALTHZ, None).await.status(), StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(2));
    let response = post_as(&app, client, LOGIN, credentials(&name)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn forwarded_for_counts_only_behind_a_trusted_proxy(backend: Backend) {
    let extra = [
        ("OTPGATE_IP_RATE_PER_MIN", "30"),
        ("OTPGATE_IP_BURST", "1"),
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    let body = || json!({"username": unique_name("xff"), "password": PASSWORD});
    let first = post_as(&app, "203.0.113.1", REGISTER, body()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let registered: Value = first.json().await.unwrap();
    assert_eq!(registered_ip(&app, registered).await, "203.0.113.1");
    let second = post_as(&app, "203.0.113.2", REGISTER, body()).await;
    assert_eq!(second.status(), StatusCode::CREATED, "another client IP");
    let third = post_as(&app, "203.0.113.1", REGISTER, body()).await;
    assert_too_many(third).await;
}

async fn forwarded_for_is_ignored_from_untrusted_peers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = json!({"username": unique_name("spoof"), "password": PASSWORD});
    let response = post_as(&app, "203.0.113.1", REGISTER, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    assert_eq!(
        registered_ip(&app, registered).await,
        "127.0.0.1",
        "spoofed header ignored"
    );
}

on_both_backends_with_own_settings!(
    password_guessing_is_throttled_per_user_and_client,
    case_and_width_forms_of_a_name_share_one_streak,
    the_code_cap_holds_across_successes_and_pending_tokens,
    the_username_cap_holds_from_many_addresses,
    per_ip_requests_are_rate_limited,
    forwarded_for_counts_only_behind_a_trusted_proxy,
    forwarded_for_is_ignored_from_untrusted_peers,
);

on_both_backends!(
    code_guessing_stops_at_the_sixth_try_across_tokens_and_instances,
    lockouts_double,
    a_correct_code_resets_the_failure_streak,
    a_parallel_burst_of_wrong_codes_stops_at_five,
    unknown_usernames_are_throttled_like_real_ones,
);
