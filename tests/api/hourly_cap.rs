//! "At most N wrong passwords per username in any hour": a window that
//! restarts (at the first failure an hour ago, or at a clock hour) lets
//! up to twice the cap through around its edge.

use chrono::{Duration, DurationRound, TimeDelta};
use reqwest::StatusCode;

use crate::helpers::clients::{assert_too_many, login_as};
use crate::helpers::*;

async fn the_hourly_cap_holds_across_a_window_edge(backend: Backend) {
    let settings = [
        ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("OTPGATE_LOGIN_FAILURES_PER_HOUR", "10"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        return;
    };
    let name = unique_name("edge");
    app.register(&name).await;
    let hour = app.clock_now().duration_trunc(TimeDelta::hours(1)).unwrap() + Duration::hours(1);
    let wrong_from = |n: u8| {
        let client = format!("198.51.100.{n}");
        let name = name.clone();
        let app = &app;
        async move {
            let response = login_as(app, &client, &name, "wrong password", None).await;
            assert_problem(response, 401, "invalid_credentials").await;
        }
    };
    // One failure just after the hour starts, nine just before it ends.
    app.clock.set(hour + Duration::seconds(1));
    wrong_from(1).await;
    app.clock.set(hour + Duration::seconds(3599));
    for n in 2..=10 {
        wrong_from(n).await;
    }
    // Just over an hour after the first failure: whether one more wrong
    // password is still counted or already refused, the hour ending now
    // then holds the cap, so the right password is refused too.
    app.clock.set(hour + Duration::seconds(3602));
    let response = login_as(&app, "198.51.100.11", &name, "wrong password", None).await;
    let status = response.status().as_u16();
    assert!(status == 401 || status == 429, "status {status}");
    let response = login_as(&app, "203.0.113.1", &name, PASSWORD, None).await;
    assert_too_many(response).await;
    // Two clock hours on, the failures have aged out.
    app.clock.set(hour + Duration::hours(2));
    let response = login_as(&app, "203.0.113.1", &name, PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK);
}

on_both_backends_with_own_settings!(the_hourly_cap_holds_across_a_window_edge);
