//! `GET /metrics` on its own listener, after some traffic.

use super::instance::{Instance, fresh_connections, login, register};
use crate::helpers::unique_name;

#[tokio::test]
async fn metrics_count_requests_by_route_and_outcome() {
    let server = Instance::listening(&[("OTPGATE_METRICS_BIND", "127.0.0.1:0")]);
    let metrics = server.metrics.clone().expect("metrics listener");
    let client = fresh_connections();
    let username = unique_name("metrics");
    register(&client, &server.address, &username).await;
    assert_eq!(
        login(&client, &server.address, &username)
            .await
            .unwrap()
            .status(),
        200
    );
    // A raw path a client chose must not become a label.
    let probe = client
        .get(server.url("/api/v1/no-such-path-7f3a"))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 404);
    // Not served on the API's listener.
    assert_eq!(
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let response = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for series in [
        r#"otpgate_http_requests_total{method="POST",route="/api/v1/auth/login",status="200"} 1"#,
        r#"otpgate_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"} 1"#,
        r#"otpgate_http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        r#"otpgate_http_request_duration_seconds_bucket{method="POST",route="/api/v1/auth/login",status="200",le="+Inf"} 1"#,
        r#"otpgate_security_events_total{event="registered"} 1"#,
        "otpgate_bcrypt_wait_seconds_count ",
        "otpgate_bcrypt_waiting 0",
        "otpgate_bcrypt_in_flight 0",
        "otpgate_http_requests_in_flight 0",
        "otpgate_db_pool_max_connections ",
        "otpgate_db_pool_connections ",
        "otpgate_db_pool_idle_connections ",
        "otpgate_db_pool_wait_seconds_count ",
    ] {
        assert!(text.contains(series), "missing {series:?} in\n{text}");
    }
    assert!(!text.contains("no-such-path"), "{text}");
}
