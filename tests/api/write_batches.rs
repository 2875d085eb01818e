//! SQLite's writer commits the write transactions that queued meanwhile
//! together (each in a savepoint of its own): a request whose transaction
//! fails must undo only its own writes, and every other one must commit.
//! (On PostgreSQL each request has its own transaction: the same checks
//! hold trivially.) A transaction that fails after it wrote is covered by
//! `authenticators::adding_refuses_wrong_codes_bad_names_and_taken_names`:
//! a taken name refused after the code was accepted must leave the code
//! unspent, which fails on SQLite when the writer runs a request's work
//! without its savepoint.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::paths::REGISTER;
use crate::helpers::raw_http::{RacedPost, post_together};
use crate::helpers::*;

async fn a_clash_in_a_burst_of_registrations_fails_only_itself(app: TestApp) {
    for round in 0..3 {
        let names: Vec<String> = (0..19)
            .map(|i| unique_name(&format!("burst{round}x{i}")))
            .collect();
        // The first name twice: one of the two must fail, nothing else.
        let posts = names
            .iter()
            .chain(std::iter::once(&names[0]))
            .map(|name| RacedPost {
                path: REGISTER,
                token: None,
                body: json!({"username": name, "password": PASSWORD}),
            })
            .collect();
        let answers = post_together(&app, posts).await;
        let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        let created = statuses.iter().filter(|status| **status == 201).count();
        let clashed = statuses.iter().filter(|status| **status == 409).count();
        assert_eq!((created, clashed), (19, 1), "round {round}: {statuses:?}");
        for name in &names {
            let login = app
                .post_credentials(crate::helpers::paths::LOGIN, name, PASSWORD)
                .await;
            assert_eq!(login.status(), StatusCode::OK, "{name} was committed");
        }
    }
}

on_both_backends!(a_clash_in_a_burst_of_registrations_fails_only_itself);
