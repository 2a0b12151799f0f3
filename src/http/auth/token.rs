//! Bearer tokens: HS256 JWTs that name a session. The token only carries the
//! session id; whether the session is still live is decided by its row, so
//! logout revokes a token before its `exp`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::configuration::SecretKey;
use crate::crypto::{derive_key, hex};
use crate::db::sessions::Session;

pub const ISSUER: &str = "authd";
pub const AUDIENCE: &str = "authd";
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a string (RFC 7519 `StringOrURI`).
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Clone)]
pub struct TokenKey {
    /// Names the key in a token's header without revealing anything about it.
    pub kid: String,
    pub encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKey {
    fn derive(secret: &SecretKey) -> Self {
        let key: [u8; 64] = derive_key(secret.expose(), "authd bearer token HS256 v1");
        Self {
            kid: hex(&Sha256::digest(Sha256::digest(key))[..8]),
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }
}

/// The keys tokens are signed and verified with, derived once from
/// `SECRET_KEY` (and `SECRET_KEY_PREVIOUS` during a rotation, whose tokens
/// still verify but which never signs).
#[derive(Clone)]
pub struct TokenKeys {
    current: TokenKey,
    previous: Option<TokenKey>,
}

impl TokenKeys {
    pub fn derive(current: &SecretKey, previous: Option<&SecretKey>) -> Self {
        Self {
            current: TokenKey::derive(current),
            previous: previous.map(TokenKey::derive),
        }
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    pub fn issue(&self, session: &Session) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: session.user_id.to_string(),
            sid: session.token.expose().to_owned(),
            iat: session.created_at.timestamp(),
            exp: session.expires_at.timestamp(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.current.encoding)
    }

    /// The claims of a token we signed (with the current or the previous
    /// key) that has not expired; `None` for anything else: garbage,
    /// tampering, another algorithm, `alg: none`, a wrong issuer or audience.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| kid.as_deref() == Some(key.kid.as_str()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::{SessionToken, UserId};

    fn keys() -> TokenKeys {
        TokenKeys::derive(&SecretKey::new(vec![7; 64]).unwrap(), None)
    }

    fn session() -> Session {
        let token = SessionToken::presented("session-id-0123456789abcdef".into());
        Session::sample(UserId::new(42), token)
    }

    #[test]
    fn a_token_we_issue_verifies() {
        let keys = keys();
        let claims = keys.verify(&keys.issue(&session()).unwrap()).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("42", "session-id-0123456789abcdef")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_verifies_or_panics(token in any::<String>()) {
            prop_assert!(keys().verify(&token).is_none());
        }

        #[test]
        fn any_single_change_to_a_token_is_rejected(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let keys = keys();
            let token = keys.issue(&session()).unwrap();
            let mut bytes = token.clone().into_bytes();
            let at = position.index(bytes.len());
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            // Base64url has slack bits in its last character, so a change
            // there can decode to the very same bytes; anything else fails.
            if let Some(claims) = keys.verify(&tampered) {
                prop_assert_eq!(claims.sid, "session-id-0123456789abcdef");
                prop_assert_eq!(at, token.len() - 1);
            }
        }
    }
}
