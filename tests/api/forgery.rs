//! Forged and tampered tokens: other algorithms and keys, changed claims,
//! swapped kinds and algorithm confusion; none gets in, while a faithful
//! re-signing of a real token does.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Hmac;
use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::jwt::*;
use crate::helpers::paths::{JWKS, SETUP, VERIFY};
use crate::helpers::{Backend, JWT_SECRET, TestApp, unique_name};

/// The server's (domain) clock, in Unix seconds: token times are judged
/// against it.
fn now(app: &TestApp) -> i64 {
    app.clock_now().timestamp()
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
        ("iat in 60 s", json!({"iat": t + 60})),
        ("no exp", json!({"exp": null})),
        ("exp as a string", json!({"exp": (t + 600).to_string()})),
    ];
    for (context, changes) in cases {
        let token = sign(&header, &with(&claims, changes), secret);
        assert_rejected(&app, &token, context).await;
    }
    // The real token is still good.
    assert_real_token_still_accepted(&app, &user).await;
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
    assert_real_token_still_accepted(&app, &user).await;
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
        ("x5c", json!({"x5c": ["MIIBszCCAVmgAwIBAgIUQ"]})),
        ("crit", json!({"crit": ["exp"]})),
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
        let response = app.request(Method::POST, SETUP, Some(&token), None).await;
        assert_invalid_token(response, &format!("access claims, typ {typ}, on setup")).await;
    }
    // Access claims with the pending audience and typ: not a pending token
    // either (there is no such pending grant).
    let relabelled = with(&claims, json!({"aud": pending_claims["aud"].clone()}));
    let token = sign(&pending_header, &relabelled, secret);
    let response = app
        .post(VERIFY, Some(&token), json!({"code": "123456"}))
        .await;
    assert_invalid_token(response, "access claims relabelled pending, on verify").await;
    // The genuine pending token is still usable for its own step.
    let response = app.verify(pending, &app.code(&user.secret, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Under EdDSA the server must not verify an HS256 token with its public
/// key as the HMAC secret (algorithm confusion), nor with the HS256 secret
/// it was also given, nor trust a key the token brings.
async fn eddsa_tokens_resist_algorithm_confusion(backend: Backend) {
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

    let response = app.get(JWKS, None).await;
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
    assert_real_token_still_accepted(&app, &user).await;
}

on_both_backends!(
    resigned_copy_of_a_real_token_is_accepted,
    alg_none_is_rejected,
    other_keys_and_algorithms_are_rejected,
    expired_and_not_yet_valid_tokens_are_rejected,
    wrong_audience_or_issuer_is_rejected,
    tampered_payload_is_rejected,
    key_reference_headers_are_rejected,
    token_kinds_cannot_be_swapped,
);
on_both_backends_with_own_settings!(eddsa_tokens_resist_algorithm_confusion);
