//! JWTs: the short pending-2FA token and the access token. They differ in
//! `typ` header and audience, so neither is ever accepted as the other.

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Missing, malformed, badly signed, expired or of an unknown kind.
    Invalid,
    /// A valid pending-2FA token where an access token was needed.
    SecondFactorMissing,
}

/// The keys and rules that sign and check every token of one issuer.
pub struct TokenKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
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
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.to_owned(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
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
        // Only our own algorithm and kind; never a key named by the token.
        let acceptable = header.alg == self.algorithm
            && header.typ.as_deref() == Some(typ)
            && header.kid.is_none()
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
        let claims = decode::<T>(token, &self.decoding, &validation)
            .map_err(|_| TokenRejection::Invalid)?
            .claims;
        let leeway = LEEWAY_SECS as i64;
        let (iat, nbf, exp) = claims.times();
        if exp + leeway <= now || nbf - leeway > now || iat - leeway > now {
            return Err(TokenRejection::Invalid);
        }
        Ok(claims)
    }
}

/// `(iat, nbf, exp)` of a token's claims.
trait TimeClaims {
    fn times(&self) -> (i64, i64, i64);
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
