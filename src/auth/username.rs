//! Usernames: NFKC-normalised, trimmed, compared case-insensitively.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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
        if display.chars().any(is_invisible_or_control) {
            return Err("must not contain control, formatting or invisible characters".into());
        }
        let length = display.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&length) {
            return Err(format!(
                "must be {MIN_CHARS} to {MAX_CHARS} characters long"
            ));
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

fn is_invisible_or_control(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
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
    fn enforces_length_after_normalisation() {
        assert!(Username::parse("  ab  ").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"x".repeat(64)).is_ok());
        assert!(Username::parse(&"x".repeat(65)).is_err());
        // One character that NFKC expands to three still counts as three.
        assert_eq!(Username::parse("㎒a").unwrap().as_str(), "MHza");
    }
}
