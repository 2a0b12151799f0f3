//! Small cryptographic helpers every layer may use: random tokens, keys
//! derived from the one operator secret, and keyed digests. Nothing here
//! knows about HTTP, the database or accounts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
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

/// The random nonce that leads every sealed value.
const NONCE_BYTES: usize = 24;

/// `plaintext` encrypted and authenticated under `key` (XChaCha20-Poly1305,
/// a random nonce in front): for secrets the service must read back.
pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(&XNonce::from(nonce), plaintext)
        .unwrap_or_else(|_| unreachable!("encryption fails only past 256 GiB"));
    [nonce.as_slice(), &sealed].concat()
}

/// What [`seal`] sealed under `key`; `None` for another key, or for bytes
/// that were changed.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_BYTES)?;
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(&XNonce::from(nonce), ciphertext)
        .ok()
}

/// Lower-case hex; every request id is made with it, so no formatting
/// machinery per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
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
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn derived_keys_depend_on_secret_and_label() {
        let a: [u8; 32] = derive_key(b"secret one", "label a");
        assert_eq!(a, derive_key::<32>(b"secret one", "label a"));
        assert_ne!(a, derive_key::<32>(b"secret one", "label b"));
        assert_ne!(a, derive_key::<32>(b"secret two", "label a"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_unchanged() {
        let sealed = seal(&[1; 32], b"totp secret");
        assert_eq!(
            open(&[1; 32], &sealed).as_deref(),
            Some(&b"totp secret"[..])
        );
        assert_eq!(open(&[2; 32], &sealed), None);
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(open(&[1; 32], &changed), None);
        assert_ne!(
            seal(&[1; 32], b"totp secret"),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn keyed_digests_need_the_key() {
        let digest = keyed_digest(&[1; 32], b"susan");
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, keyed_digest(&[1; 32], b"susan"));
        assert_ne!(digest, keyed_digest(&[2; 32], b"susan"));
    }
}
