//! Refresh tokens: 256 random bits, opaque, stored only as SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::recovery::hex;

const BYTES: usize = 32;

pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; BYTES];
        rand::fill(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Any presented string of the right shape; whether it exists is the
    /// database's answer.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = URL_SAFE_NO_PAD
            .decode(raw)
            .is_ok_and(|bytes| bytes.len() == BYTES);
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be a refresh token issued by this server".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hash is enough (no key): 256 random bits cannot be guessed.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}
