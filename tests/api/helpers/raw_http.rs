//! A raw HTTP/1.1 client over TCP, for what reqwest will not send: chunked
//! bodies of a chosen shape, requests released together from a barrier,
//! and answers read as they come off the socket.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use super::paths::{RECOVER, VERIFY};
use super::{TestApp, assert_hardened};

/// The server's `host:port`, for a socket or a Host header.
pub fn host(app: &TestApp) -> &str {
    app.address.trim_start_matches("http://")
}

/// An HTTP/1.1 answer read off a raw socket.
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `head` (request line and headers, ending in a blank line) and
/// then `body` in HTTP/1.1 chunks of `chunk` bytes, reading the answer
/// meanwhile (the server may answer before the body is complete).
pub async fn chunked_request(app: &TestApp, head: &str, body: &[u8], chunk: usize) -> RawResponse {
    let stream = TcpStream::connect(host(app)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut wire = head.as_bytes().to_vec();
    for piece in body.chunks(chunk) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let sender = tokio::spawn(async move {
        // Errors are expected once the server has answered and closed.
        let _ = writer.write_all(&wire).await;
        let _ = writer.flush().await;
        writer
    });
    let received = read_answer(&mut reader).await;
    sender.abort();
    parse_response(&received)
}

/// The bytes of one answer, read as they arrive (at most 10 s).
async fn read_answer(reader: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
            if response_complete(&received) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("an answer within 10 s");
    received
}

/// How often a race test runs its race: whether requests interleave is up
/// to the scheduler, and a broken build shows in most rounds, not in all.
pub const RACE_ROUNDS: usize = 3;

/// A JSON POST to send in a race: its path, bearer token and body.
pub struct RacedPost {
    pub path: &'static str,
    pub token: Option<String>,
    pub body: Value,
}

impl RacedPost {
    /// A `/2fa/verify` of `code` with this pending token.
    pub fn verify(pending: &str, code: &str) -> Self {
        Self {
            path: VERIFY,
            token: Some(pending.to_owned()),
            body: json!({"code": code}),
        }
    }

    /// A `/2fa/recover` of `recovery_code` with this pending token.
    pub fn recover(pending: &str, recovery_code: &str) -> Self {
        Self {
            path: RECOVER,
            token: Some(pending.to_owned()),
            body: json!({"recovery_code": recovery_code}),
        }
    }
}

/// Sends every request at once, so that the server handles them
/// concurrently: each connection is opened first, then a barrier lets all
/// the writes go together. The answers, in the order of `posts`.
pub async fn post_together(app: &TestApp, posts: Vec<RacedPost>) -> Vec<RawResponse> {
    let barrier = Arc::new(Barrier::new(posts.len()));
    let mut racers = Vec::new();
    for post in posts {
        let mut stream = TcpStream::connect(host(app)).await.expect("connect");
        let wire = post_bytes(host(app), &post);
        let barrier = barrier.clone();
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            stream.write_all(&wire).await.expect("request written");
            parse_response(&read_answer(&mut stream).await)
        }));
    }
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.expect("racer"));
    }
    answers
}

fn post_bytes(host: &str, post: &RacedPost) -> Vec<u8> {
    let body = post.body.to_string();
    let authorization = post
        .token
        .as_ref()
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{authorization}Connection: close\r\n\r\n{body}",
        post.path,
        body.len()
    )
    .into_bytes()
}

/// How many answers have this status.
pub fn count_status(answers: &[RawResponse], status: u16) -> usize {
    answers
        .iter()
        .filter(|answer| answer.status == status)
        .count()
}

fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&bytes[..end], &bytes[end + 4..]))
}

fn response_complete(bytes: &[u8]) -> bool {
    let Some((head, body)) = split_head(bytes) else {
        return false;
    };
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    if let Some(length) = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let (head, body) = split_head(bytes)
        .unwrap_or_else(|| panic!("no complete response: {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8(head.to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("header {line:?}"));
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|value| value.to_str().unwrap().eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&bytes[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// A POST head for a chunked JSON body, the connection closed after it.
pub fn chunked_head(app: &TestApp, path: &str) -> String {
    let host = host(app);
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
}

/// As `expect_problem`, for an answer read off the socket.
pub fn assert_raw_problem(response: &RawResponse, status: u16, code: &str, context: &str) {
    assert_eq!(
        response.status,
        status,
        "{context}: {:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_hardened(&response.headers, context);
    assert_eq!(
        response
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{context}"
    );
    let body: Value = serde_json::from_slice(&response.body).expect("problem JSON");
    assert_eq!(body["status"], status, "{context}: {body}");
    assert_eq!(body["code"], code, "{context}: {body}");
}
