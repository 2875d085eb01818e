//! Recovery codes: 10 per user, 50 bits each, typed as `xxxxx-xxxxx`.

use super::keyed_hash::{derive_key, hmac_hex};

pub const COUNT: usize = 10;
const LENGTH: usize = 10;
/// Crockford's base32, lower-case: no i, l, o or u to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A well-formed recovery code in canonical form (10 characters, no dash).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(***)")
    }
}

impl RecoveryCode {
    /// 10 characters of 5 bits each from the OS CSPRNG: 50 bits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; LENGTH];
        rand::fill(&mut bytes);
        // 256 is a multiple of 32, so masking keeps the choice uniform.
        Self(
            bytes
                .iter()
                .map(|b| ALPHABET[(b & 0x1f) as usize] as char)
                .collect(),
        )
    }

    /// Accepts any case, with or without the dash or spaces, and reads the
    /// look-alikes i/l as 1 and o as 0.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut canonical = String::with_capacity(LENGTH);
        for c in raw.chars().filter(|c| *c != '-' && *c != ' ') {
            let c = match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || canonical.len() == LENGTH {
                return Err("must be a recovery code like abcde-12345".into());
            }
            canonical.push(c);
        }
        if canonical.len() != LENGTH {
            return Err("must be a recovery code like abcde-12345".into());
        }
        Ok(Self(canonical))
    }

    /// The form shown to the user: `xxxxx-xxxxx`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..5], &self.0[5..])
    }
}

/// HMAC-SHA256 under a server key: fast (the codes carry 50 bits, no need
/// for bcrypt) yet useless to whoever has only a copy of the database.
pub struct RecoveryHasher {
    /// Derived from the current secrets-at-rest key, then the retiring ones.
    keys: Vec<[u8; 32]>,
}

impl RecoveryHasher {
    /// Derives hashing keys from the secrets-at-rest keys, current first.
    pub fn derived_from(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let derive = |master: &[u8; 32]| derive_key(master, "otpgate/recovery-codes/v1");
        Self {
            keys: std::iter::once(current)
                .chain(previous)
                .map(derive)
                .collect(),
        }
    }

    fn hash_with(key: &[u8; 32], code: &RecoveryCode) -> String {
        hmac_hex(key, code.0.as_bytes())
    }

    /// The hash to keep, under the current key.
    pub fn hash(&self, code: &RecoveryCode) -> String {
        Self::hash_with(&self.keys[0], code)
    }

    /// Every hash the code may be stored under: codes issued before a key
    /// rotation stay valid while the old key is kept as a previous key.
    pub fn candidates(&self, code: &RecoveryCode) -> Vec<String> {
        self.keys
            .iter()
            .map(|key| Self::hash_with(key, code))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_in_every_typing() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 11);
        assert_eq!(RecoveryCode::parse(&shown).unwrap(), code);
        assert_eq!(RecoveryCode::parse(&shown.to_uppercase()).unwrap(), code);
        assert_eq!(RecoveryCode::parse(&shown.replace('-', "")).unwrap(), code);
        assert_ne!(RecoveryCode::generate(), code);
    }

    #[test]
    fn look_alikes_are_read_as_digits() {
        assert_eq!(
            RecoveryCode::parse("OIL23-45678").unwrap(),
            RecoveryCode::parse("01123-45678").unwrap()
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "abcde",
            "abcde-12345-6",
            "abcd!-12345",
            "abcdé-12345",
            "uuuuu-uuuuu",
        ] {
            assert!(RecoveryCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_depend_on_the_key() {
        let code = RecoveryCode::parse("abcde-12345").unwrap();
        let one = RecoveryHasher::derived_from(&[1; 32], &[]);
        let two = RecoveryHasher::derived_from(&[2; 32], &[[1; 32]]);
        assert_eq!(one.hash(&code), one.hash(&code));
        assert_ne!(one.hash(&code), two.hash(&code));
        assert!(!one.hash(&code).contains("abcde"));
        assert!(two.candidates(&code).contains(&one.hash(&code)));
    }
}
