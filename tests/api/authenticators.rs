//! Several authenticators per user: list, add (with a code of an existing
//! one), confirm (with a code of the new one), remove; codes of any
//! confirmed authenticator sign in, and replay is refused per
//! authenticator.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::paths::{AUTHENTICATORS, DISABLE, authenticator_action};
use crate::helpers::{EnrolledUser, PASSWORD, TestApp, assert_problem, unique_name};

on_both_backends!(
    the_list_shows_the_default_and_the_recovery_codes_left,
    an_added_authenticator_signs_in_once_confirmed,
    replay_is_refused_per_authenticator,
    adding_refuses_wrong_codes_bad_names_and_taken_names,
    a_new_request_replaces_an_unconfirmed_one,
    confirming_refuses_wrong_codes_and_unknown_foreign_or_expired_ids,
    wrong_codes_count_on_the_accounts_lockout,
    removing_needs_a_code_and_keeps_the_last_one,
    an_eleventh_authenticator_is_refused,
    a_concurrent_confirm_and_remove_leave_a_consistent_state,
    disable_erases_every_authenticator,
);

async fn add(app: &TestApp, user: &EnrolledUser, name: &str, code: &str) -> Response {
    let body = json!({"name": name, "code": code});
    app.post(AUTHENTICATORS, Some(user.access_token()), body)
        .await
}

async fn confirm(app: &TestApp, user: &EnrolledUser, id: &str, code: &str) -> Response {
    let path = authenticator_action(id, "confirm");
    app.post(&path, Some(user.access_token()), json!({"code": code}))
        .await
}

async fn remove(app: &TestApp, user: &EnrolledUser, id: &str, code: &str) -> Response {
    let path = authenticator_action(id, "remove");
    app.post(&path, Some(user.access_token()), json!({"code": code}))
        .await
}

/// Adds an authenticator with a current code of the default one: its 201
/// body (the default's current step is spent).
async fn added(app: &TestApp, user: &EnrolledUser, name: &str) -> Value {
    let response = add(app, user, name, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::CREATED, "add {name}");
    response.json().await.unwrap()
}

/// An authenticator added and confirmed: its id and secret. The clock then
/// moves on a step, so that every authenticator has a fresh code.
async fn add_confirmed(app: &TestApp, user: &EnrolledUser, name: &str) -> (String, String) {
    let body = added(app, user, name).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let secret = body["secret"].as_str().unwrap().to_owned();
    let response = confirm(app, user, &id, &app.code(&secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK, "confirm {name}");
    app.advance_steps(1);
    (id, secret)
}

/// `GET /2fa/authenticators` as `user`.
async fn list(app: &TestApp, user: &EnrolledUser) -> Value {
    let response = app.get(AUTHENTICATORS, Some(user.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK, "list");
    response.json().await.unwrap()
}

/// The names listed, oldest first.
async fn names(app: &TestApp, user: &EnrolledUser) -> Vec<String> {
    list(app, user).await["authenticators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A fresh login's /2fa/verify with `code`.
async fn sign_in_with(app: &TestApp, user: &EnrolledUser, code: &str) -> Response {
    let login = app.login(&user.username).await;
    app.verify(login["pending_token"].as_str().unwrap(), code)
        .await
}

async fn the_list_shows_the_default_and_the_recovery_codes_left(app: TestApp) {
    let user = app.enrolled_user(&unique_name("list")).await;
    let body = list(&app, &user).await;
    let entries = body["authenticators"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["name"], "default");
    assert!(entries[0]["id"].is_string() && entries[0]["created_at"].is_string());
    assert!(
        entries[0]["last_used_at"].is_string(),
        "the first verify used it"
    );
    assert!(entries[0].get("secret").is_none(), "never the secret");
    assert_eq!(body["recovery_codes_left"], 10);
    let recovery = user.tokens["recovery_codes"][0].as_str().unwrap();
    assert_eq!(
        app.recover(&user.username, recovery).await.status(),
        StatusCode::OK
    );
    assert_eq!(list(&app, &user).await["recovery_codes_left"], 9);
}

async fn an_added_authenticator_signs_in_once_confirmed(app: TestApp) {
    let user = app.enrolled_user(&unique_name("add")).await;
    let body = added(&app, &user, " Work  phone ").await;
    assert_eq!(
        body["name"], "Work phone",
        "trimmed, inner spaces collapsed"
    );
    let id = body["id"].as_str().unwrap();
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32);
    assert_ne!(secret, user.secret);
    assert_eq!(body["account_name"], user.username.as_str());
    assert_eq!(body["issuer"], "otpgate");
    let label = format!("otpauth://totp/otpgate:{}?secret={secret}&", user.username);
    assert!(
        body["otpauth_uri"].as_str().unwrap().starts_with(&label),
        "{body}"
    );
    assert_eq!(
        body["qr_data_uri"],
        format!(
            "data:image/png;base64,{}",
            body["qr_png_base64"].as_str().unwrap()
        )
    );
    assert_eq!(
        (&body["algorithm"], &body["digits"], &body["period"]),
        (&json!("SHA1"), &json!(6), &json!(30))
    );
    assert_eq!(
        names(&app, &user).await,
        ["default"],
        "unconfirmed: not listed"
    );

    // Unconfirmed: its codes do not sign in.
    let refused = sign_in_with(&app, &user, &app.code(secret, 0)).await;
    assert_problem(refused, 401, "invalid_otp").await;

    let response = confirm(&app, &user, id, &app.code(secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let confirmed: Value = response.json().await.unwrap();
    assert_eq!(confirmed["id"], id);
    assert_eq!(confirmed["name"], "Work phone");
    assert!(confirmed["created_at"].is_string() && confirmed["last_used_at"].is_string());
    assert_eq!(names(&app, &user).await, ["default", "Work phone"]);
    assert!(
        app.event_types(&user.tokens)
            .await
            .contains(&"authenticator_added".to_owned())
    );

    app.advance_steps(1);
    let response = sign_in_with(&app, &user, &app.code(secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK, "the new one signs in");
}

async fn replay_is_refused_per_authenticator(app: TestApp) {
    let user = app.enrolled_user(&unique_name("replay")).await;
    let (_, second) = add_confirmed(&app, &user, "second").await;
    let first_code = app.code(&user.secret, 0);
    let second_code = app.code(&second, 0);
    let ok = |response: Response| async move { response.status() == StatusCode::OK };
    assert!(ok(sign_in_with(&app, &user, &first_code).await).await);
    let replay = sign_in_with(&app, &user, &first_code).await;
    assert_problem(replay, 401, "invalid_otp").await;
    assert!(
        ok(sign_in_with(&app, &user, &second_code).await).await,
        "another authenticator's code in the same step"
    );
    let replay = sign_in_with(&app, &user, &second_code).await;
    assert_problem(replay, 401, "invalid_otp").await;
    // Either one's code also serves for an action that takes a code.
    app.advance_steps(1);
    let response = app
        .post(
            crate::helpers::paths::RECOVERY_CODES,
            Some(user.access_token()),
            json!({"code": app.code(&second, 0)}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn adding_refuses_wrong_codes_bad_names_and_taken_names(app: TestApp) {
    let user = app.enrolled_user(&unique_name("addfail")).await;
    let code = app.code(&user.secret, 0);
    let wrong = crate::helpers::clients::wrong_codes(&app, &user.secret, 1).remove(0);
    assert_problem(add(&app, &user, "phone", &wrong).await, 401, "invalid_otp").await;
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(65)),
        json!("a\u{7}b"),
        json!(5),
    ] {
        let body = json!({"name": name, "code": code});
        let response = app
            .post(AUTHENTICATORS, Some(user.access_token()), body)
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "name", "{name}");
    }
    let missing = app
        .post(
            AUTHENTICATORS,
            Some(user.access_token()),
            json!({"name": "phone"}),
        )
        .await;
    assert_problem(missing, 422, "validation_failed").await;
    assert_problem(
        add(&app, &user, "default", &code).await,
        409,
        "authenticator_name_taken",
    )
    .await;
    // A refused request spends no code: the same one still adds.
    let body = added(&app, &user, &"x".repeat(64)).await;
    assert_eq!(body["name"].as_str().unwrap().len(), 64);
    let no_token = app
        .post(AUTHENTICATORS, None, json!({"name": "a", "code": code}))
        .await;
    assert_problem(no_token, 401, "invalid_token").await;
}

async fn a_new_request_replaces_an_unconfirmed_one(app: TestApp) {
    let user = app.enrolled_user(&unique_name("replace")).await;
    let first = added(&app, &user, "phone").await;
    app.advance_steps(1);
    let second = added(&app, &user, "phone").await;
    let first_code = app.code(first["secret"].as_str().unwrap(), 0);
    let response = confirm(&app, &user, first["id"].as_str().unwrap(), &first_code).await;
    assert_problem(response, 404, "not_found").await;
    let second_code = app.code(second["secret"].as_str().unwrap(), 0);
    let response = confirm(&app, &user, second["id"].as_str().unwrap(), &second_code).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Confirmed: the name is now taken, and confirming again finds nothing.
    app.advance_steps(1);
    let code = app.code(&user.secret, 0);
    assert_problem(
        add(&app, &user, "phone", &code).await,
        409,
        "authenticator_name_taken",
    )
    .await;
    let again = confirm(
        &app,
        &user,
        second["id"].as_str().unwrap(),
        &app.code(second["secret"].as_str().unwrap(), 0),
    )
    .await;
    assert_problem(again, 404, "not_found").await;
}

async fn confirming_refuses_wrong_codes_and_unknown_foreign_or_expired_ids(app: TestApp) {
    let user = app.enrolled_user(&unique_name("confirm")).await;
    let other = app.enrolled_user(&unique_name("other")).await;
    let body = added(&app, &user, "phone").await;
    let id = body["id"].as_str().unwrap();
    let secret = body["secret"].as_str().unwrap();
    let code = app.code(secret, 0);
    // A code of the default one is not a code of the new one.
    let wrong = confirm(&app, &user, id, &app.code(&user.secret, 1)).await;
    assert_problem(wrong, 401, "invalid_otp").await;
    assert!(
        app.event_types(&user.tokens)
            .await
            .contains(&"otp_failed".to_owned())
    );
    let unknown = confirm(&app, &user, &uuid::Uuid::new_v4().to_string(), &code).await;
    assert_problem(unknown, 404, "not_found").await;
    assert_problem(
        confirm(&app, &user, "not-a-uuid", &code).await,
        404,
        "not_found",
    )
    .await;
    let foreign = confirm(&app, &other, id, &code).await;
    assert_problem(foreign, 404, "not_found").await;
    let malformed = confirm(&app, &user, id, "12345").await;
    assert_problem(malformed, 422, "validation_failed").await;
    // Unconfirmed for longer than a pending token lives: gone.
    app.advance_steps(11);
    let expired = confirm(&app, &user, id, &app.code(secret, 0)).await;
    assert_problem(expired, 404, "not_found").await;
}

async fn wrong_codes_count_on_the_accounts_lockout(app: TestApp) {
    let user = app.enrolled_user(&unique_name("lockout")).await;
    let body = added(&app, &user, "phone").await;
    let id = body["id"].as_str().unwrap();
    app.advance_steps(1);
    let wrong = crate::helpers::clients::wrong_codes(&app, &user.secret, 5);
    for code in &wrong[..3] {
        assert_problem(add(&app, &user, "tablet", code).await, 401, "invalid_otp").await;
    }
    for code in &wrong[3..] {
        assert_problem(confirm(&app, &user, id, code).await, 401, "invalid_otp").await;
    }
    // Locked: even a right code is refused, here and at sign-in.
    let code = app.code(&user.secret, 0);
    crate::helpers::clients::assert_too_many(add(&app, &user, "tablet", &code).await).await;
    crate::helpers::clients::assert_too_many(sign_in_with(&app, &user, &code).await).await;
}

async fn removing_needs_a_code_and_keeps_the_last_one(app: TestApp) {
    let user = app.enrolled_user(&unique_name("remove")).await;
    let other = app.enrolled_user(&unique_name("other")).await;
    let (id, secret) = add_confirmed(&app, &user, "phone").await;
    let default_id = list(&app, &user).await["authenticators"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = crate::helpers::clients::wrong_codes(&app, &user.secret, 1).remove(0);
    assert_problem(remove(&app, &user, &id, &wrong).await, 401, "invalid_otp").await;
    let code = app.code(&user.secret, 0);
    let unknown = remove(&app, &user, &uuid::Uuid::new_v4().to_string(), &code).await;
    assert_problem(unknown, 404, "not_found").await;
    let foreign = remove(&app, &other, &id, &app.code(&other.secret, 0)).await;
    assert_problem(foreign, 404, "not_found").await;
    // Its own code may remove it.
    let response = remove(&app, &user, &id, &app.code(&secret, 0)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(names(&app, &user).await, ["default"]);
    assert!(
        app.event_types(&user.tokens)
            .await
            .contains(&"authenticator_removed".to_owned())
    );
    app.advance_steps(1);
    let refused = sign_in_with(&app, &user, &app.code(&secret, 0)).await;
    assert_problem(refused, 401, "invalid_otp").await;
    let last = remove(&app, &user, &default_id, &app.code(&user.secret, 0)).await;
    assert_problem(last, 409, "last_authenticator").await;
    assert_eq!(names(&app, &user).await, ["default"]);
}

async fn an_eleventh_authenticator_is_refused(app: TestApp) {
    let user = app.enrolled_user(&unique_name("eleven")).await;
    for n in 2..=10 {
        add_confirmed(&app, &user, &format!("phone {n}")).await;
    }
    assert_eq!(names(&app, &user).await.len(), 10);
    let response = add(&app, &user, "phone 11", &app.code(&user.secret, 0)).await;
    assert_problem(response, 409, "too_many_authenticators").await;
}

async fn a_concurrent_confirm_and_remove_leave_a_consistent_state(app: TestApp) {
    let user = app.enrolled_user(&unique_name("race")).await;
    for round in 0..4 {
        let body = added(&app, &user, &format!("phone {round}")).await;
        app.advance_steps(1);
        let id = body["id"].as_str().unwrap();
        let code = app.code(body["secret"].as_str().unwrap(), 0);
        let default_code = app.code(&user.secret, 0);
        let (confirmed, removed) = tokio::join!(
            confirm(&app, &user, id, &code),
            remove(&app, &user, id, &default_code)
        );
        let (confirmed, removed) = (confirmed.status(), removed.status());
        let listed = list(&app, &user).await["authenticators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["id"] == id);
        // Removal finds only a confirmed one: it can succeed only after the
        // confirmation, and then the authenticator is gone.
        match (confirmed, removed) {
            (StatusCode::OK, StatusCode::NO_CONTENT) => assert!(!listed, "round {round}"),
            (StatusCode::OK, StatusCode::NOT_FOUND) => assert!(listed, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
        if listed {
            let response = remove(&app, &user, id, &app.code(&user.secret, 1)).await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "round {round}");
        }
        assert_eq!(names(&app, &user).await, ["default"], "round {round}");
        app.advance_steps(2);
    }
}

async fn disable_erases_every_authenticator(app: TestApp) {
    let user = app.enrolled_user(&unique_name("disable")).await;
    let (_, second) = add_confirmed(&app, &user, "phone").await;
    let body = json!({"password": PASSWORD, "code": app.code(&second, 0)});
    let response = app.post(DISABLE, Some(user.access_token()), body).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let login = app.login(&user.username).await;
    assert_eq!(login["next_step"], "setup_2fa");
    let pending = login["pending_token"].as_str().unwrap();
    let fresh = app.setup_secret(pending).await;
    assert!(fresh != user.secret && fresh != second, "a new secret");
    app.advance_steps(1);
    for old in [&user.secret, &second] {
        let refused = app.verify(pending, &app.code(old, 0)).await;
        assert_problem(refused, 401, "invalid_otp").await;
    }
    let response = app.verify(pending, &app.code(&fresh, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
}
