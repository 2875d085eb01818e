//! Bearer tokens: how they are presented, what they claim, and that no
//! forged, expired, swapped or revoked token gets in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

use crate::helpers::{EnrolledUser, JWT_SECRET, TestApp, assert_problem, unique_name};

const ME: &str = "/api/v1/me";
const ACCESS_TTL: i64 = 900;
const PENDING_TTL: i64 = 300;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
    serde_json::from_slice(&bytes).expect("JSON JWT part")
}

/// Header and claims of a compact JWT, unverified.
fn parts(token: &str) -> (Value, Value) {
    let pieces: Vec<&str> = token.split('.').collect();
    assert_eq!(pieces.len(), 3, "compact JWS: {token}");
    (decode_part(pieces[0]), decode_part(pieces[1]))
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs with the HMAC named by `header.alg`, written here independently of
/// the server (and of the jsonwebtoken crate).
fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = unsigned(header, claims);
    let signature = match header["alg"].as_str() {
        Some("HS256") => hmac_sign::<Hmac<Sha256>>(key, &input),
        Some("HS384") => hmac_sign::<Hmac<Sha384>>(key, &input),
        Some("HS512") => hmac_sign::<Hmac<Sha512>>(key, &input),
        other => panic!("no HMAC for {other:?}"),
    };
    format!("{input}.{}", b64(&signature))
}

fn hmac_sign<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &str) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs with the jsonwebtoken crate, `typ` as given.
fn jwt_crate_sign(alg: Algorithm, typ: &str, claims: &Value, key: &[u8]) -> String {
    let header = Header {
        typ: Some(typ.to_owned()),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// The server's (domain) clock, in Unix seconds: token times are judged
/// against it.
fn now(app: &TestApp) -> i64 {
    app.clock_now().timestamp()
}

fn set_clock(app: &TestApp, unix: i64) {
    app.clock
        .set(chrono::DateTime::from_timestamp(unix, 0).unwrap());
}

fn www_authenticate(response: &Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{} without WWW-Authenticate", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn me(app: &TestApp, token: &str) -> Response {
    app.get(ME, Some(token)).await
}

/// 401 `invalid_token` with a Bearer challenge naming the error (a token
/// was presented).
async fn assert_invalid_token(response: Response, context: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer"), "{context}: {challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{context}: {challenge}"
    );
    assert_problem(response, 401, "invalid_token").await;
}

async fn assert_rejected(app: &TestApp, token: &str, context: &str) {
    assert_invalid_token(me(app, token).await, &format!("{context}: {token}")).await;
}

async fn assert_accepted(app: &TestApp, token: &str, user: &EnrolledUser, context: &str) {
    let response = me(app, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{context}: {token}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], user.user_id.as_str(), "{context}");
}

/// An enrolled user whose real access token works, and its parts.
async fn fixture(app: &TestApp) -> (EnrolledUser, Value, Value) {
    let user = app.enrolled_user(&unique_name("tok")).await;
    assert_accepted(app, user.access_token(), &user, "the real token").await;
    let (header, claims) = parts(user.access_token());
    (user, header, claims)
}

fn with(value: &Value, changes: Value) -> Value {
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

async fn missing_or_malformed_authorization_is_401(app: TestApp) {
    let user = app.enrolled_user(&unique_name("auth")).await;
    let response = app.get(ME, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // RFC 6750 3.1: no error code when no credentials were sent.
    assert!(!challenge.contains("error="), "{challenge}");
    assert_problem(response, 401, "invalid_token").await;

    let access = user.access_token();
    for value in [
        "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==".to_owned(),
        format!("Basic {access}"),
        format!("Token {access}"),
        format!("Bearer{access}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ...".to_owned(),
        format!("Bearer {access} extra"),
        format!("Bearer {access}x"),
        format!("Bearer \"{access}\""),
        access.to_owned(),
    ] {
        let response = app
            .client
            .get(app.url(ME))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        let context = format!("Authorization: {value:?}");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{context}");
        let challenge = www_authenticate(&response);
        assert!(challenge.starts_with("Bearer"), "{context}: {challenge}");
        assert_problem(response, 401, "invalid_token").await;
    }
}

async fn bearer_scheme_is_case_insensitive(app: TestApp) {
    let user = app.enrolled_user(&unique_name("case")).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = app
            .client
            .get(app.url(ME))
            .header("authorization", format!("{scheme} {}", user.access_token()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "scheme {scheme}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], user.user_id.as_str());
        assert_eq!(body["username"], user.username.as_str());
        assert_eq!(body["two_factor_enabled"], true);
    }
}

async fn tokens_of_the_wrong_stage_are_refused(app: TestApp) {
    let registered = app.register(&unique_name("stage")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    // A pending token is not an access token: 403, not 401.
    for (method, path) in [(Method::GET, ME), (Method::POST, "/api/v1/auth/logout")] {
        let response = app.request(method.clone(), path, Some(pending), None).await;
        assert_problem(response, 403, "two_factor_required").await;
    }
    // ...and that refusal did not spend it.
    app.setup(pending).await;

    let user = app.enrolled_user(&unique_name("stage")).await;
    let access = user.access_token();
    let response = app
        .request(Method::POST, "/api/v1/2fa/setup", Some(access), None)
        .await;
    assert_invalid_token(response, "access token on /2fa/setup").await;
    let code = app.code(&user.secret, 0);
    let response = app
        .post("/api/v1/2fa/verify", Some(access), json!({"code": code}))
        .await;
    assert_invalid_token(response, "access token on /2fa/verify").await;
    // The code was not used up by that refusal: a fresh login accepts it.
    let login = app.login(&user.username).await;
    assert_eq!(login["next_step"], "verify_2fa");
    let response = app
        .verify(login["pending_token"].as_str().unwrap(), &code)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn resigned_copy_of_a_real_token_is_accepted(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let secret = JWT_SECRET.as_bytes();
    // Our own signer reproduces the server's signature...
    let resigned = sign(&header, &claims, secret);
    let original_signature = user.access_token().rsplit('.').next().unwrap();
    let (expected_header, expected_claims) = parts(&resigned);
    assert_eq!(
        (expected_header, expected_claims),
        (header.clone(), claims.clone())
    );
    assert_accepted(&app, &resigned, &user, "re-signed with our HMAC").await;
    assert_eq!(
        b64(&hmac_sign::<Hmac<Sha256>>(
            secret,
            user.access_token().rsplit_once('.').unwrap().0
        )),
        original_signature
    );
    // ...and so does the jsonwebtoken crate.
    let typ = header["typ"].as_str().unwrap();
    assert_accepted(
        &app,
        &jwt_crate_sign(Algorithm::HS256, typ, &claims, secret),
        &user,
        "jsonwebtoken",
    )
    .await;
    // Shifted times that are still valid are fine too, so the expiry tests
    // below fail for the times alone.
    let t = now(&app);
    let shifted = with(
        &claims,
        json!({"iat": t - 300, "nbf": t - 300, "exp": t + 600}),
    );
    assert_accepted(
        &app,
        &sign(&header, &shifted, secret),
        &user,
        "shifted times",
    )
    .await;
}

async fn alg_none_is_rejected(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let real_signature = user.access_token().rsplit('.').next().unwrap().to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let none_header = with(&header, json!({"alg": alg}));
        let token = format!("{}.", unsigned(&none_header, &claims));
        assert_rejected(&app, &token, &format!("alg {alg}, no signature")).await;
        let token = format!("{}.{real_signature}", unsigned(&none_header, &claims));
        assert_rejected(&app, &token, &format!("alg {alg}, real signature")).await;
        let bare = json!({"alg": alg});
        assert_rejected(
            &app,
            &format!("{}.", unsigned(&bare, &claims)),
            &format!("alg {alg} only"),
        )
        .await;
    }
    // No signature at all with the real header.
    assert_rejected(
        &app,
        &format!("{}.", unsigned(&header, &claims)),
        "empty signature",
    )
    .await;
}

async fn other_keys_and_algorithms_are_rejected(app: TestApp) {
    let (_user, header, claims) = fixture(&app).await;
    let typ = header["typ"].as_str().unwrap();
    let other_key = b"another-secret-that-is-long-enough-0123456789";
    assert_rejected(
        &app,
        &sign(&header, &claims, other_key),
        "HS256, another key",
    )
    .await;
    assert_rejected(
        &app,
        &jwt_crate_sign(Algorithm::HS256, typ, &claims, other_key),
        "HS256 (crate), another key",
    )
    .await;
    let secret = JWT_SECRET.as_bytes();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jwt_crate_sign(alg, typ, &claims, secret);
        assert_rejected(&app, &token, &format!("{alg:?} with the real secret")).await;
    }
    for alg in ["HS384", "HS512"] {
        let token = sign(&with(&header, json!({"alg": alg})), &claims, secret);
        assert_rejected(
            &app,
            &token,
            &format!("{alg} (own HMAC) with the real secret"),
        )
        .await;
    }
    // An HS256 signature under a header that names another algorithm.
    let relabelled = with(&header, json!({"alg": "HS512"}));
    let hs256 = hmac_sign::<Hmac<Sha256>>(secret, &unsigned(&relabelled, &claims));
    let token = format!("{}.{}", unsigned(&relabelled, &claims), b64(&hs256));
    assert_rejected(&app, &token, "HS256 signature labelled HS512").await;
}

async fn expired_and_not_yet_valid_tokens_are_rejected(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let secret = JWT_SECRET.as_bytes();
    let t = now(&app);
    let cases = [
        (
            "expired 10 minutes ago",
            json!({"iat": t - 600 - ACCESS_TTL, "nbf": t - 600 - ACCESS_TTL, "exp": t - 600}),
        ),
        (
            "expired 30 s ago",
            json!({"iat": t - 30 - ACCESS_TTL, "nbf": t - 30 - ACCESS_TTL, "exp": t - 30}),
        ),
        ("nbf in 10 minutes", json!({"nbf": t + 600})),
        ("nbf in 60 s", json!({"nbf": t + 60})),
        ("no exp", json!({"exp": null})),
        ("exp as a string", json!({"exp": (t + 600).to_string()})),
    ];
    for (context, changes) in cases {
        let token = sign(&header, &with(&claims, changes), secret);
        assert_rejected(&app, &token, context).await;
    }
    // The real token is still good.
    assert_accepted(
        &app,
        user.access_token(),
        &user,
        "the real token, afterwards",
    )
    .await;
}

async fn wrong_audience_or_issuer_is_rejected(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let secret = JWT_SECRET.as_bytes();
    let (_, pending_claims) = parts(
        app.login(&user.username).await["pending_token"]
            .as_str()
            .unwrap(),
    );
    let cases = [
        (
            "pending audience",
            json!({"aud": pending_claims["aud"].clone()}),
        ),
        ("foreign audience", json!({"aud": "https://evil.example"})),
        ("empty audience", json!({"aud": ""})),
        ("no audience", json!({"aud": null})),
        ("foreign issuer", json!({"iss": "https://evil.example"})),
        (
            "issuer in another case",
            json!({"iss": claims["iss"].as_str().unwrap().to_uppercase()}),
        ),
        ("no issuer", json!({"iss": null})),
    ];
    for (context, changes) in cases {
        let token = sign(&header, &with(&claims, changes), secret);
        assert_rejected(&app, &token, context).await;
    }
}

async fn tampered_payload_is_rejected(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let other = app.enrolled_user(&unique_name("other")).await;
    let signature = user.access_token().rsplit('.').next().unwrap().to_owned();
    let cases = [
        ("sub of another user", json!({"sub": other.user_id.clone()})),
        (
            "later exp",
            json!({"exp": claims["exp"].as_i64().unwrap() + 86_400}),
        ),
        ("amr changed", json!({"amr": ["pwd", "recovery_code"]})),
    ];
    for (context, changes) in cases {
        let token = format!("{}.{signature}", unsigned(&header, &with(&claims, changes)));
        assert_rejected(&app, &token, context).await;
    }
    // A flipped bit in the signature.
    let mut bytes = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    bytes[0] ^= 1;
    let token = format!("{}.{}", unsigned(&header, &claims), b64(&bytes));
    assert_rejected(&app, &token, "signature bit flipped").await;
    // Even correctly signed, a session cannot be moved to another user.
    let moved = with(&claims, json!({"sub": other.user_id.clone()}));
    assert_rejected(
        &app,
        &sign(&header, &moved, JWT_SECRET.as_bytes()),
        "session of another user",
    )
    .await;
    assert_accepted(
        &app,
        user.access_token(),
        &user,
        "the real token, afterwards",
    )
    .await;
}

async fn key_reference_headers_are_rejected(app: TestApp) {
    let (_user, header, claims) = fixture(&app).await;
    let secret = JWT_SECRET.as_bytes();
    let jwk = json!({"kty": "oct", "k": b64(secret)});
    let cases = [
        ("kid", json!({"kid": "0"})),
        ("jku", json!({"jku": "https://evil.example/jwks.json"})),
        ("jwk", json!({"jwk": jwk})),
        ("x5u", json!({"x5u": "https://evil.example/cert.pem"})),
    ];
    for (context, changes) in cases {
        let token = sign(&with(&header, changes), &claims, secret);
        assert_rejected(&app, &token, context).await;
    }
}

async fn token_kinds_cannot_be_swapped(app: TestApp) {
    let (user, header, claims) = fixture(&app).await;
    let secret = JWT_SECRET.as_bytes();
    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let (pending_header, pending_claims) = parts(pending);
    assert_ne!(pending_header["typ"], header["typ"]);

    // Pending claims under the access typ.
    let token = sign(&header, &pending_claims, secret);
    assert_rejected(&app, &token, "pending claims, access typ").await;
    // Pending claims dressed up with the session's sid, amr and aal, under
    // the access typ: only the audience still says pending.
    let dressed = with(
        &pending_claims,
        json!({"sid": claims["sid"].clone(), "amr": claims["amr"].clone(), "aal": "aal2"}),
    );
    assert_rejected(
        &app,
        &sign(&header, &dressed, secret),
        "pending audience, access typ",
    )
    .await;
    // Access claims under the pending typ, or a generic one.
    for typ in [
        pending_header["typ"].clone(),
        json!("JWT"),
        json!("at+JWT"),
        Value::Null,
    ] {
        let token = sign(&with(&header, json!({"typ": typ})), &claims, secret);
        assert_rejected(&app, &token, &format!("access claims, typ {typ}")).await;
        let response = app
            .request(Method::POST, "/api/v1/2fa/setup", Some(&token), None)
            .await;
        assert_invalid_token(response, &format!("access claims, typ {typ}, on setup")).await;
    }
    // Access claims with the pending audience and typ: not a pending token
    // either (there is no such pending grant).
    let relabelled = with(&claims, json!({"aud": pending_claims["aud"].clone()}));
    let token = sign(&pending_header, &relabelled, secret);
    let response = app
        .post(
            "/api/v1/2fa/verify",
            Some(&token),
            json!({"code": "123456"}),
        )
        .await;
    assert_invalid_token(response, "access claims relabelled pending, on verify").await;
    // The genuine pending token is still usable for its own step.
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn access_and_pending_token_claims(app: TestApp) {
    let before = app.clock_now().timestamp();
    let user = app.enrolled_user(&unique_name("claims")).await;
    let after = app.clock_now().timestamp();
    assert_eq!(user.tokens["token_type"], "Bearer");
    assert_eq!(user.tokens["expires_in"], ACCESS_TTL);

    let (header, claims) = parts(user.access_token());
    assert_eq!(header["alg"], "HS256", "{header}");
    assert!(header["typ"].is_string(), "{header}");
    assert_eq!(claims["sub"], user.user_id.as_str(), "{claims}");
    for name in ["sid", "jti", "iss"] {
        assert!(
            claims[name].as_str().is_some_and(|v| !v.is_empty()),
            "{name}: {claims}"
        );
    }
    assert_eq!(claims["iss"], "otpgate", "{claims}");
    assert!(
        claims["aud"].is_string() || claims["aud"].is_array(),
        "{claims}"
    );
    let iat = claims["iat"]
        .as_i64()
        .unwrap_or_else(|| panic!("iat: {claims}"));
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in {before}..={after}"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - iat,
        ACCESS_TTL,
        "{claims}"
    );
    assert_eq!(claims["amr"], json!(["pwd", "otp"]), "{claims}");
    assert_eq!(claims["aal"], "aal2", "{claims}");

    let login = app.login(&user.username).await;
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], PENDING_TTL);
    let pending = login["pending_token"].as_str().unwrap();
    let (pending_header, pending_claims) = parts(pending);
    assert_eq!(pending_header["alg"], "HS256");
    assert_ne!(
        pending_header["typ"], header["typ"],
        "{pending_header} vs {header}"
    );
    assert_eq!(pending_claims["sub"], user.user_id.as_str());
    assert_eq!(pending_claims["iss"], claims["iss"]);
    assert_ne!(pending_claims["aud"], claims["aud"], "{pending_claims}");
    assert!(pending_claims.get("aal").is_none(), "{pending_claims}");
    assert_ne!(
        pending_claims["amr"],
        json!(["pwd", "otp"]),
        "{pending_claims}"
    );
    let pending_iat = pending_claims["iat"].as_i64().unwrap();
    assert_eq!(
        pending_claims["exp"].as_i64().unwrap() - pending_iat,
        PENDING_TTL
    );

    // A second session has its own sid and jti.
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    let (_, second_claims) = parts(second["access_token"].as_str().unwrap());
    assert_ne!(second_claims["sid"], claims["sid"]);
    assert_ne!(second_claims["jti"], claims["jti"]);
    assert_eq!(second_claims["sub"], claims["sub"]);
}

async fn tokens_in_the_query_string_are_ignored(app: TestApp) {
    let user = app.enrolled_user(&unique_name("query")).await;
    let access = user.access_token();
    for query in [
        format!("access_token={access}"),
        format!("token={access}"),
        format!("bearer={access}"),
    ] {
        let response = app.get(&format!("{ME}?{query}"), None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{query}");
        let challenge = www_authenticate(&response);
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        assert_problem(response, 401, "invalid_token").await;
    }
    let registered = app.register(&unique_name("query")).await;
    let pending = registered["pending_token"].as_str().unwrap();
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/2fa/setup?access_token={pending}"),
            None,
            None,
        )
        .await;
    assert_problem(response, 401, "invalid_token").await;
}

async fn logout_revokes_the_session(app: TestApp) {
    let user = app.enrolled_user(&unique_name("logout")).await;
    let access = user.access_token();
    // A second session of the same user.
    let other = app.sign_in(&user).await;
    let other_access = other["access_token"].as_str().unwrap();

    let response = app
        .request(Method::POST, "/api/v1/auth/logout", Some(access), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    assert_invalid_token(me(&app, access).await, "access token after logout").await;
    let response = app
        .request(Method::POST, "/api/v1/auth/logout", Some(access), None)
        .await;
    assert_invalid_token(response, "second logout").await;
    // A re-signed copy is no better.
    let (header, claims) = parts(access);
    assert_rejected(
        &app,
        &sign(&header, &claims, JWT_SECRET.as_bytes()),
        "re-signed after logout",
    )
    .await;
    // The other session is untouched.
    assert_accepted(&app, other_access, &user, "the other session").await;
}

async fn tokens_expire_on_the_server_clock(app: TestApp) {
    let user = app.enrolled_user(&unique_name("expiry")).await;
    let (_, claims) = parts(user.access_token());
    let exp = claims["exp"].as_i64().unwrap();
    set_clock(&app, exp - 1);
    assert_accepted(&app, user.access_token(), &user, "one second before exp").await;
    set_clock(&app, exp + 6);
    assert_rejected(
        &app,
        user.access_token(),
        "6 s after exp (leeway is at most 5 s)",
    )
    .await;
    set_clock(&app, exp + 3600);
    assert_rejected(&app, user.access_token(), "an hour after exp").await;

    let login = app.login(&user.username).await;
    let pending = login["pending_token"].as_str().unwrap();
    let (_, pending_claims) = parts(pending);
    let pending_exp = pending_claims["exp"].as_i64().unwrap();
    set_clock(&app, pending_exp + 6);
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_invalid_token(response, "pending token 6 s after exp").await;
}

/// SPKI PEM of a raw Ed25519 public key (RFC 8410).
fn ed25519_spki_pem(raw: &[u8]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(raw);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

fn ed_sign(header: &Value, claims: &Value, private_pem: &str) -> String {
    let header: Header = serde_json::from_value(header.clone()).unwrap();
    let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Under EdDSA the server must not verify an HS256 token with its public
/// key as the HMAC secret (algorithm confusion), nor with the HS256 secret
/// it was also given, nor trust a key the token brings.
async fn eddsa_tokens_resist_algorithm_confusion(backend: crate::helpers::Backend) {
    let keys = tempfile::tempdir().unwrap();
    let private_pem = otpgate::auth::tokens::TokenKeys::generate_ed25519_pem().unwrap();
    let key_file = keys.path().join("signing.pem");
    std::fs::write(&key_file, &private_pem).unwrap();
    let key_path = key_file.display().to_string();
    let settings = [
        ("OTPGATE_JWT_ALG", "EdDSA"),
        ("OTPGATE_JWT_PRIVATE_KEY_FILE", key_path.as_str()),
    ];
    let Some(app) = TestApp::spawn_with(backend, &settings).await else {
        eprintln!("OTPGATE_TEST_POSTGRES_URL unset: PostgreSQL variant not run");
        return;
    };
    let (user, header, claims) = fixture(&app).await;
    assert_eq!(header["alg"], "EdDSA", "{header}");

    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let jwks: Value = response.json().await.unwrap();
    let keys_published = jwks["keys"].as_array().unwrap();
    assert_eq!(keys_published.len(), 1, "{jwks}");
    let jwk = &keys_published[0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(
        header["kid"], jwk["kid"],
        "the token names the published key"
    );
    assert!(jwk.get("d").is_none(), "private part published: {jwk}");
    let x = jwk["x"].as_str().unwrap();
    let raw_public = URL_SAFE_NO_PAD.decode(x).unwrap();

    // Control: re-signed with the real private key, the claims are good.
    assert_accepted(
        &app,
        &ed_sign(&header, &claims, &private_pem),
        &user,
        "re-signed EdDSA",
    )
    .await;

    let hs256 = with(&header, json!({"alg": "HS256"}));
    let hs256_no_kid = with(&hs256, json!({"kid": null}));
    let jwk_text = jwk.to_string();
    let pem = ed25519_spki_pem(&raw_public);
    let confusion_keys: [(&str, &[u8]); 5] = [
        ("raw public key", &raw_public),
        ("x as text", x.as_bytes()),
        ("SPKI PEM", pem.as_bytes()),
        ("JWK as text", jwk_text.as_bytes()),
        ("the configured HS256 secret", JWT_SECRET.as_bytes()),
    ];
    for (name, key) in confusion_keys {
        assert_rejected(
            &app,
            &sign(&hs256, &claims, key),
            &format!("HS256 keyed with {name}"),
        )
        .await;
        assert_rejected(
            &app,
            &sign(&hs256_no_kid, &claims, key),
            &format!("HS256 keyed with {name}, no kid"),
        )
        .await;
    }
    for alg in ["none", "None"] {
        let token = format!(
            "{}.",
            unsigned(&with(&header, json!({"alg": alg})), &claims)
        );
        assert_rejected(&app, &token, &format!("alg {alg} with the real kid")).await;
    }

    // Another Ed25519 key: under the real kid, without one, or embedded.
    let attacker_pem = otpgate::auth::tokens::TokenKeys::generate_ed25519_pem().unwrap();
    assert_rejected(
        &app,
        &ed_sign(&header, &claims, &attacker_pem),
        "another key, real kid",
    )
    .await;
    let no_kid = with(&header, json!({"kid": null}));
    assert_rejected(
        &app,
        &ed_sign(&no_kid, &claims, &attacker_pem),
        "another key, no kid",
    )
    .await;
    let other_kid = with(&header, json!({"kid": "attacker"}));
    assert_rejected(
        &app,
        &ed_sign(&other_kid, &claims, &attacker_pem),
        "another key, its own kid",
    )
    .await;
    // The real signature over changed claims.
    let signature = user.access_token().rsplit('.').next().unwrap();
    let token = format!(
        "{}.{signature}",
        unsigned(&header, &with(&claims, json!({"sub": "someone-else"})))
    );
    assert_rejected(&app, &token, "EdDSA signature over other claims").await;
    assert_accepted(
        &app,
        user.access_token(),
        &user,
        "the real token, afterwards",
    )
    .await;
}

mod eddsa_tokens_resist_algorithm_confusion {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::eddsa_tokens_resist_algorithm_confusion(crate::helpers::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::eddsa_tokens_resist_algorithm_confusion(crate::helpers::Backend::Postgres).await;
    }
}

on_both_backends!(
    tokens_expire_on_the_server_clock,
    missing_or_malformed_authorization_is_401,
    bearer_scheme_is_case_insensitive,
    tokens_of_the_wrong_stage_are_refused,
    resigned_copy_of_a_real_token_is_accepted,
    alg_none_is_rejected,
    other_keys_and_algorithms_are_rejected,
    expired_and_not_yet_valid_tokens_are_rejected,
    wrong_audience_or_issuer_is_rejected,
    tampered_payload_is_rejected,
    key_reference_headers_are_rejected,
    token_kinds_cannot_be_swapped,
    access_and_pending_token_claims,
    tokens_in_the_query_string_are_ignored,
    logout_revokes_the_session,
);

/// Short configured lifetimes, as a deployment may set them: tokens die on
/// the server's clock, within the 5 s leeway.
async fn configured_lifetimes_are_enforced(backend: crate::helpers::Backend) {
    let extra = [
        ("OTPGATE_ACCESS_TTL_SECS", "1"),
        ("OTPGATE_PENDING_TTL_SECS", "1"),
    ];
    let Some(app) = TestApp::spawn_with(backend, &extra).await else {
        return;
    };
    let registered = app.register(&unique_name("ttl")).await;
    assert_eq!(registered["expires_in"], 1);
    let pending = registered["pending_token"].as_str().unwrap();
    let secret = app.setup(pending).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app.verify(pending, &app.code(&secret, 0)).await;
    let tokens: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", Some(access)).await.status(), 200);
    app.clock.advance(chrono::Duration::seconds(7));
    assert_invalid_token(app.get("/api/v1/me", Some(access)).await, "expired access").await;
    let late = app
        .login(registered["user"]["username"].as_str().unwrap())
        .await;
    app.clock.advance(chrono::Duration::seconds(7));
    let response = app
        .request(
            reqwest::Method::POST,
            "/api/v1/2fa/setup",
            late["pending_token"].as_str(),
            None,
        )
        .await;
    assert_invalid_token(response, "expired pending").await;
}

on_both_backends_with_own_settings!(configured_lifetimes_are_enforced);
