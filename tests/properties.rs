//! Property tests: the input parsers never panic and never accept what
//! they must refuse. Inputs are shaped like the thing parsed (its length
//! and alphabet), then mutated with control, format, look-alike and
//! non-ASCII characters; each property counts how often its interesting
//! branch ran and fails if that was too rare to prove anything.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::http::header::HeaderValue;
use otpgate::auth::opaque_token::RefreshToken;
use otpgate::auth::password::Password;
use otpgate::auth::recovery::RecoveryCode;
use otpgate::auth::tokens::{AccessClaims, TokenKeys};
use otpgate::auth::totp::TotpCode;
use otpgate::auth::username::Username;
use otpgate::http::extract::parse_authorization;
use proptest::prelude::*;
use proptest::sample::Index;
use unicode_normalization::UnicodeNormalization;

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// Characters a parser must be careful with: controls, format and
/// default-ignorable characters, look-alikes, whitespace, full-width and
/// other non-ASCII digits, and non-ASCII characters whose low byte is an
/// ASCII letter or digit (a parser that casts `char as u8` reads them so).
const TRICKY: &[char] = &[
    '\0',
    '\t',
    '\n',
    '\r',
    '\u{7}',
    '\u{1B}',
    '\u{7F}',
    '\u{85}',
    '\u{A0}',
    '\u{AD}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{2028}',
    '\u{202E}',
    '\u{2060}',
    '\u{FEFF}',
    '\u{E000}',
    '\u{3164}',
    '\u{115F}',
    '\u{1160}',
    '\u{FFA0}',
    '\u{3000}',
    '\u{301}',
    '\u{FF10}',
    '\u{FF21}',
    '\u{FF41}',
    '\u{0661}',
    '\u{0131}',
    '\u{0170}',
    '\u{0430}',
    '\u{212A}',
    '\u{1D400}',
    '\u{1F600}',
    ' ',
    '-',
    '=',
    '.',
    '/',
    '+',
    '_',
    '~',
];

/// Invisible characters no accepted username may contain.
const INVISIBLE: &[char] = &[
    '\u{AD}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{202E}', '\u{2060}', '\u{FEFF}', '\u{3164}',
    '\u{115F}', '\u{1160}', '\u{FFA0}',
];

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(TRICKY),
        1 => any::<char>(),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, char),
    Replace(Index, char),
    Delete(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), tricky_char()).prop_map(|(at, c)| Edit::Insert(at, c)),
        (any::<Index>(), tricky_char()).prop_map(|(at, c)| Edit::Replace(at, c)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

/// `shaped` with up to three edits; unchanged in about a third of cases.
fn mutated(shaped: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (shaped, prop::collection::vec(edit(), 0..=3)).prop_map(|(text, edits)| {
        let mut chars: Vec<char> = text.chars().collect();
        for edit in edits {
            match edit {
                Edit::Insert(at, c) => chars.insert(at.index(chars.len() + 1), c),
                Edit::Replace(at, c) if !chars.is_empty() => {
                    let at = at.index(chars.len());
                    chars[at] = c;
                }
                Edit::Delete(at) if !chars.is_empty() => {
                    chars.remove(at.index(chars.len()));
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Fails unless the branch counted in `counter` ran in at least a
/// twentieth of the cases.
fn assert_often(counter: &AtomicUsize, branch: &str) {
    let taken = counter.load(Ordering::Relaxed);
    assert!(
        taken >= (CASES / 20) as usize,
        "{branch}: taken in only {taken} of {CASES} cases"
    );
}

/// Names of 1 to 20 or 60 to 70 characters (the limits are 3 and 64).
fn username_like() -> impl Strategy<Value = String> {
    mutated(prop_oneof!["[a-zA-Z0-9._-]{1,20}", "[a-zA-Z0-9._-]{60,70}"])
}

#[test]
fn usernames() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    static REFUSED_INVISIBLE: AtomicUsize = AtomicUsize::new(0);
    static REFUSED_LONG: AtomicUsize = AtomicUsize::new(0);
    proptest!(config(), |(raw in username_like())| {
        let normalized: String = raw.nfkc().collect();
        let inner = normalized.trim();
        let parsed = Username::parse(&raw);
        if inner.chars().any(|c| c.is_control() || INVISIBLE.contains(&c)) {
            prop_assert!(parsed.is_err(), "{raw:?}");
            count(&REFUSED_INVISIBLE);
        }
        if inner.chars().count() > 64 {
            prop_assert!(parsed.is_err(), "{raw:?}");
            count(&REFUSED_LONG);
        }
        if let Ok(name) = parsed {
            count(&ACCEPTED);
            let shown = name.as_str();
            prop_assert!((3..=64).contains(&shown.chars().count()));
            prop_assert_eq!(shown, shown.trim());
            // Parsing is idempotent.
            let again = Username::parse(shown).unwrap();
            prop_assert_eq!(again.key(), name.key());
            prop_assert_eq!(again.as_str(), shown);
        }
    });
    assert_often(&ACCEPTED, "accepted");
    assert_often(
        &REFUSED_INVISIBLE,
        "refused for a control or invisible character",
    );
    assert_often(&REFUSED_LONG, "refused for length");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn usernames_with_a_control_character_are_refused(
        prefix in "[a-z]{2,10}", suffix in "[a-z]{2,10}",
        bad in prop::sample::select(vec!['\0', '\u{7}', '\u{1B}', '\u{202E}', '\u{200B}', '\u{2028}', '\u{FEFF}', '\u{E000}'])
    ) {
        let raw = format!("{prefix}{bad}{suffix}");
        prop_assert!(Username::parse(&raw).is_err());
    }
}

/// Passwords around both limits (8 and 128 characters after NFKC).
fn password_like() -> impl Strategy<Value = String> {
    mutated(prop_oneof!["[ -~]{4,12}", "[ -~]{124,132}"])
}

#[test]
fn passwords() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    static REFUSED_LONG: AtomicUsize = AtomicUsize::new(0);
    static REFUSED_SHORT: AtomicUsize = AtomicUsize::new(0);
    proptest!(config(), |(raw in password_like())| {
        let length = raw.nfkc().count();
        let accepted = Password::new_for(&raw, None).is_ok();
        if accepted {
            count(&ACCEPTED);
            prop_assert!((8..=128).contains(&length), "{length}");
        } else if length > 128 {
            count(&REFUSED_LONG);
        } else if length < 8 {
            count(&REFUSED_SHORT);
        }
    });
    assert_often(&ACCEPTED, "accepted");
    assert_often(&REFUSED_LONG, "refused as too long");
    assert_often(&REFUSED_SHORT, "refused as too short");
}

#[test]
fn totp_codes() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    proptest!(config(), |(raw in mutated("[0-9]{5,7}"))| {
        let valid = raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(TotpCode::parse(&raw).is_ok(), valid, "{:?}", raw);
        if valid {
            count(&ACCEPTED);
        }
    });
    assert_often(&ACCEPTED, "accepted");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn totp_codes_of_digits(raw in "[0-9]{0,8}") {
        prop_assert_eq!(TotpCode::parse(&raw).is_ok(), raw.len() == 6);
    }
}

/// Recovery codes' alphabet (Crockford's base32, lower case).
const RECOVERY_ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";

/// An independent reading of API.md: dashes and spaces ignored, case
/// ignored, `i`/`l` read as `1` and `o` as `0`, then exactly ten
/// characters of the alphabet.
fn expected_recovery_code(raw: &str) -> Option<String> {
    let mut canonical = String::new();
    for c in raw.chars().filter(|c| !matches!(c, '-' | ' ')) {
        let c = match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            other => other,
        };
        if !RECOVERY_ALPHABET.contains(c) {
            return None;
        }
        canonical.push(c);
    }
    (canonical.chars().count() == 10).then(|| format!("{}-{}", &canonical[..5], &canonical[5..]))
}

#[test]
fn recovery_codes() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    let typed = "[0-9a-zA-Z]{5}-?[0-9a-zA-Z]{5}";
    proptest!(config(), |(raw in mutated(typed))| {
        let parsed = RecoveryCode::parse(&raw).ok().map(|code| code.display());
        prop_assert_eq!(&parsed, &expected_recovery_code(&raw), "{:?}", raw);
        if let Some(shown) = parsed {
            count(&ACCEPTED);
            prop_assert_eq!(RecoveryCode::parse(&shown).unwrap().display(), shown);
        }
    });
    assert_often(&ACCEPTED, "accepted");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recovery_codes_in_any_typing(raw in "[0-9a-hjkmnp-tv-z]{10}", upper in any::<bool>(), dash in any::<bool>()) {
        let mut typed = if dash { format!("{}-{}", &raw[..5], &raw[5..]) } else { raw.clone() };
        if upper {
            typed = typed.to_uppercase();
        }
        prop_assert_eq!(RecoveryCode::parse(&typed).unwrap().display(), format!("{}-{}", &raw[..5], &raw[5..]));
    }
}

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// 43 base64url characters (32 bytes) whose last one carries no unused
/// bits, as the server issues them.
fn refresh_token_like() -> impl Strategy<Value = String> {
    mutated(("[A-Za-z0-9_-]{42}", "[AEIMQUYcgkosw048]").prop_map(|(head, last)| head + &last))
}

#[test]
fn refresh_tokens() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    proptest!(config(), |(raw in refresh_token_like())| {
        let canonical = raw.len() == 43
            && raw.chars().all(|c| BASE64URL.contains(c))
            && BASE64URL.find(raw.chars().last().unwrap()).unwrap() % 4 == 0;
        prop_assert_eq!(RefreshToken::parse(&raw).is_ok(), canonical, "{:?}", raw);
        if canonical {
            count(&ACCEPTED);
        }
    });
    assert_often(&ACCEPTED, "accepted");
}

/// `Bearer <token68>` in any case of the scheme, then mutated.
fn authorization_like() -> impl Strategy<Value = String> {
    mutated(
        ("[bB][eE][aA][rR][eE][rR]", "[A-Za-z0-9._~+/=-]{1,60}")
            .prop_map(|(scheme, token)| format!("{scheme} {token}")),
    )
}

#[test]
fn authorization_headers() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    static REFUSED_TWICE: AtomicUsize = AtomicUsize::new(0);
    proptest!(config(), |(text in authorization_like(), twice in prop::bool::weighted(0.2))| {
        let Ok(value) = HeaderValue::from_str(&text) else {
            return Ok(());
        };
        let values = if twice { vec![value.clone(), value] } else { vec![value] };
        let parsed = parse_authorization(values.iter());
        if twice {
            prop_assert!(parsed.is_err());
            count(&REFUSED_TWICE);
        } else if let Ok(token) = parsed {
            count(&ACCEPTED);
            prop_assert!(text.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")), "{:?}", text);
            prop_assert!(!token.is_empty());
            prop_assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c)), "{:?}", text);
        }
    });
    assert_often(&ACCEPTED, "accepted");
    assert_often(&REFUSED_TWICE, "two headers");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn authorization_header_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let _ = parse_authorization(std::iter::once(&value));
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
