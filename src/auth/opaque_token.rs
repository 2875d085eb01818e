//! Opaque bearer secrets (refresh tokens, device tokens): 256 random bits,
//! stored only as SHA-256. The kind is part of the type, so one cannot be
//! passed where the other is meant.

use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::keyed_hash::hex;

const BYTES: usize = 32;

/// What an opaque token is for.
pub trait TokenKind {
    /// As in "must be a {NAME} issued by this server".
    const NAME: &'static str;
}

/// Swapped for a new access + refresh pair, once.
pub enum Refresh {}
/// Remembers a client that passed the second factor (known devices).
pub enum Device {}

impl TokenKind for Refresh {
    const NAME: &'static str = "refresh token";
}

impl TokenKind for Device {
    const NAME: &'static str = "device token";
}

pub type RefreshToken = OpaqueToken<Refresh>;
pub type DeviceToken = OpaqueToken<Device>;

pub struct OpaqueToken<K: TokenKind>(String, PhantomData<K>);

impl<K: TokenKind> std::fmt::Debug for OpaqueToken<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(***)", K::NAME)
    }
}

impl<K: TokenKind> OpaqueToken<K> {
    pub fn generate() -> Self {
        let mut bytes = [0u8; BYTES];
        rand::fill(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes), PhantomData)
    }

    /// Any presented string of the right shape; whether it exists is the
    /// database's answer.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = URL_SAFE_NO_PAD
            .decode(raw)
            .is_ok_and(|bytes| bytes.len() == BYTES);
        if valid {
            Ok(Self(raw.to_owned(), PhantomData))
        } else {
            Err(format!("must be a {} issued by this server", K::NAME))
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
