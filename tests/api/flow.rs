//! The two-factor flow end to end.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::paths::{LOGIN, LOGOUT, ME, REGISTER, SETUP, VERIFY};
use crate::helpers::raw_http::{RACE_ROUNDS, RacedPost, count_status, post_together};
use crate::helpers::*;

async fn happy_path(app: TestApp) {
    let name = unique_name("Alice");
    let registered = app.register(&name).await;
    assert_eq!(registered["next_step"], "setup_2fa");
    assert_eq!(registered["token_type"], "Bearer");
    assert_eq!(registered["expires_in"], 300);
    assert_eq!(registered["user"]["username"], name.as_str());
    assert_eq!(registered["user"]["two_factor_enabled"], false);
    uuid::Uuid::parse_str(registered["user"]["id"].as_str().unwrap()).expect("id is a UUID");
    let pending = registered["pending_token"].as_str().unwrap();

    let setup = app.setup(pending).await;
    let secret = setup["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits of unpadded base32");
    assert_eq!(setup["algorithm"], "SHA1");
    assert_eq!(setup["digits"], 6);
    assert_eq!(setup["period"], 30);
    assert_eq!(setup["issuer"], "otpgate");
    assert_eq!(setup["account_name"], name.as_str());
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/otpgate:{name}?secret={secret}&issuer=otpgate&algorithm=SHA1&digits=6&period=30"
        )
    );
    let png = STANDARD
        .decode(setup["qr_png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        setup["qr_data_uri"],
        format!(
            "data:image/png;base64,{}",
            setup["qr_png_base64"].as_str().unwrap()
        )
    );
    assert_eq!(decode_qr(&png), uri, "the QR code encodes exactly the URI");

    // /me refuses the pending token until the second factor is done.
    let response = app.get(ME, Some(pending)).await;
    assert_problem(response, 403, "two_factor_required").await;

    let response = app.verify(pending, &app.code(secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();

    let response = app.get(ME, Some(access)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], registered["user"]["id"]);
    assert_eq!(me["username"], name.as_str());
    assert_eq!(me["two_factor_enabled"], true);
    assert_eq!(me["created_at"], registered["user"]["created_at"]);

    // The pending token was spent by the verification.
    let response = app.verify(pending, &app.code(secret, 1)).await;
    assert_problem(response, 401, "invalid_token").await;

    let response = app.request(Method::POST, LOGOUT, Some(access), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app.get(ME, Some(access)).await;
    assert_problem(response, 401, "invalid_token").await;

    // Next login asks for a code, and a fresh code opens a new session.
    let login = app.login(&name).await;
    assert_eq!(login["next_step"], "verify_2fa");
    let pending = login["pending_token"].as_str().unwrap();
    let response = app.request(Method::POST, SETUP, Some(pending), None).await;
    assert_problem(response, 409, "two_factor_already_enabled").await;
    app.advance_steps(1);
    let response = app.verify(pending, &app.code(secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

fn decode_qr(png: &[u8]) -> String {
    let image = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("QR decodes").1
}

async fn setup_returns_the_same_secret_until_enabled(app: TestApp) {
    let registered = app.register(&unique_name("bob")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let first = app.setup(pending).await;
    let second = app.setup(pending).await;
    assert_eq!(first["secret"], second["secret"]);
    // A second pending token (a new login) sees the same secret too.
    let name = registered["user"]["username"].as_str().unwrap();
    let login = app.login(name).await;
    assert_eq!(login["next_step"], "setup_2fa");
    let third = app.setup(login["pending_token"].as_str().unwrap()).await;
    assert_eq!(first["secret"], third["secret"]);
}

async fn verify_before_setup_is_a_conflict(app: TestApp) {
    let registered = app.register(&unique_name("carol")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let response = app.verify(pending, "123456").await;
    assert_problem(response, 409, "two_factor_setup_required").await;
}

async fn codes_one_step_either_side_are_accepted(app: TestApp) {
    for offset in [-1, 0, 1] {
        let name = unique_name("drift");
        let registered = app.register(&name).await;
        let pending = registered["pending_token"].as_str().unwrap();
        let secret = app.setup_secret(pending).await;
        let response = app.verify(pending, &app.code(&secret, offset)).await;
        assert_eq!(response.status(), StatusCode::OK, "offset {offset}");
    }
}

async fn codes_two_steps_away_are_refused(app: TestApp) {
    let registered = app.register(&unique_name("far")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let near = [-1, 0, 1].map(|offset| app.code(&secret, offset));
    for offset in [-2, 2] {
        let code = app.code(&secret, offset);
        if near.contains(&code) {
            continue; // One in a million: the far code equals a near one.
        }
        let response = app.verify(pending, &code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    // Those failures did not spend the token: a right code still works.
    let response = app.verify(pending, &app.code(&secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn a_code_is_accepted_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("replay")).await;
    // enrolled_user used the code of the previous step; the clock moved on
    // one step, so that code is still inside the window but already spent.
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let response = app.verify(pending, &app.code(&user.secret, -1)).await;
    assert_problem(response, 401, "invalid_otp").await;
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    // And once more with a fresh pending token: the same code again fails,
    // so does any older step.
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    for offset in [-1, 0] {
        let response = app.verify(pending, &app.code(&user.secret, offset)).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    let response = app.verify(pending, &app.code(&user.secret, 1)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn twenty_parallel_submissions_of_one_code_succeed_once(app: TestApp) {
    let user = app.enrolled_user(&unique_name("race")).await;
    for round in 0..RACE_ROUNDS {
        let code = app.code(&user.secret, 0);
        let mut posts = Vec::new();
        for _ in 0..20 {
            posts.push(RacedPost::verify(
                &app.login_pending(&user.username).await,
                &code,
            ));
        }
        let answers = post_together(&app, posts).await;
        // One success; the rest are refused as replays (401) or, once five
        // failures pile up on the account, by its lockout (429).
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        let refused = count_status(&answers, 401) + count_status(&answers, 429);
        let counts = (count_status(&answers, 200), refused);
        assert_eq!(counts, (1, 19), "round {round}: {statuses:?}");
        // Past the lockout (at most an hour), at a new step.
        app.clock.advance(chrono::Duration::hours(2));
    }
}

async fn one_pending_token_raced_by_twenty_requests_succeeds_once(app: TestApp) {
    for round in 0..RACE_ROUNDS {
        let pending = pending_token(&app).await;
        let secret = app.setup_secret(&pending).await;
        // Three acceptable codes (one step either side), each newer than
        // the last: only the pending token's single use stops a second
        // success.
        let codes: Vec<String> = (-1..=1).map(|offset| app.code(&secret, offset)).collect();
        let posts = (0..20)
            .map(|i| RacedPost::verify(&pending, &codes[i % 3]))
            .collect();
        let answers = post_together(&app, posts).await;
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        assert_eq!(
            count_status(&answers, 200),
            1,
            "round {round}: {statuses:?}"
        );
    }
}

async fn five_wrong_codes_kill_the_pending_token(app: TestApp) {
    let registered = app.register(&unique_name("guess")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup_secret(pending).await;
    let right = app.code(&secret, 0);
    let near = [-1, 0, 1].map(|offset| app.code(&secret, offset));
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .filter(|code| !near.contains(code))
        .take(5);
    for code in wrong {
        let response = app.verify(pending, &code).await;
        assert_problem(response, 401, "invalid_otp").await;
    }
    let response = app.verify(pending, &right).await;
    assert_problem(response, 401, "invalid_token").await;
    let response = app.request(Method::POST, SETUP, Some(pending), None).await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn code_format_is_validated(app: TestApp) {
    let registered = app.register(&unique_name("format")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    app.setup(pending).await;
    for bad in [
        json!("12345"),
        json!("1234567"),
        json!("12345a"),
        json!(123456),
        json!("１２３４５６"),
        json!(null),
    ] {
        let response = app.post(VERIFY, Some(pending), json!({"code": bad})).await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "code", "{bad}");
    }
}

/// Only the second factor hands out session tokens.
async fn register_and_login_carry_no_session_tokens(app: TestApp) {
    let name = unique_name("notokens");
    let registered = app.register(&name).await;
    let login = app.login(&name).await;
    for body in [registered, login] {
        for field in ["access_token", "refresh_token", "refresh_expires_in"] {
            assert!(body.get(field).is_none(), "{field} in {body}");
        }
    }
}

/// NFKC before hashing: full-width letters and a ligature are the same
/// password as their plain forms.
async fn passwords_are_nfkc_normalised(app: TestApp) {
    let name = unique_name("nfkc");
    let typed = "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ﬁsh";
    let response = app.post_credentials(REGISTER, &name, typed).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post_credentials(LOGIN, &name, "correct horse fish")
        .await;
    assert_eq!(response.status(), StatusCode::OK, "the plain form");
    let response = app.post_credentials(LOGIN, &name, typed).await;
    assert_eq!(response.status(), StatusCode::OK, "the form registered");
}

async fn long_passwords_are_not_truncated(app: TestApp) {
    let name = unique_name("long");
    let prefix = "p".repeat(72);
    let response = app
        .post(
            REGISTER,
            None,
            json!({"username": name, "password": format!("{prefix}-one")}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post(
            LOGIN,
            None,
            json!({"username": name, "password": format!("{prefix}-two")}),
        )
        .await;
    assert_problem(response, 401, "invalid_credentials").await;
    let response = app
        .post(
            LOGIN,
            None,
            json!({"username": name.to_uppercase(), "password": format!("{prefix}-one")}),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "usernames compare case-insensitively"
    );
}

async fn a_failed_registration_writes_nothing(app: TestApp) {
    let name = unique_name("atomic");
    let response = app.post_credentials(REGISTER, &name, "short").await;
    assert_problem(response, 422, "validation_failed").await;
    // The name is still free.
    app.register(&name).await;
}

on_both_backends!(
    happy_path,
    setup_returns_the_same_secret_until_enabled,
    verify_before_setup_is_a_conflict,
    codes_one_step_either_side_are_accepted,
    codes_two_steps_away_are_refused,
    a_code_is_accepted_once,
    twenty_parallel_submissions_of_one_code_succeed_once,
    one_pending_token_raced_by_twenty_requests_succeeds_once,
    five_wrong_codes_kill_the_pending_token,
    code_format_is_validated,
    long_passwords_are_not_truncated,
    passwords_are_nfkc_normalised,
    register_and_login_carry_no_session_tokens,
    a_failed_registration_writes_nothing,
);
