//! Property tests: the input parsers never panic and never accept what
//! they must refuse.

use actix_web::http::header::HeaderValue;
use otpgate::auth::opaque_token::RefreshToken;
use otpgate::auth::password::Password;
use otpgate::auth::recovery::RecoveryCode;
use otpgate::auth::tokens::{AccessClaims, TokenKeys};
use otpgate::auth::totp::TotpCode;
use otpgate::auth::username::Username;
use otpgate::http::extract::parse_authorization;
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn usernames(raw in any::<String>()) {
        if let Ok(name) = Username::parse(&raw) {
            let shown = name.as_str();
            let length = shown.chars().count();
            prop_assert!((3..=64).contains(&length));
            prop_assert_eq!(shown, shown.trim());
            prop_assert!(!shown.chars().any(char::is_control));
            let invisible = shown.contains(['\u{200B}', '\u{202E}', '\u{FEFF}']);
            prop_assert!(!invisible);
            // Parsing is idempotent.
            let again = Username::parse(shown).unwrap();
            prop_assert_eq!(again.key(), name.key());
            prop_assert_eq!(again.as_str(), shown);
        }
    }

    #[test]
    fn usernames_with_a_control_character_are_refused(
        prefix in "[a-z]{2,10}", suffix in "[a-z]{2,10}",
        bad in prop::sample::select(vec!['\0', '\u{7}', '\u{1B}', '\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}', '\u{E000}'])
    ) {
        let raw = format!("{prefix}{bad}{suffix}");
        prop_assert!(Username::parse(&raw).is_err());
    }

    #[test]
    fn passwords(raw in any::<String>()) {
        if Password::new_for(&raw, None).is_ok() {
            let normalized: String = raw.nfkc().collect();
            prop_assert!((8..=128).contains(&normalized.chars().count()));
        }
    }

    #[test]
    fn totp_codes(raw in any::<String>()) {
        let valid = raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(TotpCode::parse(&raw).is_ok(), valid);
    }

    #[test]
    fn totp_codes_of_digits(raw in "[0-9]{0,8}") {
        prop_assert_eq!(TotpCode::parse(&raw).is_ok(), raw.len() == 6);
    }

    #[test]
    fn recovery_codes(raw in any::<String>()) {
        if let Ok(code) = RecoveryCode::parse(&raw) {
            let shown = code.display();
            prop_assert_eq!(shown.len(), 11);
            prop_assert_eq!(RecoveryCode::parse(&shown).unwrap(), code);
        }
    }

    #[test]
    fn recovery_codes_in_any_typing(raw in "[0-9a-hjkmnp-tv-z]{10}", upper in any::<bool>(), dash in any::<bool>()) {
        let mut typed = if dash { format!("{}-{}", &raw[..5], &raw[5..]) } else { raw.clone() };
        if upper {
            typed = typed.to_uppercase();
        }
        prop_assert_eq!(RecoveryCode::parse(&typed).unwrap().display(), format!("{}-{}", &raw[..5], &raw[5..]));
    }

    #[test]
    fn refresh_tokens(raw in any::<String>()) {
        if RefreshToken::parse(&raw).is_ok() {
            prop_assert_eq!(raw.len(), 43);
        }
    }

    #[test]
    fn authorization_headers(bytes in prop::collection::vec(any::<u8>(), 0..200), twice in any::<bool>()) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let values = if twice { vec![value.clone(), value] } else { vec![value] };
            if let Ok(token) = parse_authorization(values.iter()) {
                prop_assert!(!twice);
                let text = std::str::from_utf8(&bytes).unwrap();
                prop_assert!(text.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")));
                prop_assert!(!token.is_empty());
                prop_assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c)));
            }
        }
    }

    #[test]
    fn arbitrary_jwts_are_refused(raw in any::<String>(), parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 0..5)) {
        let keys = TokenKeys::hs256(&[9; 32], "otpgate").unwrap();
        prop_assert!(keys.verify_access(&raw, 1_800_000_000).is_err());
        prop_assert!(keys.verify_access(&parts.join("."), 1_800_000_000).is_err());
        prop_assert!(keys.verify_pending(&parts.join("."), 1_800_000_000).is_err());
    }

    #[test]
    fn tampered_jwts_are_refused(position in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_-]") {
        let keys = TokenKeys::hs256(&[9; 32], "otpgate").unwrap();
        let now = 1_800_000_000;
        let claims = AccessClaims {
            sub: "user".into(),
            sid: "session".into(),
            jti: "jti".into(),
            iss: "otpgate".into(),
            aud: "otpgate:access".into(),
            iat: now,
            nbf: now,
            exp: now + 900,
            amr: vec!["pwd".into(), "otp".into()],
            aal: "aal2".into(),
            auth_time: now,
        };
        let token = keys.sign_access(&claims).unwrap();
        prop_assert_eq!(keys.verify_access(&token, now), Ok(claims));
        let index = position.index(token.len());
        let mut tampered = token.clone().into_bytes();
        tampered[index] = replacement.as_bytes()[0];
        let tampered = String::from_utf8(tampered).unwrap();
        if tampered != token {
            // Base64url's last character can carry unused bits; a change
            // there may decode to the same bytes and stay valid.
            let decodes_same = index == token.len() - 1;
            prop_assert!(keys.verify_access(&tampered, now).is_err() || decodes_same);
        }
    }
}
