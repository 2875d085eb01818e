//! SIGTERM under load: nothing in flight is lost, `/readyz` turns 503 at
//! once, exit code 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::instance::{Instance, fresh_connections, login, register};
use crate::helpers::paths::{READYZ, VERIFY};
use crate::helpers::unique_name;

/// What one request came to.
#[derive(Debug)]
enum Outcome {
    Answered(u16),
    /// Refused a connection: the listener had closed (not in flight).
    Refused,
    /// Anything else: a request lost.
    Lost(String),
}

fn outcome(result: reqwest::Result<reqwest::Response>) -> Outcome {
    match result {
        Ok(response) => Outcome::Answered(response.status().as_u16()),
        Err(error) if error.is_connect() => Outcome::Refused,
        Err(error) => Outcome::Lost(format!("{error:?}")),
    }
}

/// Logs in and submits a (wrong) code, over and over, until refused.
async fn stream(base: String, username: String, stop: Arc<AtomicBool>) -> Vec<Outcome> {
    let client = fresh_connections();
    let mut outcomes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let response = login(&client, &base, &username).await;
        let pending = match response {
            Ok(response) if response.status() == 200 => {
                outcomes.push(Outcome::Answered(200));
                let body: serde_json::Value = response.json().await.unwrap();
                body["pending_token"].as_str().map(str::to_owned)
            }
            other => {
                outcomes.push(outcome(other));
                None
            }
        };
        if let Some(pending) = pending {
            let verified = client
                .post(format!("{base}{VERIFY}"))
                .bearer_auth(pending)
                .json(&json!({"code": "000000"}))
                .send()
                .await;
            outcomes.push(outcome(verified));
        }
        if matches!(outcomes.last(), Some(Outcome::Refused)) {
            break;
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_every_request_in_flight() {
    // bcrypt cost 10: each login holds a request in flight for a while.
    let mut server = Instance::listening(&[
        ("OTPGATE_BCRYPT_COST", "10"),
        ("OTPGATE_SHUTDOWN_DELAY_SECS", "1"),
    ]);
    let client = fresh_connections();
    let users: Vec<String> = (0..8).map(|_| unique_name("drain")).collect();
    for user in &users {
        register(&client, &server.address, user).await;
    }
    let ready = async || {
        client
            .get(server.url(READYZ))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<_> = users
        .iter()
        .map(|user| tokio::spawn(stream(server.address.clone(), user.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The balancer's health check sees 503 while requests are still served.
    assert_eq!(ready().await, 503);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for stream in streams {
        outcomes.extend(stream.await.unwrap());
    }
    assert_eq!(server.wait(Duration::from_secs(40)), 0, "exit code");

    let answered: Vec<u16> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered(status) => Some(*status),
            _ => None,
        })
        .collect();
    let lost: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Lost(error) => Some(error),
            _ => None,
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refused))
        .count();
    let in_flight = |message: &str| {
        server.log_entries(message)[0]["in_flight"]
            .as_u64()
            .unwrap()
    };
    let at_sigterm = in_flight("shutdown begun: /readyz answers 503");
    let at_close = in_flight("listener closed: finishing the requests in flight");
    // Every request the server answered reached its client, and no other
    // request was accepted: the server's request lines (the two readiness
    // checks included) match the answers the clients got.
    let logged = server.log_entries("request").len();
    println!(
        "SIGTERM with {at_sigterm} request(s) in flight ({at_close} when the listener closed \
         a second later); {} answered, {} refused a connection after the listener closed, {} lost",
        answered.len(),
        refused,
        lost.len()
    );
    assert!(
        at_sigterm > 0 && at_close > 0,
        "the test should catch requests in flight"
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(answered.iter().all(|status| *status < 500), "{answered:?}");
    assert_eq!(logged, answered.len() + users.len() + 2);
    assert!(refused > 0, "every stream ends refused");
    assert_eq!(
        server
            .log_entries("stopped: every request answered, database pool closed")
            .len(),
        1
    );
}
