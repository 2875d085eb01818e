//! What a user calls each of their authenticators, and how many they may
//! have.

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::Nickname;

/// The name of the authenticator enrolled through `/2fa/setup`.
pub const DEFAULT_NAME: &str = "default";
/// Confirmed authenticators a user may have at once.
pub const MAX_PER_USER: i64 = 10;
pub const NAME_MAX_CHARS: usize = 64;

/// A valid authenticator name: 1 to 64 printable characters, held to the
/// PRECIS Nickname profile (RFC 8266: spaces trimmed and collapsed, NFKC,
/// no control or unassigned code points), case as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorName(String);

impl AuthenticatorName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let refused = || format!("must be 1 to {NAME_MAX_CHARS} printable characters");
        let name = Nickname::enforce(raw).map_err(|_| refused())?;
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(refused());
        }
        Ok(Self(name.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_case_and_lose_outer_spaces() {
        assert_eq!(
            AuthenticatorName::parse("  Work  Phone ").unwrap().as_str(),
            "Work Phone"
        );
        assert_eq!(AuthenticatorName::parse("a").unwrap().as_str(), "a");
        assert!(AuthenticatorName::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn empty_long_and_unprintable_names_are_refused() {
        for raw in ["", "   ", "tab\there", "nul\0", "bell\u{7}"] {
            assert!(AuthenticatorName::parse(raw).is_err(), "{raw:?}");
        }
        assert!(AuthenticatorName::parse(&"x".repeat(65)).is_err());
    }
}
