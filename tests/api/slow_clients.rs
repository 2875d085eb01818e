//! Slow clients over a raw socket, past the first request's head (which
//! `security::a_slow_client_is_cut_off` covers): a second head trickled
//! on a kept-alive connection, and a declared body trickled after its head.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// `otpgate::http::middleware::CLIENT_TIMEOUT` plus a margin for a busy
/// machine: a connection waiting on its client longer is cut off.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(10 + 3);

/// Sends `bytes` one a second and returns how long the server let that go
/// on before it closed the connection (or answered 408); panics if it was
/// still open after `CUT_OFF_WITHIN`.
async fn trickle_until_cut_off(socket: &mut TcpStream, bytes: &[u8]) -> Duration {
    let started = Instant::now();
    for byte in bytes.iter().cycle() {
        let waited = started.elapsed();
        assert!(
            waited < CUT_OFF_WITHIN,
            "connection still open after {waited:?}"
        );
        if socket.write_all(&[*byte]).await.is_err() {
            return started.elapsed();
        }
        let mut answer = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), socket.read(&mut answer)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&answer[..n]);
                assert!(answer.starts_with("HTTP/1.1 408"), "answered {answer:?}");
                return started.elapsed();
            }
            Err(_) => {}
        }
    }
    unreachable!("cycle never ends")
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_head_trickled_is_cut_off() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut socket = connect(&app).await;
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: otpgate\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "first request served"
    );
    // The connection is kept alive: the next head starts at once, slowly.
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: otpgate\r\n")
        .await
        .unwrap();
    let waited = trickle_until_cut_off(&mut socket, b"X-Slow: 1\r\n").await;
    eprintln!("second head cut off after {waited:?}");
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_trickled_is_cut_off() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut socket = connect(&app).await;
    socket
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: otpgate\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
    let waited = trickle_until_cut_off(&mut socket, b"{\"username\": \"slow\" ").await;
    eprintln!("body cut off after {waited:?}");
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}
