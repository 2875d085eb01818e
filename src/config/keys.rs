//! Signing and encryption keys, given or (when unset) generated into the
//! data dir by [`crate::keys`].

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::ConfigError;
use super::source::{Source, list};
use crate::auth::secret_box::KEY_BYTES;
use crate::auth::tokens::MIN_SECRET_BYTES;

pub const JWT_PRIVATE_KEY_FILE: &str = "OTPGATE_JWT_PRIVATE_KEY_FILE";
pub const JWT_PREVIOUS_PUBLIC_KEY_FILE: &str = "OTPGATE_JWT_PREVIOUS_PUBLIC_KEY_FILE";

/// How tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (default).
    Hs256,
    /// Ed25519: verifiers need only the public keys at /.well-known/jwks.json.
    EdDsa,
}

pub(super) struct KeySettings {
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_secret: Option<Vec<u8>>,
    pub jwt_private_key_file: Option<PathBuf>,
    pub jwt_previous_public_key_file: Option<PathBuf>,
    pub encryption_key: Option<[u8; KEY_BYTES]>,
    pub previous_encryption_keys: Vec<[u8; KEY_BYTES]>,
}

/// What an unset key setting means.
const GENERATED: &str = "generated";
const NONE: &str = "none";

pub(super) fn read(source: Source) -> Result<KeySettings, ConfigError> {
    let path = |raw: &str| Ok(PathBuf::from(raw));
    Ok(KeySettings {
        jwt_secret: source.optional("OTPGATE_JWT_SECRET", GENERATED, |secret| {
            if secret.len() < MIN_SECRET_BYTES {
                Err(format!("must be at least {MIN_SECRET_BYTES} bytes"))
            } else {
                Ok(secret.as_bytes().to_vec())
            }
        })?,
        jwt_algorithm: source.value("OTPGATE_JWT_ALG", "HS256", |raw| match raw {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "EdDSA" => Ok(JwtAlgorithm::EdDsa),
            _ => Err("must be HS256 or EdDSA".into()),
        })?,
        jwt_private_key_file: source.optional(JWT_PRIVATE_KEY_FILE, GENERATED, path)?,
        jwt_previous_public_key_file: source.optional(JWT_PREVIOUS_PUBLIC_KEY_FILE, NONE, path)?,
        encryption_key: source.optional("OTPGATE_ENCRYPTION_KEY", GENERATED, decode_key)?,
        previous_encryption_keys: source
            .optional("OTPGATE_PREVIOUS_ENCRYPTION_KEYS", NONE, |raw| {
                list(raw, decode_key)
            })?
            .unwrap_or_default(),
    })
}

/// A 32-byte key, base64-encoded.
pub(crate) fn decode_key(raw: &str) -> Result<[u8; KEY_BYTES], String> {
    STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("must be {KEY_BYTES} bytes, base64-encoded"))
}
