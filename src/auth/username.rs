//! Usernames: NFKC-normalised, trimmed, held to RFC 8265 (PRECIS
//! UsernameCaseMapped) and compared case-insensitively.
//!
//! The profile refuses spaces, yet the contract allows them inside a name
//! ("Jean Dupont"): as RFC 8265 section 3.5 lets an application do, a name
//! is space-separated userparts, each of which must pass the profile. So
//! every code point the profile refuses (controls, format and
//! default-ignorable characters such as U+3164 HANGUL FILLER, symbols
//! outside ASCII, ...) is refused here too, and so are empty userparts
//! (two spaces in a row).

use precis_core::profile::PrecisFastInvocation;
use precis_core::{Error as PrecisError, UnexpectedError};
use precis_profiles::UsernameCaseMapped;
use unicode_normalization::UnicodeNormalization;

pub const MIN_CHARS: usize = 3;
pub const MAX_CHARS: usize = 64;

/// A username that satisfies the rules; it cannot be built otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    key: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let normalized: String = raw.nfkc().collect();
        let display = normalized.trim();
        let length = display.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&length) {
            return Err(format!(
                "must be {MIN_CHARS} to {MAX_CHARS} characters long"
            ));
        }
        for userpart in display.split(' ') {
            check_userpart(userpart)?;
        }
        Ok(Self {
            display: display.to_owned(),
            key: lookup_key(display),
        })
    }

    /// The form shown back to the user: trimmed NFKC, case as registered.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The form that decides uniqueness.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The uniqueness key of any string, valid username or not, so that a login
/// for a name that could never be registered costs the same as any other.
pub fn lookup_key(raw: &str) -> String {
    let normalized: String = raw.nfkc().collect();
    normalized.trim().to_lowercase().nfkc().collect()
}

/// One space-separated part of a name, held to the PRECIS profile (whose
/// width mapping and case folding only matter to it: the uniqueness key
/// stays [`lookup_key`], so that names already registered keep theirs).
fn check_userpart(userpart: &str) -> Result<(), String> {
    if userpart.is_empty() {
        return Err("must not contain two spaces in a row".into());
    }
    match UsernameCaseMapped::enforce(userpart) {
        Ok(_) => Ok(()),
        Err(
            PrecisError::BadCodepoint(refused)
            | PrecisError::Unexpected(UnexpectedError::ContextRuleNotApplicable(refused)),
        ) => Err(format!(
            "must contain only letters, digits, ASCII punctuation and single spaces \
             (U+{:04X} is not allowed, RFC 8265)",
            refused.cp
        )),
        // The bidi rule (RFC 5893): right-to-left and left-to-right mixed.
        Err(PrecisError::Invalid) => {
            Err("must not mix right-to-left and left-to-right text in one word".into())
        }
        Err(PrecisError::Unexpected(_)) => Err("is not a valid username (RFC 8265)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_trims_and_folds_case() {
        let fullwidth = Username::parse(" ａｌｉｃｅ ").unwrap();
        assert_eq!(fullwidth.as_str(), "alice");
        let upper = Username::parse("Alice").unwrap();
        assert_eq!(upper.as_str(), "Alice");
        assert_eq!(upper.key(), fullwidth.key());
    }

    #[test]
    fn allows_spaces_and_at_signs_inside() {
        assert_eq!(
            Username::parse("Jane Doe@example.org").unwrap().as_str(),
            "Jane Doe@example.org"
        );
    }

    #[test]
    fn refuses_control_and_format_characters() {
        for bad in [
            "ab\u{0}c",
            "ab\u{202E}c",
            "ab\u{200B}c",
            "ab\tc",
            "ab\u{FEFF}c",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_fillers_and_default_ignorables_that_display_as_nothing() {
        for bad in [
            "admin\u{3164}",
            "admin\u{115F}",
            "admin\u{1160}",
            "admin\u{FFA0}",
            "ad\u{AD}min",
            "ad\u{2060}min",
            "ad\u{200D}min",
            "admin\u{E0001}",
        ] {
            let error = Username::parse(bad).unwrap_err();
            assert!(
                error.contains("is not allowed, RFC 8265"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn refuses_what_rfc_8265_refuses_in_each_userpart() {
        // Symbols outside ASCII, and two spaces making an empty userpart.
        for bad in ["I \u{2665} you", "abc\u{2013}def", "Jean  Dupont"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Letters of any script, digits, ASCII punctuation and single spaces.
        for good in [
            "Jean-Luc Picard",
            "Zoë O'Brien",
            "\u{5C71}\u{7530}\u{592A}\u{90CE}",
            "user_1+tag@example.org",
        ] {
            assert!(Username::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn enforces_length_after_normalisation() {
        assert!(Username::parse("  ab  ").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"x".repeat(64)).is_ok());
        assert!(Username::parse(&"x".repeat(65)).is_err());
        // One character that NFKC expands to three still counts as three.
        assert_eq!(Username::parse("㎒a").unwrap().as_str(), "MHza");
    }
}
