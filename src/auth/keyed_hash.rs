//! HMAC-SHA256 under keys derived from the secrets-at-rest key: digests of
//! guessable values (recovery codes, usernames, addresses) that are useless
//! to whoever holds only a copy of the database.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A key for one purpose, derived from `master` and a label naming it.
pub fn derive_key(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(master).expect("any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Hex HMAC of `data`.
pub fn hmac_hex(key: &[u8; 32], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
