//! Every key is derived from `SECRET_KEY` with HKDF under its own label, so
//! the cookie key and the token key are independent and one secret is all
//! an operator manages.
//!
//! Rotation: with `SECRET_KEY_PREVIOUS` set, cookies and tokens made with
//! the previous key are still accepted; everything new is made with the
//! current one. Tokens name their key in `kid`.

use actix_web::cookie::Key;
use hkdf::Hkdf;
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use crate::configuration::SecretKey;

#[derive(Clone)]
pub struct TokenKey {
    /// Names the key in a token's header without revealing anything about it.
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

#[derive(Clone)]
pub struct Keys {
    /// Signs and encrypts the session cookie (AES-256-GCM in actix's private jar).
    pub cookie: Key,
    pub previous_cookie: Option<Key>,
    pub token: TokenKey,
    pub previous_token: Option<TokenKey>,
    /// Keys the throttle's per-identifier counters (an HMAC, not a hash
    /// anyone could recompute from a list of usernames).
    pub throttle: [u8; 32],
}

struct Derived {
    cookie: Key,
    token: TokenKey,
    throttle: [u8; 32],
}

fn derive(secret: &SecretKey) -> Derived {
    let hkdf = Hkdf::<Sha256>::new(Some(b"authd key derivation"), secret.expose());
    let expand = |label: &str, out: &mut [u8]| {
        hkdf.expand(label.as_bytes(), out)
            .expect("the output lengths are far below HKDF's limit");
    };
    let mut cookie = [0u8; 64];
    expand("authd session cookie v1", &mut cookie);
    let mut token = [0u8; 64];
    expand("authd bearer token HS256 v1", &mut token);
    let mut throttle = [0u8; 32];
    expand("authd throttle identifiers v1", &mut throttle);
    let kid = Sha256::digest(Sha256::digest(token))
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Derived {
        cookie: Key::from(&cookie),
        token: TokenKey {
            kid,
            encoding: EncodingKey::from_secret(&token),
            decoding: DecodingKey::from_secret(&token),
        },
        throttle,
    }
}

impl Keys {
    pub fn derive(current: &SecretKey, previous: Option<&SecretKey>) -> Self {
        let current = derive(current);
        let previous = previous.map(derive);
        Self {
            cookie: current.cookie,
            token: current.token,
            throttle: current.throttle,
            previous_cookie: previous.as_ref().map(|keys| keys.cookie.clone()),
            previous_token: previous.map(|keys| keys.token),
        }
    }

    /// The key that verifies a token whose header names `kid`.
    pub fn token_decoding(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        [Some(&self.token), self.previous_token.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| kid == Some(key.kid.as_str()))
            .map(|key| &key.decoding)
    }
}
