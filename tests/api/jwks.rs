//! Asymmetric signing: access tokens verifiable with only the JWKS.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::paths::{JWKS, ME};
use crate::helpers::*;

async fn hs256_publishes_no_keys(app: TestApp) {
    let response = app.get(JWKS, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"keys": []}));
}

/// Verifies like a resource server holding nothing but the key set.
fn verify_with(set: &JwkSet, token: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["otpgate:access"]);
    validation.set_issuer(&["otpgate"]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn eddsa_tokens_verify_with_only_the_jwks(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("OTPGATE_JWT_ALG", "EdDSA")]).await else {
        return;
    };
    let user = app.enrolled_user(&unique_name("eddsa")).await;
    let access = user.access_token();
    assert_eq!(app.get(ME, Some(access)).await.status(), StatusCode::OK);

    let body: Value = app.get(JWKS, None).await.json().await.unwrap();
    let set: JwkSet = serde_json::from_value(body.clone()).expect("a JWK set");
    assert_eq!(set.keys.len(), 1);
    assert_eq!(body["keys"][0]["kty"], "OKP");
    assert_eq!(body["keys"][0]["crv"], "Ed25519");
    assert!(body["keys"][0].get("d").is_none(), "no private part");
    let header = decode_header(access).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), body["keys"][0]["kid"].as_str());

    let claims = verify_with(&set, access).expect("valid with the JWKS alone");
    assert_eq!(claims["sub"], user.user_id.as_str());
    // The server picks its key by that kid too: the same claims signed with
    // its own key (generated into the data dir) are accepted under the
    // published kid and refused under another.
    let pem = std::fs::read(app.data_dir().join("jwt-ed25519.pem")).unwrap();
    let own_key = EncodingKey::from_ed_pem(&pem).unwrap();
    let signed_under = |kid: &str| {
        let header = Header {
            typ: Some("at+jwt".into()),
            kid: Some(kid.to_owned()),
            ..Header::new(Algorithm::EdDSA)
        };
        jsonwebtoken::encode(&header, &claims, &own_key).unwrap()
    };
    let published = header.kid.clone().unwrap();
    let response = app.get(ME, Some(&signed_under(&published))).await;
    assert_eq!(response.status(), StatusCode::OK, "under the published kid");
    let response = app.get(ME, Some(&signed_under("another-kid"))).await;
    assert_problem(response, 401, "invalid_token").await;

    // Algorithm confusion: HS256 keyed with the public key is refused.
    let x = body["keys"][0]["x"].as_str().unwrap();
    let claims: Value = serde_json::from_value(claims).unwrap();
    let forged = jsonwebtoken::encode(
        &Header {
            typ: Some("at+jwt".into()),
            kid: header.kid.clone(),
            ..Header::new(Algorithm::HS256)
        },
        &claims,
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    assert_problem(app.get(ME, Some(&forged)).await, 401, "invalid_token").await;
}

on_both_backends_with_own_settings!(eddsa_tokens_verify_with_only_the_jwks);
on_both_backends!(hs256_publishes_no_keys);
