//! Small cryptographic helpers every layer may use: random tokens, keys
//! derived from the one operator secret, and keyed digests. Nothing here
//! knows about HTTP, the database or accounts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, base64url: session ids, CSRF tokens, dummy passwords.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A key of `N` bytes derived from `secret` under `label` (HKDF-SHA256), so
/// that every purpose gets an independent key from one secret. Labels name
/// their purpose and a version: changing one retires every key made with it.
pub fn derive_key<const N: usize>(secret: &[u8], label: &str) -> [u8; N] {
    const { assert!(N <= 255 * 32, "HKDF-SHA256 yields at most 8160 bytes") };
    let mut key = [0u8; N];
    Hkdf::<Sha256>::new(Some(b"authd key derivation"), secret)
        .expand(label.as_bytes(), &mut key)
        .unwrap_or_else(|_| unreachable!("N is checked at compile time"));
    key
}

/// HMAC-SHA256 of `value` under `key`, in hex: a stable name for a value
/// that nobody without the key can recompute from a list of guesses.
pub fn keyed_digest(key: &[u8; 32], value: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(value);
    hex(&mac.finalize().into_bytes())
}

/// SHA-256 of `value`: how a random token is stored, so that reading the
/// table gives nobody a usable token. (256 random bits need no slow hash.)
pub fn sha256(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn derived_keys_depend_on_secret_and_label() {
        let a: [u8; 32] = derive_key(b"secret one", "label a");
        assert_eq!(a, derive_key::<32>(b"secret one", "label a"));
        assert_ne!(a, derive_key::<32>(b"secret one", "label b"));
        assert_ne!(a, derive_key::<32>(b"secret two", "label a"));
    }

    #[test]
    fn keyed_digests_need_the_key() {
        let digest = keyed_digest(&[1; 32], b"susan");
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, keyed_digest(&[1; 32], b"susan"));
        assert_ne!(digest, keyed_digest(&[2; 32], b"susan"));
    }
}
