//! AES-256-GCM for secrets at rest. Each value gets a fresh random nonce and
//! is bound to its owner (associated data), so a ciphertext copied into
//! another row does not decrypt.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use sha2::{Digest, Sha256};

use super::error::AuthError;

const NONCE_BYTES: usize = 12;
pub const KEY_BYTES: usize = 32;

struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

impl SealingKey {
    fn new(key: [u8; KEY_BYTES]) -> Self {
        // A public fingerprint of the key, stored beside each ciphertext so
        // that a key rotation knows which rows still use an old key.
        let digest = Sha256::new_with_prefix(b"otpgate key id\0")
            .chain_update(key)
            .finalize();
        Self {
            id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
        }
    }
}

/// Seals with the current key; opens with it or any retiring key, so that
/// secrets can be re-encrypted while the service runs.
pub struct SecretBox {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SecretBox")
            .field("key_id", &self.current.id)
            .field("previous", &previous)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    pub fn new(current: [u8; KEY_BYTES], previous: &[[u8; KEY_BYTES]]) -> Self {
        Self {
            current: SealingKey::new(current),
            previous: previous.iter().copied().map(SealingKey::new).collect(),
        }
    }

    /// The id of the key new secrets are sealed with.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// nonce ‖ ciphertext ‖ tag
    pub fn seal(&self, plaintext: &[u8], owner: &str) -> Result<Vec<u8>, AuthError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| AuthError::internal("encryption failed"))?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, key_id: &str, sealed: &[u8], owner: &str) -> Result<Vec<u8>, AuthError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == key_id)
            .ok_or_else(|| {
                AuthError::internal(format!("secret sealed under unknown key {key_id}"))
            })?;
        if sealed.len() < NONCE_BYTES {
            return Err(AuthError::internal("sealed secret too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at NONCE_BYTES");
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| AuthError::internal("sealed secret failed authentication"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_the_owner() {
        let secret_box = SecretBox::new([7; KEY_BYTES], &[]);
        let sealed = secret_box.seal(b"totp seed", "user-1").unwrap();
        assert!(!sealed.windows(9).any(|window| window == b"totp seed"));
        assert_eq!(
            secret_box
                .open(secret_box.key_id(), &sealed, "user-1")
                .unwrap(),
            b"totp seed"
        );
        assert!(
            secret_box
                .open(secret_box.key_id(), &sealed, "user-2")
                .is_err()
        );
        assert_ne!(sealed, secret_box.seal(b"totp seed", "user-1").unwrap());
    }

    /// AES-GCM itself refuses: the key id matches, the bytes do not.
    #[test]
    fn tampering_anywhere_fails_authentication() {
        let secret_box = SecretBox::new([7; KEY_BYTES], &[]);
        let sealed = secret_box.seal(b"totp seed", "user-1").unwrap();
        for at in [0, NONCE_BYTES, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[at] ^= 1;
            assert!(
                secret_box
                    .open(secret_box.key_id(), &tampered, "user-1")
                    .is_err(),
                "byte {at} flipped"
            );
        }
    }

    /// A wrong key under the right key id (a corrupted key file, say) is
    /// refused by AES-GCM, not by the key lookup.
    #[test]
    fn a_wrong_key_fails_authentication() {
        let right = SecretBox::new([7; KEY_BYTES], &[]);
        let sealed = right.seal(b"totp seed", "user-1").unwrap();
        let mut wrong = SecretBox::new([8; KEY_BYTES], &[]);
        wrong.current.id = right.key_id().to_owned();
        assert!(wrong.open(right.key_id(), &sealed, "user-1").is_err());
    }

    #[test]
    fn a_retiring_key_still_opens() {
        let old = SecretBox::new([7; KEY_BYTES], &[]);
        let sealed = old.seal(b"seed", "u").unwrap();
        let rotating = SecretBox::new([8; KEY_BYTES], &[[7; KEY_BYTES]]);
        assert_eq!(rotating.open(old.key_id(), &sealed, "u").unwrap(), b"seed");
        assert_ne!(rotating.key_id(), old.key_id());
    }
}
