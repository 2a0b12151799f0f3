//! Bearer tokens: HS256 JWTs that name a session. The token only carries the
//! session id; whether the session is still live is decided by its row, so
//! logout revokes a token before its `exp`.

use jsonwebtoken::{Algorithm, Header, Validation, decode, encode};
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
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &keys.token_encoding,
    )
}

/// The claims of a token we signed that has not expired; `None` for
/// anything else (garbage, tampered, other algorithms, `alg: none`).
pub fn verify(keys: &Keys, token: &str) -> Option<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECONDS;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    decode::<Claims>(token, &keys.token_decoding, &validation)
        .map(|data| data.claims)
        .ok()
}
