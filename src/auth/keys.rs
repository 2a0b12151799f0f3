//! Every key is derived from `SECRET_KEY` with HKDF under its own label, so
//! the cookie key and the token key are independent and one secret is all
//! an operator manages.

use actix_web::cookie::Key;
use hkdf::Hkdf;
use jsonwebtoken::{DecodingKey, EncodingKey};
use sha2::Sha256;

use crate::configuration::SecretKey;

#[derive(Clone)]
pub struct Keys {
    /// Signs and encrypts the session cookie (AES-256-GCM in actix's private jar).
    pub cookie: Key,
    pub token_encoding: EncodingKey,
    pub token_decoding: DecodingKey,
}

impl Keys {
    pub fn derive(secret: &SecretKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"authd key derivation"), secret.expose());
        let expand = |label: &str, out: &mut [u8]| {
            hkdf.expand(label.as_bytes(), out)
                .expect("the output lengths are far below HKDF's limit");
        };
        let mut cookie = [0u8; 64];
        expand("authd session cookie v1", &mut cookie);
        let mut token = [0u8; 64];
        expand("authd bearer token HS256 v1", &mut token);
        Self {
            cookie: Key::from(&cookie),
            token_encoding: EncodingKey::from_secret(&token),
            token_decoding: DecodingKey::from_secret(&token),
        }
    }
}
