//! JWTs: the short pending-2FA token and the access token. They differ in
//! `typ` header and audience, so neither is ever accepted as the other.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::AuthError;

pub const ACCESS_TYP: &str = "at+jwt";
pub const PENDING_TYP: &str = "pending-2fa+jwt";
pub const ACCESS_AUDIENCE: &str = "otpgate:access";
pub const PENDING_AUDIENCE: &str = "otpgate:pending-2fa";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;
/// HS256 secrets shorter than this are refused (RFC 7518 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingClaims {
    pub sub: String,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// RFC 8176 method references: `["pwd","otp"]` or `["pwd","recovery_code"]`.
    pub amr: Vec<String>,
    pub aal: String,
    /// When the session's second factor was passed (Unix seconds, OpenID
    /// Connect's `auth_time`); refreshes keep it, so a resource server can
    /// ask for a recent one. Tokens signed before it existed read as 0.
    #[serde(default)]
    pub auth_time: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Missing, malformed, badly signed, expired or of an unknown kind.
    Invalid,
    /// A valid pending-2FA token where an access token was needed.
    SecondFactorMissing,
}

/// Which configured Ed25519 key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    Private(String),
    #[error("not an Ed25519 public key: {0}")]
    PreviousPublic(String),
}

/// A key that verifies tokens, named by `kid` (None under HS256).
struct Verifier {
    kid: Option<String>,
    key: DecodingKey,
}

/// The keys and rules that sign and check every token of one issuer.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    signing_kid: Option<String>,
    verifiers: Vec<Verifier>,
    /// Public keys as RFC 7517 JWKs (empty under HS256).
    jwks: Vec<serde_json::Value>,
    issuer: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn hs256(secret: &[u8], issuer: &str) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::internal(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            signing_kid: None,
            verifiers: vec![Verifier {
                kid: None,
                key: DecodingKey::from_secret(secret),
            }],
            jwks: Vec::new(),
            issuer: issuer.to_owned(),
        })
    }

    /// Ed25519: signs with `private_pem` (PKCS#8); verifies with its public
    /// key and, during a rotation, with `previous_public_pem` (SPKI) too.
    pub fn ed25519(
        private_pem: &str,
        previous_public_pem: Option<&str>,
        issuer: &str,
    ) -> Result<Self, KeyError> {
        let private = |e: &dyn std::fmt::Display| KeyError::Private(e.to_string());
        let signing = SigningKey::from_pkcs8_pem(private_pem).map_err(|e| private(&e))?;
        let encoding = EncodingKey::from_ed_pem(private_pem.as_bytes()).map_err(|e| private(&e))?;
        let mut public_keys = vec![signing.verifying_key()];
        if let Some(pem) = previous_public_pem {
            public_keys.push(
                VerifyingKey::from_public_key_pem(pem)
                    .map_err(|e| KeyError::PreviousPublic(e.to_string()))?,
            );
        }
        let mut verifiers = Vec::new();
        let mut jwks = Vec::new();
        for public in public_keys {
            let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
            let kid = jwk_thumbprint(&x);
            verifiers.push(Verifier {
                kid: Some(kid.clone()),
                // A valid key's components always decode.
                key: DecodingKey::from_ed_components(&x).map_err(|e| private(&e))?,
            });
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"
            }));
        }
        Ok(Self {
            algorithm: Algorithm::EdDSA,
            encoding,
            signing_kid: verifiers[0].kid.clone(),
            verifiers,
            jwks,
            issuer: issuer.to_owned(),
        })
    }

    /// A new Ed25519 private key as PKCS#8 PEM.
    pub fn generate_ed25519_pem() -> Result<String, String> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| e.to_string())
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[serde_json::Value] {
        &self.jwks
    }

    pub fn sign_pending(&self, claims: &PendingClaims) -> Result<String, AuthError> {
        self.sign(PENDING_TYP, claims)
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        self.sign(ACCESS_TYP, claims)
    }

    /// Checks a pending token at time `now` (Unix seconds).
    pub fn verify_pending(&self, token: &str, now: i64) -> Result<PendingClaims, TokenRejection> {
        self.verify(token, PENDING_TYP, PENDING_AUDIENCE, now)
    }

    /// Checks an access token at time `now` (Unix seconds).
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenRejection> {
        self.verify(token, ACCESS_TYP, ACCESS_AUDIENCE, now)
            .map_err(|rejection| {
                if self.verify_pending(token, now).is_ok() {
                    TokenRejection::SecondFactorMissing
                } else {
                    rejection
                }
            })
    }

    fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, AuthError> {
        let header = Header {
            typ: Some(typ.to_owned()),
            kid: self.signing_kid.clone(),
            ..Header::new(self.algorithm)
        };
        encode(&header, claims, &self.encoding).map_err(AuthError::internal)
    }

    fn verify<T: DeserializeOwned + TimeClaims>(
        &self,
        token: &str,
        typ: &str,
        audience: &str,
        now: i64,
    ) -> Result<T, TokenRejection> {
        let header = decode_header(token).map_err(|_| TokenRejection::Invalid)?;
        // Only our own algorithm, kind and keys; never a key the token
        // brings or points to.
        let verifier = self
            .verifiers
            .iter()
            .find(|verifier| verifier.kid == header.kid)
            .ok_or(TokenRejection::Invalid)?;
        let acceptable = header.alg == self.algorithm
            && header.typ.as_deref() == Some(typ)
            && header.jku.is_none()
            && header.jwk.is_none()
            && header.x5u.is_none()
            && header.x5c.is_none()
            && header.crit.is_none();
        if !acceptable {
            return Err(TokenRejection::Invalid);
        }
        let mut validation = Validation::new(self.algorithm);
        // Times are checked below against the domain's clock, not the
        // library's, so that they agree with everything else the flow does.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let claims = decode::<T>(token, &verifier.key, &validation)
            .map_err(|_| TokenRejection::Invalid)?
            .claims;
        if !claims.current_at(now) {
            return Err(TokenRejection::Invalid);
        }
        Ok(claims)
    }
}

impl AccessClaims {
    /// Whether a token with these claims is within its lifetime at `now`
    /// (Unix seconds), with the leeway every check here allows.
    pub fn current_at(&self, now: i64) -> bool {
        TimeClaims::current_at(self, now)
    }
}

/// `(iat, nbf, exp)` of a token's claims.
trait TimeClaims {
    fn times(&self) -> (i64, i64, i64);

    fn current_at(&self, now: i64) -> bool {
        let leeway = LEEWAY_SECS as i64;
        let (iat, nbf, exp) = self.times();
        exp + leeway > now && nbf - leeway <= now && iat - leeway <= now
    }
}

impl TimeClaims for PendingClaims {
    fn times(&self) -> (i64, i64, i64) {
        (self.iat, self.nbf, self.exp)
    }
}

impl TimeClaims for AccessClaims {
    fn times(&self) -> (i64, i64, i64) {
        (self.iat, self.nbf, self.exp)
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK: SHA-256 over its required
/// members in lexicographic order, base64url.
fn jwk_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePublicKey;

    use super::*;

    fn pending_claims(now: i64) -> PendingClaims {
        PendingClaims {
            sub: "user".into(),
            jti: "jti".into(),
            iss: "otpgate".into(),
            aud: PENDING_AUDIENCE.into(),
            iat: now,
            nbf: now,
            exp: now + 300,
        }
    }

    #[test]
    fn a_retiring_ed25519_key_still_verifies_until_removed() {
        let now = 1_800_000_000;
        let old_pem = TokenKeys::generate_ed25519_pem().unwrap();
        let old = TokenKeys::ed25519(&old_pem, None, "otpgate").unwrap();
        let token = old.sign_pending(&pending_claims(now)).unwrap();
        let old_public = SigningKey::from_pkcs8_pem(&old_pem)
            .unwrap()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let new_pem = TokenKeys::generate_ed25519_pem().unwrap();
        let rotating = TokenKeys::ed25519(&new_pem, Some(&old_public), "otpgate").unwrap();
        assert_eq!(rotating.jwks().len(), 2);
        assert_eq!(
            rotating.verify_pending(&token, now),
            Ok(pending_claims(now))
        );
        let rotated = TokenKeys::ed25519(&new_pem, None, "otpgate").unwrap();
        assert_eq!(
            rotated.verify_pending(&token, now),
            Err(TokenRejection::Invalid)
        );
        let fresh = rotated.sign_pending(&pending_claims(now)).unwrap();
        assert!(rotating.verify_pending(&fresh, now).is_ok());
    }

    #[test]
    fn times_are_checked_with_five_seconds_of_leeway() {
        let keys = TokenKeys::hs256(&[7; 32], "otpgate").unwrap();
        let now = 1_800_000_000;
        let token = keys.sign_pending(&pending_claims(now)).unwrap();
        assert!(keys.verify_pending(&token, now + 300 + 4).is_ok());
        assert!(keys.verify_pending(&token, now + 300 + 5).is_err());
        assert!(keys.verify_pending(&token, now - 5).is_ok());
        assert!(keys.verify_pending(&token, now - 6).is_err());
    }
}
