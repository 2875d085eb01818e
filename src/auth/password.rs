//! Passwords: the rules a new one must meet, and bcrypt on a bounded pool.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unicode_normalization::UnicodeNormalization;

use super::error::AuthError;
use super::username::Username;

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// Lower-cased passwords of 8 or more characters from the frequency list
/// that Dropbox's zxcvbn ships (the 11,611 most common that our length rule
/// lets through).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

/// A password in NFKC form. Debug never prints it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// A password offered at login: normalised, never judged, so that rule
    /// changes do not lock anyone out.
    pub fn offered(raw: &str) -> Self {
        Self(raw.nfkc().collect())
    }

    /// A new password: 8 to 128 characters, not the username, not common.
    /// `username` is None when the username itself was invalid.
    pub fn new_for(raw: &str, username: Option<&Username>) -> Result<Self, String> {
        let password = Self::offered(raw);
        let length = password.0.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&length) {
            return Err(format!(
                "must be {MIN_CHARS} to {MAX_CHARS} characters long"
            ));
        }
        let folded = password.0.to_lowercase();
        if username.is_some_and(|name| name.as_str().to_lowercase() == folded) {
            return Err("must not be the same as the username".into());
        }
        if COMMON_PASSWORDS.contains(folded.as_str()) {
            return Err("is too common; choose a less guessable password".into());
        }
        Ok(password)
    }

    /// bcrypt reads at most 72 bytes; a keyed SHA-256 first (base64, 44
    /// bytes, no NUL) makes every character of a long password count.
    fn prehashed(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"otpgate/password/v1")
            .expect("HMAC accepts keys of any length");
        mac.update(self.0.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// bcrypt on at most `threads` blocking threads at once: a burst of logins
/// queues here (asynchronously) instead of taking every core from the rest.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// Turns: one more than the threads, so that while a turn holder does
    /// its database work before hashing, the threads stay busy.
    turns: Arc<Semaphore>,
    /// The hashing threads themselves.
    threads: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown name
    /// costs exactly what a wrong password does.
    dummy_hash: Arc<str>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(cost: u32, threads: usize) -> Result<Self, AuthError> {
        if !(4..=31).contains(&cost) {
            return Err(AuthError::internal(format!(
                "bcrypt cost {cost} out of range"
            )));
        }
        let dummy_hash = unmatchable_hash(cost);
        Ok(Self {
            cost,
            turns: Arc::new(Semaphore::new(threads.max(1) + 1)),
            threads: Arc::new(Semaphore::new(threads.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, AuthError> {
        let cost = self.cost;
        self.turn()
            .await?
            .run(move || bcrypt::hash(password.prehashed(), cost))
            .await?
            .map_err(AuthError::internal)
    }

    /// Checks `password` against `stored`, or against the dummy hash when
    /// there is no such user (always false then).
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        self.turn().await?.verify(password, stored).await
    }

    /// Waits for a turn and keeps it: what the caller does before
    /// [`HashTurn::verify`] happens at most `threads + 1` times at once.
    pub async fn turn(&self) -> Result<HashTurn, AuthError> {
        let _waiting = crate::metrics::bcrypt_wait();
        let turn = Arc::clone(&self.turns)
            .acquire_owned()
            .await
            .map_err(AuthError::internal)?;
        Ok(HashTurn {
            turn,
            threads: Arc::clone(&self.threads),
            dummy_hash: Arc::clone(&self.dummy_hash),
        })
    }
}

/// A well-formed bcrypt hash of `cost` that no password matches (random
/// salt and digest): verifying against it costs what a real hash does,
/// and making it costs nothing (hashing one at cost 12 delayed start-up by
/// a quarter of a second).
fn unmatchable_hash(cost: u32) -> String {
    let bcrypt64 = base64::engine::GeneralPurpose::new(
        &base64::alphabet::BCRYPT,
        base64::engine::general_purpose::NO_PAD,
    );
    let (mut salt, mut digest) = ([0u8; 16], [0u8; 23]);
    rand::fill(&mut salt);
    rand::fill(&mut digest);
    format!(
        "$2b${cost:02}${}{}",
        bcrypt64.encode(salt),
        bcrypt64.encode(digest)
    )
}

/// A reserved hashing thread.
pub struct HashTurn {
    turn: OwnedSemaphorePermit,
    threads: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl HashTurn {
    /// As [`PasswordHasher::verify`], on this turn's thread.
    pub async fn verify(
        self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        let user_exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || bcrypt::verify(password.prehashed(), &hash))
            .await?
            .map_err(AuthError::internal)?;
        Ok(matches && user_exists)
    }

    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let thread = self
            .threads
            .acquire_owned()
            .await
            .map_err(AuthError::internal)?;
        let turn = self.turn;
        tokio::task::spawn_blocking(move || {
            // Held until the hash is done, even if the request went away.
            let _held = (turn, thread, crate::metrics::bcrypt_running());
            work()
        })
        .await
        .map_err(AuthError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_length_in_characters_after_nfkc() {
        assert!(Password::new_for("short12", None).is_err());
        assert!(Password::new_for("ééééééé", None).is_err());
        assert!(Password::new_for("éééééééé", None).is_ok());
        assert!(Password::new_for(&"x9".repeat(64), None).is_ok());
        assert!(Password::new_for(&"x9".repeat(65), None).is_err());
        // U+FB01 (ﬁ) is one character that NFKC turns into two.
        assert!(Password::new_for("\u{FB01}\u{FB01}\u{FB01}\u{FB01}", None).is_ok());
    }

    #[test]
    fn refuses_the_username_and_common_passwords_case_insensitively() {
        let name = Username::parse("CorrectHorse").unwrap();
        assert!(Password::new_for("correcthorse", Some(&name)).is_err());
        assert!(Password::new_for("PASSWORD123", None).is_err());
        assert!(Password::new_for("Trustno1!", None).is_ok());
        assert!(Password::new_for("iloveyou", None).is_err());
    }

    #[test]
    fn the_unknown_user_hash_is_well_formed_unmatchable_and_of_the_cost() {
        let hash = unmatchable_hash(5);
        assert!(hash.starts_with("$2b$05$"), "{hash}");
        assert_ne!(hash, unmatchable_hash(5), "a random salt each time");
        let parts: bcrypt::HashParts = hash.parse().expect("bcrypt parses it");
        assert_eq!(parts.get_cost(), 5);
        let offered = Password::offered("otpgate dummy password for unknown users");
        assert!(matches!(
            bcrypt::verify(offered.prehashed(), &hash),
            Ok(false)
        ));
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let prefix = "a".repeat(72);
        let one = Password::offered(&format!("{prefix}one"));
        let two = Password::offered(&format!("{prefix}two"));
        let hash = bcrypt::hash(one.prehashed(), 4).unwrap();
        assert!(bcrypt::verify(one.prehashed(), &hash).unwrap());
        assert!(!bcrypt::verify(two.prehashed(), &hash).unwrap());
    }
}
