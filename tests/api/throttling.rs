//! Throttling and lockout, held in the database so that every instance
//! enforces the same limits.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::paths::{HEALTHZ, LOGIN, RECOVER, REGISTER};
use crate::helpers::*;

/// Five codes that are wrong now (none within a step of the current one).
fn wrong_codes(app: &TestApp, secret: &str) -> Vec<String> {
    let near: Vec<String> = (-1..=1).map(|offset| app.code(secret, offset)).collect();
    (0..1_000_000)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|code| !near.contains(code))
        .take(5)
        .collect()
}

async fn assert_throttled(response: Response) -> i64 {
    let retry_after: i64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After on 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_problem(response, 429, "too_many_attempts").await;
    retry_after
}

async fn pending_for(app: &TestApp, username: &str) -> String {
    app.login(username).await["pending_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn code_guessing_stops_at_the_sixth_try_across_tokens_and_instances(app: TestApp) {
    let user = app.enrolled_user(&unique_name("brute")).await;
    let other = app.spawn_sibling().await;
    let wrong = wrong_codes(&app, &user.secret);
    let tokens = [
        pending_for(&app, &user.username).await,
        pending_for(&other, &user.username).await,
        pending_for(&app, &user.username).await,
    ];
    // Five wrong codes spread over three pending tokens and two servers.
    let plan = [(&app, 0), (&other, 1), (&app, 1), (&other, 2), (&app, 0)];
    for ((server, token), code) in plan.into_iter().zip(&wrong) {
        let response = server.verify(&tokens[token], code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    // The sixth try is refused even with the right code, on either server.
    let retry = assert_throttled(other.verify(&tokens[2], &app.code(&user.secret, 0)).await).await;
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    let response = app
        .post(
            RECOVER,
            Some(&tokens[2]),
            json!({"recovery_code": "aaaaa-bbbbb"}),
        )
        .await;
    assert_throttled(response).await;

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
    let wrong = wrong_codes(&app, &user.secret);
    let mut retries = Vec::new();
    for _ in 0..2 {
        let pending = pending_for(&app, &user.username).await;
        for code in &wrong {
            app.verify(&pending, code).await;
        }
        let pending = pending_for(&app, &user.username).await;
        retries.push(assert_throttled(app.verify(&pending, &wrong[0]).await).await);
        app.clock
            .advance(chrono::Duration::seconds(retries[retries.len() - 1]));
    }
    assert_eq!(retries, [60, 120]);
}

async fn a_correct_code_resets_the_failure_streak(app: TestApp) {
    let user = app.enrolled_user(&unique_name("reset")).await;
    let wrong = wrong_codes(&app, &user.secret);
    for round in 0..2 {
        let pending = pending_for(&app, &user.username).await;
        for code in &wrong[..4] {
            assert_problem(app.verify(&pending, code).await, 401, "invalid_otp").await;
        }
        let response = app.verify(&pending, &app.code(&user.secret, 0)).await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        app.advance_steps(1);
    }
}

async fn password_guessing_is_throttled_per_user_and_client(app: TestApp) {
    let name = unique_name("pwd");
    app.register(&name).await;
    for _ in 0..5 {
        let response = app.post_credentials(LOGIN, &name, "wrong password").await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    // Locked for this client, right password or not.
    let response = app.post_credentials(LOGIN, &name, PASSWORD).await;
    let retry = assert_throttled(response).await;
    assert!((55..=60).contains(&retry));
    // Another account from the same client is not affected.
    let other = unique_name("pwd-other");
    app.register(&other).await;
    app.login(&other).await;
    // The lock ends.
    app.clock.advance(chrono::Duration::seconds(61));
    app.login(&name).await;
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

/// A request from `ip`, as a trusted proxy on 127.0.0.1 would forward it.
async fn post_from(app: &TestApp, ip: &str, path: &str, body: Value) -> Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `ip` of the newest `registered` event of a user registered just now.
async fn registered_from(app: &TestApp, registered: Value) -> Value {
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let tokens: Value = app
        .verify(pending, &app.code(&secret, 0))
        .await
        .json()
        .await
        .unwrap();
    let events = app.events(&tokens).await;
    let registered = events.iter().find(|e| e["type"] == "registered").unwrap();
    registered["ip"].clone()
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
        let response = post_from(&app, client, path, credentials(&name)).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    let response = post_from(&app, client, LOGIN, credentials(&name)).await;
    let retry = assert_throttled(response).await;
    assert_eq!(retry, 2, "30 a minute: one every 2 s");
    // Other clients and other endpoints are not counted.
    let response = post_from(&app, "198.51.100.8", LOGIN, credentials(&name)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get(HEALTHZ, None).await.status(), StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(2));
    let response = post_from(&app, client, LOGIN, credentials(&name)).await;
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
    let first = post_from(&app, "203.0.113.1", REGISTER, body()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let registered: Value = first.json().await.unwrap();
    assert_eq!(registered_from(&app, registered).await, "203.0.113.1");
    let second = post_from(&app, "203.0.113.2", REGISTER, body()).await;
    assert_eq!(second.status(), StatusCode::CREATED, "another client IP");
    let third = post_from(&app, "203.0.113.1", REGISTER, body()).await;
    assert_throttled(third).await;
}

async fn forwarded_for_is_ignored_from_untrusted_peers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = json!({"username": unique_name("spoof"), "password": PASSWORD});
    let response = post_from(&app, "203.0.113.1", REGISTER, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    assert_eq!(
        registered_from(&app, registered).await,
        "127.0.0.1",
        "spoofed header ignored"
    );
}

on_both_backends_with_own_settings!(
    per_ip_requests_are_rate_limited,
    forwarded_for_counts_only_behind_a_trusted_proxy,
    forwarded_for_is_ignored_from_untrusted_peers,
);

on_both_backends!(
    code_guessing_stops_at_the_sixth_try_across_tokens_and_instances,
    lockouts_double,
    a_correct_code_resets_the_failure_streak,
    password_guessing_is_throttled_per_user_and_client,
    unknown_usernames_are_throttled_like_real_ones,
);
