//! Bearer tokens: HS256 JWTs that name a session. The token only carries the
//! session id; whether the session is still live is decided by its row, so
//! logout revokes a token before its `exp`.

use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use crate::auth::keys::Keys;
use crate::models::Session;

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

pub fn issue(keys: &Keys, session: &Session) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: session.user_id.to_string(),
        sid: session.id.clone(),
        iat: session.created_at.timestamp(),
        exp: session.expires_at.timestamp(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.token.kid.clone());
    encode(&header, &claims, &keys.token.encoding)
}

/// The claims of a token we signed (with the current or the previous key)
/// that has not expired; `None` for anything else: garbage, tampering,
/// another algorithm, `alg: none`, a wrong issuer or audience.
pub fn verify(keys: &Keys, token: &str) -> Option<Claims> {
    let header = decode_header(token).ok()?;
    let key = keys.token_decoding(header.kid.as_deref())?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECONDS;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .ok()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::configuration::SecretKey;

    fn keys() -> Keys {
        Keys::derive(&SecretKey::new(vec![7; 64]).unwrap(), None)
    }

    fn session() -> Session {
        let now = Utc::now();
        Session {
            id: "session-id-0123456789abcdef".into(),
            user_id: 42,
            created_at: now,
            last_seen_at: now,
            expires_at: now + TimeDelta::hours(1),
            remember: false,
            user_agent: None,
            ip: None,
            csrf_token: "csrf".into(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_token_we_issue_verifies() {
        let keys = keys();
        let claims = verify(&keys, &issue(&keys, &session()).unwrap()).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str()),
            ("42", "session-id-0123456789abcdef")
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_verifies_or_panics(token in any::<String>()) {
            prop_assert!(verify(&keys(), &token).is_none());
        }

        #[test]
        fn any_single_change_to_a_token_is_rejected(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let keys = keys();
            let token = issue(&keys, &session()).unwrap();
            let mut bytes = token.clone().into_bytes();
            let at = position.index(bytes.len());
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            // Base64url has slack bits in its last character, so a change
            // there can decode to the very same bytes; anything else fails.
            if let Some(claims) = verify(&keys, &tampered) {
                prop_assert_eq!(claims.sid, "session-id-0123456789abcdef");
                prop_assert_eq!(at, token.len() - 1);
            }
        }
    }
}
