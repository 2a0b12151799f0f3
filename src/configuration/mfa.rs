//! The second factor: how authenticator apps name the service, how long a
//! login may wait for its second step, and whether every account must have
//! one.

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, MINUTE, Period, seconds};

#[derive(Clone, Debug)]
pub struct MfaSettings {
    /// The name authenticator apps list the account under.
    pub issuer: String,
    /// How long an `mfa_token` waits for its second step.
    pub token_ttl: Period,
    /// `MFA_REQUIRED`: an account without a second factor sets one up
    /// before its first session.
    pub required: bool,
}

impl MfaSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            issuer: env.parse("MFA_ISSUER", "authd".to_owned(), parse_issuer)?,
            token_ttl: env.period("MFA_TOKEN_TTL", seconds(5 * MINUTE))?,
            required: env.boolean("MFA_REQUIRED", false)?,
        })
    }
}

/// Apps show the issuer beside the account; a colon would end it early.
fn parse_issuer(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > 64
        || value.contains(':')
        || value.chars().any(char::is_control)
    {
        Err("must be a short name without a colon, such as `authd` or `Example Inc`".into())
    } else {
        Ok(value.to_owned())
    }
}
