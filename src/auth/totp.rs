//! RFC 6238 TOTP as Google Authenticator speaks it: SHA1, 6 digits, 30 s.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use subtle::ConstantTimeEq;
use totp_lite::{Sha1, totp_custom};

pub const DIGITS: u32 = 6;
pub const PERIOD_SECS: u64 = 30;
pub const ALGORITHM: &str = "SHA1";
/// Steps accepted either side of the current one, for clock drift.
pub const SKEW_STEPS: i64 = 1;
/// 160 bits, the size RFC 4226 recommends and authenticator apps expect.
pub const SECRET_BYTES: usize = 20;

const BASE32: base32::Alphabet = base32::Alphabet::Rfc4648 { padding: false };

/// RFC 3986 unreserved characters stay; everything else is escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl TotpSecret {
    /// 160 bits from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::fill(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        base32::encode(BASE32, &self.0)
    }

    /// The code for time step `step`.
    pub fn code_at_step(&self, step: u64) -> String {
        totp_custom::<Sha1>(PERIOD_SECS, DIGITS, &self.0, step * PERIOD_SECS)
    }

    /// The newest step within `SKEW_STEPS` of `unix_secs` whose code is
    /// `code`, ignoring steps at or before `last_accepted` (replays). The
    /// caller must still record the step atomically.
    pub fn matching_step(
        &self,
        code: &TotpCode,
        unix_secs: i64,
        last_accepted: Option<i64>,
    ) -> Option<i64> {
        let current = unix_secs.div_euclid(PERIOD_SECS as i64);
        let mut found = None;
        // Every candidate is computed and compared, matched or not, so the
        // time taken does not depend on which one matched.
        for step in (current - SKEW_STEPS..=current + SKEW_STEPS).rev() {
            if step < 0 {
                continue;
            }
            let expected = self.code_at_step(step as u64);
            let equal: bool = expected.as_bytes().ct_eq(code.0.as_bytes()).into();
            let fresh = last_accepted.is_none_or(|last| step > last);
            if equal && fresh && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// Exactly six ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode(***)")
    }
}

impl TotpCode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == DIGITS as usize && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("must be exactly {DIGITS} digits (0-9)"))
        }
    }
}

/// The Google Authenticator key URI:
/// `otpauth://totp/<Issuer>:<account>?secret=…&issuer=<Issuer>&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
    let account = utf8_percent_encode(account, URI_COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm={ALGORITHM}&digits={DIGITS}&period={PERIOD_SECS}",
        secret.to_base32()
    )
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha1::Sha1 as ReferenceSha1;

    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA1 column (8 digits).
    #[test]
    fn matches_rfc6238_appendix_b_sha1_vectors() {
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, expected) in vectors {
            assert_eq!(
                totp_custom::<Sha1>(30, 8, RFC_SECRET, time),
                expected,
                "T={time}"
            );
        }
    }

    /// RFC 4226 dynamic truncation written out independently of totp-lite.
    fn reference_code(secret: &[u8], step: u64) -> String {
        let mut mac = Hmac::<ReferenceSha1>::new_from_slice(secret).unwrap();
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = (digest[19] & 0x0f) as usize;
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!("{:06}", binary % 1_000_000)
    }

    #[test]
    fn six_digit_codes_match_an_independent_implementation() {
        let secret = TotpSecret::from_bytes(RFC_SECRET).unwrap();
        for time in [
            59u64,
            1_111_111_109,
            1_234_567_890,
            2_000_000_000,
            20_000_000_000,
        ] {
            let step = time / 30;
            assert_eq!(secret.code_at_step(step), reference_code(RFC_SECRET, step));
        }
        let random = TotpSecret::generate();
        for step in 0..200 {
            assert_eq!(
                random.code_at_step(step),
                reference_code(random.as_bytes(), step)
            );
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_refuses_two() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015_i64;
        let current = now / 30;
        for offset in -1..=1 {
            let code = TotpCode::parse(&secret.code_at_step((current + offset) as u64)).unwrap();
            assert_eq!(
                secret.matching_step(&code, now, None),
                Some(current + offset)
            );
        }
        for offset in [-2, 2] {
            let code = TotpCode::parse(&secret.code_at_step((current + offset) as u64)).unwrap();
            // A collision with a neighbouring step's code is possible but would
            // have to be the same 6 digits; the assertion names the step.
            let matched = secret.matching_step(&code, now, None);
            assert!(matched.is_none() || matched != Some(current + offset));
        }
    }

    #[test]
    fn refuses_steps_already_accepted() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015_i64;
        let current = now / 30;
        let code = TotpCode::parse(&secret.code_at_step(current as u64)).unwrap();
        assert_eq!(secret.matching_step(&code, now, Some(current)), None);
        assert_eq!(
            secret.matching_step(&code, now, Some(current - 1)),
            Some(current)
        );
    }

    #[test]
    fn secret_is_160_bits_of_unpadded_base32() {
        let secret = TotpSecret::generate();
        let encoded = secret.to_base32();
        assert_eq!(encoded.len(), 32);
        assert!(!encoded.contains('='));
        assert_ne!(secret, TotpSecret::generate());
    }

    #[test]
    fn codes_are_exactly_six_ascii_digits() {
        for good in ["000000", "123456"] {
            assert!(TotpCode::parse(good).is_ok());
        }
        for bad in [
            "12345",
            "1234567",
            "12345a",
            " 123456",
            "１２３４５６",
            "-12345",
            "",
        ] {
            assert!(TotpCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_uri_percent_encodes_label_and_issuer() {
        let secret = TotpSecret::from_bytes(RFC_SECRET).unwrap();
        assert_eq!(
            otpauth_uri("Acme Co", "jane doe@example.org", &secret),
            "otpauth://totp/Acme%20Co:jane%20doe%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }
}
