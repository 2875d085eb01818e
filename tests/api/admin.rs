//! The operator commands, run as a process against a real database.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::paths::{HEALTHZ, ME, REFRESH};
use crate::helpers::*;

fn otpgate(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("OTPGATE_DATA_DIR", app.data_dir())
        .env("OTPGATE_JWT_SECRET", JWT_SECRET)
        .env("OTPGATE_BCRYPT_COST", "4")
        .env("RUST_LOG", "warn")
        .output()
        .expect("otpgate runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        format!(
            "{} ({})",
            String::from_utf8_lossy(&output.stderr),
            output.status
        ),
    )
}

async fn admin_commands_act_on_a_real_account(app: TestApp) {
    let user = app.enrolled_user(&unique_name("Admin")).await;
    let name = user.username.clone();

    let (ok, out, err) = otpgate(&app, &["admin", "show", &name.to_uppercase()]);
    assert!(ok, "{err}");
    assert!(out.contains("two-factor enabled:    true"), "{out}");
    assert!(out.contains("live sessions:         1"), "{out}");
    assert!(out.contains("unused recovery codes: 10"), "{out}");
    assert!(out.contains("login_succeeded"), "{out}");
    assert!(!out.contains(&user.secret), "no secret shown");

    let (ok, out, err) = otpgate(&app, &["admin", "revoke-sessions", &name]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 live session"), "{out}");
    assert_problem(
        app.get(ME, Some(user.access_token())).await,
        401,
        "invalid_token",
    )
    .await;

    let (ok, out, err) = otpgate(&app, &["admin", "reset-2fa", &name]);
    assert!(ok, "{err}");
    assert!(out.contains("two-factor reset"), "{out}");
    let login = app.login(&name).await;
    assert_eq!(login["next_step"], "setup_2fa");
    let setup = app.setup(login["pending_token"].as_str().unwrap()).await;
    assert_ne!(setup["secret"], json!(user.secret));

    let (ok, out, _) = otpgate(&app, &["admin", "show", &name]);
    assert!(ok);
    assert!(out.contains("two-factor enabled:    false"), "{out}");
    assert!(
        out.contains("two_factor_disabled") && out.contains("otpgate admin"),
        "{out}"
    );
}

/// `reset-2fa` alone (no `revoke-sessions` before it) ends every session,
/// refresh tokens included, and erases the recovery codes.
async fn reset_2fa_revokes_sessions_and_erases_recovery_codes(app: TestApp) {
    let user = app.enrolled_user(&unique_name("reset")).await;
    let other = app.sign_in(&user).await;
    let (ok, _, err) = otpgate(&app, &["admin", "reset-2fa", &user.username]);
    assert!(ok, "{err}");
    for tokens in [&user.tokens, &other] {
        let access = tokens["access_token"].as_str();
        assert_problem(app.get(ME, access).await, 401, "invalid_token").await;
        let body = json!({"refresh_token": tokens["refresh_token"]});
        let response = app.post(REFRESH, None, body).await;
        assert_problem(response, 401, "invalid_token").await;
    }
    let (ok, out, err) = otpgate(&app, &["admin", "show", &user.username]);
    assert!(ok, "{err}");
    assert!(out.contains("live sessions:         0"), "{out}");
    assert!(out.contains("unused recovery codes: 0"), "{out}");
}

async fn admin_commands_fail_for_an_unknown_user(app: TestApp) {
    for command in ["show", "reset-2fa", "revoke-sessions"] {
        let (ok, out, err) = otpgate(&app, &["admin", command, "nobody-here"]);
        assert!(!ok, "{command}: {out}");
        assert!(
            err.contains("no user named \"nobody-here\""),
            "{command}: {err}"
        );
    }
    // The server is untouched.
    let response = app.get(HEALTHZ, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let _: Value = response.json().await.unwrap();
}

/// `admin prune` forgets events past the retention period, more than one
/// transaction's worth, and keeps the recent ones.
async fn prune_forgets_old_events_in_batches_and_keeps_recent_ones(app: TestApp) {
    let user = app.enrolled_user(&unique_name("prune")).await;
    let recent = app.event_types(&user.tokens).await;
    let long_ago = if app.database_url.starts_with("postgres") {
        "TIMESTAMP '2020-01-01 00:00:00'"
    } else {
        "'2020-01-01 00:00:00'"
    };
    app.execute_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500) \
         INSERT INTO auth_events (user_id, event_type, created_at) \
         SELECT '{}', 'login_failed', {long_ago} FROM n",
        user.user_id
    ));
    let (ok, out, err) = otpgate(&app, &["admin", "prune"]);
    assert!(ok, "{err}");
    assert!(out.contains("pruned 4500 event(s)"), "{out}");
    assert_eq!(
        app.event_types(&user.tokens).await,
        recent,
        "recent events kept"
    );
    let (ok, out, err) = otpgate(&app, &["admin", "prune"]);
    assert!(ok, "{err}");
    assert!(out.contains("pruned 0 event(s)"), "{out}");
}

on_both_backends!(
    prune_forgets_old_events_in_batches_and_keeps_recent_ones,
    admin_commands_act_on_a_real_account,
    reset_2fa_revokes_sessions_and_erases_recovery_codes,
    admin_commands_fail_for_an_unknown_user
);
