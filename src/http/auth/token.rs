//! Bearer tokens: HS256 JWTs that name a session. The token only carries the
//! session id; whether the session is still live is decided by its row, so
//! logout revokes a token before its `exp`.
//!
//! jsonwebtoken signs them. Every authenticated request verifies one, so
//! verifying is done here, in the one shape authd issues: the header must
//! be, byte for byte, the one a current or previous key signs with (which
//! settles the algorithm and the key without parsing anything a client
//! wrote), then the HMAC is checked in constant time, and only then are the
//! claims read. A general JWT library parses the header twice and the
//! claims twice, and builds its validation rules, on every call: that was a
//! sixth of `GET /api/me`'s time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::configuration::SecretKey;
use crate::crypto::{derive_key, hex};
use crate::db::sessions::Session;

pub const ISSUER: &str = "authd";
pub const AUDIENCE: &str = "authd";
const LEEWAY_SECONDS: i64 = 5;

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
    /// The header's encoded form in every token this key signs.
    header: String,
    /// HMAC-SHA256 keyed once, cloned for each verification.
    mac: Hmac<Sha256>,
}

impl TokenKey {
    fn derive(secret: &SecretKey) -> Self {
        let key: [u8; 64] = derive_key(secret.expose(), "authd bearer token HS256 v1");
        let kid = hex(&Sha256::digest(Sha256::digest(key))[..8]);
        let header = serde_json::to_vec(&Self::header(&kid))
            .unwrap_or_else(|_| unreachable!("a header of strings serializes"));
        Self {
            header: URL_SAFE_NO_PAD.encode(header),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            encoding: EncodingKey::from_secret(&key),
            kid,
        }
    }

    fn header(kid: &str) -> Header {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        header
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
        let header = TokenKey::header(&self.current.kid);
        jsonwebtoken::encode(&header, &claims, &self.current.encoding)
    }

    /// The claims of a token we signed (with the current or the previous
    /// key) that has not expired; `None` for anything else: garbage,
    /// tampering, another algorithm, `alg: none`, a wrong issuer or audience.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.header == header)?;
        let mut tag = [0; 32];
        // Anything but exactly 32 bytes, canonically encoded, is refused.
        if URL_SAFE_NO_PAD.decode_slice(signature, &mut tag).ok()? != tag.len() {
            return None;
        }
        key.mac
            .clone()
            .chain_update(signed)
            .verify_slice(&tag)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let now = chrono::Utc::now().timestamp();
        (claims.iss == ISSUER
            && claims.aud == AUDIENCE
            && claims.exp.saturating_add(LEEWAY_SECONDS) >= now)
            .then_some(claims)
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

    /// A session that outlives every test run: 2100-01-01.
    fn lasting_session() -> Session {
        let mut session = session();
        session.created_at = chrono::DateTime::from_timestamp(4_102_444_800 - 3600, 0).unwrap();
        session.expires_at = chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap();
        session
    }

    /// A token issued by this version, for key `[7; 64]`.
    const ISSUED: &str = concat!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6IjNkOTk5YWRhZGMxNzBjNzMifQ",
        ".eyJzdWIiOiI0MiIsInNpZCI6InNlc3Npb24taWQtMDEyMzQ1Njc4OWFiY2RlZiIsImlhdCI6NDEwMjQ0MTIwMCwiZXhwIjo0MTAyNDQ0ODAwLCJpc3MiOiJhdXRoZCIsImF1ZCI6ImF1dGhkIn0",
        "._ChuKGDo-R0D8XEPfFVDZWz-fXY5jM-8TgAWfl8xejU",
    );

    /// Verifying accepts only the header authd signs with, byte for byte.
    /// Should an upgrade of jsonwebtoken change how that header is written,
    /// this fails: the tokens already out there keep the old form, and must
    /// still verify.
    #[test]
    fn tokens_keep_the_form_they_were_issued_in() {
        let keys = keys();
        assert_eq!(keys.issue(&lasting_session()).unwrap(), ISSUED);
        let claims = keys.verify(ISSUED).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("42", "session-id-0123456789abcdef")
        );
    }

    #[test]
    fn a_token_is_refused_once_past_its_leeway() {
        let keys = keys();
        let mut session = session();
        let now = chrono::Utc::now();
        session.expires_at = now - chrono::TimeDelta::seconds(2);
        assert!(keys.verify(&keys.issue(&session).unwrap()).is_some());
        session.expires_at = now - chrono::TimeDelta::seconds(LEEWAY_SECONDS + 2);
        assert!(keys.verify(&keys.issue(&session).unwrap()).is_none());
    }

    #[test]
    fn a_token_of_the_previous_key_verifies_and_of_no_key_does_not() {
        let old = SecretKey::new(vec![8; 64]).unwrap();
        let rotated = TokenKeys::derive(&SecretKey::new(vec![7; 64]).unwrap(), Some(&old));
        let from_old = TokenKeys::derive(&old, None).issue(&session()).unwrap();
        assert!(rotated.verify(&from_old).is_some());
        assert!(keys().verify(&from_old).is_none());
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
