//! Which client a request counts against: a forged or garbled
//! `X-Forwarded-For` must not make the client look like the (exempt)
//! proxy, and one IPv6 /64 is one client (API.md 1.1, "Throttling: the
//! numbers").

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::clients::{
    assert_too_many, login_as, post_as, post_forwarded_bytes, registered_ip,
};
use crate::helpers::paths::REGISTER;
use crate::helpers::*;

/// Behind a trusted proxy on 127.0.0.1, a bucket of two requests.
const TWO_REQUESTS_BEHIND_A_PROXY: [(&str, &str); 3] = [
    ("OTPGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ("OTPGATE_IP_RATE_PER_MIN", "1"),
    ("OTPGATE_IP_BURST", "2"),
];

fn new_user() -> Value {
    json!({"username": unique_name("client"), "password": PASSWORD})
}

/// Registers from the client named by `forwarded`; the 201 body.
async fn register_as(app: &TestApp, forwarded: &[u8]) -> Value {
    let response = post_forwarded_bytes(app, forwarded, REGISTER, new_user()).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{forwarded:?}");
    response.json().await.unwrap()
}

async fn forwarded_for_that_is_not_utf8_is_a_throttled_unknown_client(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &TWO_REQUESTS_BEHIND_A_PROXY).await else {
        return;
    };
    let registered = register_as(&app, b"203.0.113.7\xff").await;
    assert_eq!(registered_ip(&app, registered).await, Value::Null);
    // Every unparseable header is the same unknown client, and it is
    // throttled (it is not the loopback proxy).
    register_as(&app, b"garbage").await;
    let response = post_forwarded_bytes(&app, b"198.51.100.3\xfe", REGISTER, new_user()).await;
    assert_too_many(response).await;
    register_as(&app, b"203.0.113.7").await;
}

async fn a_listed_loopback_proxy_is_throttled_but_a_local_tool_is_not(backend: Backend) {
    let Some(behind_proxy) = TestApp::spawn_with(backend, &TWO_REQUESTS_BEHIND_A_PROXY).await
    else {
        return;
    };
    let without_forwarded_for = || behind_proxy.post(REGISTER, None, new_user());
    for _ in 0..2 {
        assert_eq!(without_forwarded_for().await.status(), StatusCode::CREATED);
    }
    assert_too_many(without_forwarded_for().await).await;

    let local = behind_proxy
        .spawn_sibling_with(&[("OTPGATE_TRUSTED_PROXIES", "")])
        .await;
    for _ in 0..3 {
        let response = local.post(REGISTER, None, new_user()).await;
        assert_eq!(response.status(), StatusCode::CREATED, "a local tool");
    }
}

async fn addresses_in_one_ipv6_64_share_a_request_bucket(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &TWO_REQUESTS_BEHIND_A_PROXY).await else {
        return;
    };
    register_as(&app, b"2001:db8:1:2::1").await;
    register_as(&app, b"2001:db8:1:2::ffff").await;
    let response = post_as(&app, "2001:db8:1:2:abcd::1", REGISTER, new_user()).await;
    assert_too_many(response).await;
    register_as(&app, b"2001:db8:1:3::1").await;
}

async fn addresses_in_one_ipv6_64_share_a_password_streak(backend: Backend) {
    let proxy = [("OTPGATE_TRUSTED_PROXIES", "127.0.0.1")];
    let Some(app) = TestApp::spawn_with(backend, &proxy).await else {
        return;
    };
    let name = unique_name("v6");
    app.register(&name).await;
    for n in 1..=5 {
        let client = format!("2001:db8:1:2::{n}");
        let response = login_as(&app, &client, &name, "wrong password", None).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    let same_64 = login_as(&app, "2001:db8:1:2:ffff::9", &name, PASSWORD, None).await;
    assert_too_many(same_64).await;
    let other_64 = login_as(&app, "2001:db8:1:3::1", &name, PASSWORD, None).await;
    assert_eq!(other_64.status(), StatusCode::OK);
}

async fn ipv4_mapped_addresses_are_the_ipv4_client(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &TWO_REQUESTS_BEHIND_A_PROXY).await else {
        return;
    };
    let registered = register_as(&app, b"::ffff:203.0.113.9").await;
    assert_eq!(registered_ip(&app, registered).await, "203.0.113.9");
    register_as(&app, b"203.0.113.9").await;
    let response = post_as(&app, "::ffff:203.0.113.9", REGISTER, new_user()).await;
    assert_too_many(response).await;
}

on_both_backends_with_own_settings!(
    forwarded_for_that_is_not_utf8_is_a_throttled_unknown_client,
    a_listed_loopback_proxy_is_throttled_but_a_local_tool_is_not,
    addresses_in_one_ipv6_64_share_a_request_bucket,
    addresses_in_one_ipv6_64_share_a_password_streak,
    ipv4_mapped_addresses_are_the_ipv4_client,
);
