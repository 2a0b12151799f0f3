//! Time-based one-time passwords (RFC 6238) as authenticator apps make
//! them: HMAC-SHA1, six digits, 30-second steps.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const PERIOD: i64 = 30;
const DIGITS: u32 = 6;
/// RFC 4226 asks for at least 128 bits and recommends 160.
const SECRET_BYTES: usize = 20;

/// The key an authenticator app and authd share. Its `Debug` never prints
/// it: it is shown to its owner once, when enrolment starts.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps take it.
    pub fn base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::with_capacity(self.0.len().div_ceil(5) * 8);
        for chunk in self.0.chunks(5) {
            let mut buffer = [0u8; 5];
            buffer[..chunk.len()].copy_from_slice(chunk);
            let bits = buffer
                .iter()
                .fold(0u64, |acc, byte| acc << 8 | u64::from(*byte));
            let symbols = (chunk.len() * 8).div_ceil(5);
            for i in 0..symbols {
                let index = (bits >> (35 - 5 * i)) & 31;
                out.push(char::from(ALPHABET[index as usize]));
            }
        }
        out
    }

    /// The `otpauth://` URI an authenticator app reads (from a QR code).
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let encode = |value: &str| {
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        format!(
            "otpauth://totp/{issuer_label}:{account}?secret={secret}&issuer={issuer_label}\
             &algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
            issuer_label = encode(issuer),
            account = encode(account),
            secret = self.base32(),
        )
    }

    /// The code for `step`.
    pub fn code(&self, step: i64) -> String {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let word = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        format!(
            "{:0width$}",
            word % 10u32.pow(DIGITS),
            width = DIGITS as usize
        )
    }

    /// The step whose code `typed` is, among the current one and its two
    /// neighbours (clocks drift, people type slowly); every candidate is
    /// compared, in constant time. Whether the step was used already is
    /// the caller's to check.
    pub fn matching_step(&self, typed: &str, now: DateTime<Utc>) -> Option<i64> {
        let current = step_at(now);
        let mut found = None;
        for step in [current - 1, current, current + 1] {
            if bool::from(self.code(step).as_bytes().ct_eq(typed.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }
}

/// The step `at` falls in.
pub fn step_at(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(PERIOD)
}

/// A typed TOTP code, without the spaces apps show in the middle; `None`
/// when it cannot be one.
pub fn parse_code(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (eight digits there: their last six
    /// are ours).
    #[test]
    fn the_rfc_6238_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let at = DateTime::from_timestamp(time, 0).unwrap();
            assert_eq!(secret.code(step_at(at)), eight[2..], "at {time}");
        }
    }

    #[test]
    fn the_neighbouring_steps_match_and_no_others() {
        let secret = TotpSecret::generate();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let step = step_at(now);
        for delta in -1..=1 {
            assert_eq!(
                secret.matching_step(&secret.code(step + delta), now),
                Some(step + delta)
            );
        }
        for delta in [-3, -2, 2, 3] {
            let code = secret.code(step + delta);
            let neighbours = (-1..=1).map(|d| secret.code(step + d)).collect::<Vec<_>>();
            if !neighbours.contains(&code) {
                assert_eq!(secret.matching_step(&code, now), None);
            }
        }
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(
            TotpSecret::from_bytes(b"foobar".to_vec()).base32(),
            "MZXW6YTBOI"
        );
        assert_eq!(TotpSecret::generate().base32().len(), 32);
    }

    #[test]
    fn codes_are_six_digits_with_spaces_ignored() {
        assert_eq!(parse_code("123 456").as_deref(), Some("123456"));
        assert_eq!(parse_code("12345"), None);
        assert_eq!(parse_code("12345a"), None);
        assert_eq!(parse_code("１２３４５６"), None);
    }

    #[test]
    fn the_secret_never_prints() {
        let secret = TotpSecret::generate();
        assert_eq!(format!("{secret:?}"), "TotpSecret(…)");
    }
}
