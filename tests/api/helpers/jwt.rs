//! Tokens made in the tests: taken apart, re-signed, forged and tampered
//! with, written independently of the server's own signing code; and what
//! the server makes of them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};

use super::paths::ME;
use super::{EnrolledUser, TestApp, assert_problem, unique_name};

/// The default lifetimes, in seconds, of access and pending tokens.
pub const ACCESS_TTL: i64 = 900;
pub const PENDING_TTL: i64 = 300;

/// Base64url without padding, as in a compact JWS.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
    serde_json::from_slice(&bytes).expect("JSON JWT part")
}

/// Header and claims of a compact JWT, unverified.
pub fn parts(token: &str) -> (Value, Value) {
    let pieces: Vec<&str> = token.split('.').collect();
    assert_eq!(pieces.len(), 3, "compact JWS: {token}");
    (decode_part(pieces[0]), decode_part(pieces[1]))
}

/// The claims of a compact JWT, unverified.
pub fn claims(token: &str) -> Value {
    decode_part(token.split('.').nth(1).expect("a claims part"))
}

/// The signing input: encoded header and claims.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs with the HMAC named by `header.alg`, written here independently of
/// the server (and of the jsonwebtoken crate).
pub fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = unsigned(header, claims);
    let signature = match header["alg"].as_str() {
        Some("HS256") => hmac_sign::<Hmac<Sha256>>(key, &input),
        Some("HS384") => hmac_sign::<Hmac<Sha384>>(key, &input),
        Some("HS512") => hmac_sign::<Hmac<Sha512>>(key, &input),
        other => panic!("no HMAC for {other:?}"),
    };
    format!("{input}.{}", b64(&signature))
}

pub fn hmac_sign<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &str) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs with the jsonwebtoken crate, `typ` as given.
pub fn jwt_crate_sign(alg: Algorithm, typ: &str, claims: &Value, key: &[u8]) -> String {
    let header = Header {
        typ: Some(typ.to_owned()),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// A copy of a JSON object with these fields set (or removed, by null).
pub fn with(value: &Value, changes: Value) -> Value {
    let mut value = value.clone();
    for (key, change) in changes.as_object().unwrap() {
        if change.is_null() {
            value.as_object_mut().unwrap().remove(key);
        } else {
            value[key] = change.clone();
        }
    }
    value
}

/// SPKI PEM of a raw Ed25519 public key (RFC 8410).
pub fn ed25519_spki_pem(raw: &[u8]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(raw);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

/// Signs with the jsonwebtoken crate's EdDSA, under this header.
pub fn ed_sign(header: &Value, claims: &Value, private_pem: &str) -> String {
    let header: Header = serde_json::from_value(header.clone()).unwrap();
    let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

// What the server makes of a token.

/// The Bearer challenge of a 401.
pub fn www_authenticate(response: &Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{} without WWW-Authenticate", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

pub async fn me(app: &TestApp, token: &str) -> Response {
    app.get(ME, Some(token)).await
}

/// 401 `invalid_token` with a Bearer challenge naming the error (a token
/// was presented).
pub async fn assert_invalid_token(response: Response, context: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer"), "{context}: {challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{context}: {challenge}"
    );
    assert_problem(response, 401, "invalid_token").await;
}

/// `token` gets a 401 `invalid_token` on /me.
pub async fn assert_rejected(app: &TestApp, token: &str, context: &str) {
    assert_invalid_token(me(app, token).await, &format!("{context}: {token}")).await;
}

/// `token` opens /me as `user`.
pub async fn assert_accepted(app: &TestApp, token: &str, user: &EnrolledUser, context: &str) {
    let response = me(app, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{context}: {token}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], user.user_id.as_str(), "{context}");
}

/// The user's real token still works, whatever was refused before it.
pub async fn assert_real_token_still_accepted(app: &TestApp, user: &EnrolledUser) {
    assert_accepted(app, user.access_token(), user, "the real token, afterwards").await;
}

/// An enrolled user whose real access token works, and its parts.
pub async fn fixture(app: &TestApp) -> (EnrolledUser, Value, Value) {
    let user = app.enrolled_user(&unique_name("tok")).await;
    assert_accepted(app, user.access_token(), &user, "the real token").await;
    let (header, claims) = parts(user.access_token());
    (user, header, claims)
}
