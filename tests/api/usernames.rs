//! Usernames held to RFC 8265 (PRECIS UsernameCaseMapped) per
//! space-separated part, over HTTP.

use serde_json::json;

use crate::helpers::*;

/// Characters that display as nothing, so that `admin` plus one of them
/// would pass for `admin` (the Hangul fillers are letters to Unicode).
const INVISIBLE_LETTERS: [char; 4] = ['\u{3164}', '\u{115F}', '\u{1160}', '\u{FFA0}'];

async fn fillers_and_default_ignorables_are_422(app: TestApp) {
    for filler in INVISIBLE_LETTERS.into_iter().chain(['\u{2060}', '\u{AD}']) {
        let name = format!("admin{filler}");
        let response = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "username", "{name:?}: {body}");
    }
    // None of them was registered under the look-alike.
    app.register("admin").await;
}

async fn names_the_contract_allows_still_register(app: TestApp) {
    for (name, shown) in [
        ("alice@example.org", "alice@example.org"),
        ("Jean Dupont", "Jean Dupont"),
        ("ａｌｉｃｅ", "alice"),
    ] {
        let registered = app.register(name).await;
        assert_eq!(registered["user"]["username"], shown, "{name:?}");
    }
    // The fullwidth form is the same account as `alice`.
    let pending = app.login("alice").await;
    assert_eq!(pending["next_step"], "setup_2fa");
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_problem(response, 409, "username_taken").await;
}

on_both_backends!(
    fillers_and_default_ignorables_are_422,
    names_the_contract_allows_still_register,
);
