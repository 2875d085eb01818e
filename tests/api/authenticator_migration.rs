//! Migration 5 (one secret per user → authenticators) on a database as
//! migrations 1–4 left it: its users keep their secrets and replay steps.
//!
//! The old database is built the way today's `main` builds one: its first
//! four migrations (the embedded SQL files, run one by one through diesel's
//! harness, so that the server later runs only the fifth), then the users
//! written into the old columns. Their sealed secrets come from this
//! server, which seals exactly as `main` did (AES-256-GCM under the data
//! dir's key, the user's id as associated data); a sibling on the same keys
//! then starts on the old database, which migrates.

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use otpgate::store::authenticators::{self, AuthenticatorRow};
use otpgate::store::users::{self, UserRow};
use otpgate::store::{DatabaseUrl, DbConnection, Store, StoreError};
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, assert_problem, unique_name};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations before the authenticators table.
const OLD_MIGRATIONS: usize = 4;

/// The `users` table as migrations 1–4 left it.
mod v4 {
    diesel::table! {
        users (id) {
            id -> Text,
            username -> Text,
            username_key -> Text,
            password_hash -> Text,
            totp_secret -> Nullable<Binary>,
            totp_key_id -> Nullable<Text>,
            two_factor_enabled -> Bool,
            totp_last_step -> Nullable<BigInt>,
            created_at -> Timestamp,
        }
    }
}

on_both_backends_with_own_settings!(
    a_database_of_migration_4_keeps_its_users_secrets_and_replay_steps
);

/// A user and their authenticator as migration 5 stores them.
struct Stored {
    user: UserRow,
    authenticator: AuthenticatorRow,
}

async fn stored(app: &TestApp, user_id: &str) -> Stored {
    let url = DatabaseUrl::parse(&app.database_url).unwrap();
    let store = tokio::task::spawn_blocking(move || Store::open(&url, 1))
        .await
        .unwrap()
        .unwrap();
    let user_id = user_id.to_owned();
    store
        .read(move |conn| {
            let user = users::find_by_id(conn, &user_id)?.expect("the user");
            let mut rows = authenticators::confirmed(conn, &user_id)?;
            rows.extend(authenticators::unconfirmed(conn, &user_id)?);
            assert_eq!(rows.len(), 1, "one authenticator");
            Ok::<_, StoreError>(Stored {
                user,
                authenticator: rows.remove(0),
            })
        })
        .await
        .unwrap()
}

/// A database at migration 4 holding `old` as `main` wrote them: the
/// secret, its key and the last accepted step in the user's row.
fn old_database(url: &str, old: &[Stored]) {
    let mut conn = match DatabaseUrl::parse(url).unwrap() {
        DatabaseUrl::Postgres(url) => {
            DbConnection::Postgres(PgConnection::establish(&url).unwrap())
        }
        DatabaseUrl::Sqlite(path) => {
            DbConnection::Sqlite(SqliteConnection::establish(&path.to_string_lossy()).unwrap())
        }
    };
    for _ in 0..OLD_MIGRATIONS {
        match &mut conn {
            DbConnection::Postgres(pg) => pg.run_next_migration(POSTGRES_MIGRATIONS).map(drop),
            DbConnection::Sqlite(sqlite) => sqlite.run_next_migration(SQLITE_MIGRATIONS).map(drop),
        }
        .expect("an old migration");
    }
    for Stored {
        user,
        authenticator,
    } in old
    {
        diesel::insert_into(v4::users::table)
            .values((
                v4::users::id.eq(&user.id),
                v4::users::username.eq(&user.username),
                v4::users::username_key.eq(&user.username_key),
                v4::users::password_hash.eq(&user.password_hash),
                v4::users::totp_secret.eq(&authenticator.totp_secret),
                v4::users::totp_key_id.eq(&authenticator.totp_key_id),
                v4::users::two_factor_enabled.eq(user.two_factor_enabled),
                v4::users::totp_last_step.eq(authenticator.last_step),
                v4::users::created_at.eq(user.created_at),
            ))
            .execute(&mut conn)
            .expect("an old user row");
    }
}

async fn a_database_of_migration_4_keeps_its_users_secrets_and_replay_steps(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // An enrolled user (step S accepted, the clock now at S + 1) and one
    // halfway through setup.
    let enrolled = app.enrolled_user(&unique_name("carried")).await;
    let halfway = unique_name("halfway");
    let registered = app.register(&halfway).await;
    let halfway_secret = app
        .setup_secret(registered["pending_token"].as_str().unwrap())
        .await;
    let old = vec![
        stored(&app, &enrolled.user_id).await,
        stored(&app, registered["user"]["id"].as_str().unwrap()).await,
    ];
    assert!(old[0].authenticator.last_step.is_some());

    let (old_url, _database) = app.empty_database().await;
    let url = old_url.clone();
    let rows = tokio::task::spawn_blocking(move || {
        old_database(&url, &old);
        old
    })
    .await
    .unwrap();
    let migrated = app.spawn_sibling_with(&[("DATABASE_URL", &old_url)]).await;

    // Carried over unchanged: the sealed secret, its key, the replay step.
    for before in &rows {
        let after = stored(&migrated, &before.user.id).await;
        let (old_row, new_row) = (&before.authenticator, &after.authenticator);
        assert_eq!(new_row.name, "default");
        assert_eq!(new_row.totp_secret, old_row.totp_secret);
        assert_eq!(new_row.totp_key_id, old_row.totp_key_id);
        assert_eq!(new_row.last_step, old_row.last_step);
        assert_eq!(
            new_row.confirmed_at.is_some(),
            before.user.two_factor_enabled
        );
    }

    // The code of step S, still within the window of one step either
    // side, is a replay; the code of step S + 1 signs in, once.
    let login = migrated.login(&enrolled.username).await;
    assert_eq!(login["next_step"], "verify_2fa");
    let pending = login["pending_token"].as_str().unwrap();
    let replay = migrated
        .verify(pending, &migrated.code(&enrolled.secret, -1))
        .await;
    assert_problem(replay, 401, "invalid_otp").await;
    let code = migrated.code(&enrolled.secret, 0);
    let response = migrated.verify(pending, &code).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "signs in after the migration"
    );
    let login = migrated.login(&enrolled.username).await;
    let replay = migrated
        .verify(login["pending_token"].as_str().unwrap(), &code)
        .await;
    assert_problem(replay, 401, "invalid_otp").await;

    // Halfway through setup: setup shows the same secret, which enables.
    let login = migrated.login(&halfway).await;
    assert_eq!(login["next_step"], "setup_2fa");
    let pending = login["pending_token"].as_str().unwrap();
    assert_eq!(migrated.setup_secret(pending).await, halfway_secret);
    let response = migrated
        .verify(pending, &migrated.code(&halfway_secret, 0))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
