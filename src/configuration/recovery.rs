//! Account recovery by e-mail: whether it is on, which client pages its
//! links open, and how long they last. Mail itself is [`MailSettings`].
//!
//! [`MailSettings`]: crate::configuration::MailSettings

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, HOUR, Period, seconds};

#[derive(Clone, Debug)]
pub struct RecoverySettings {
    /// Off: no mail is queued, and the recovery routes answer 404.
    pub enabled: bool,
    /// The client's page for each kind of link, under `PUBLIC_APP_URL`.
    pub reset_path: String,
    pub verify_path: String,
    pub reset_ttl: Period,
    pub verify_ttl: Period,
    /// Refuse to log in an account whose address is not verified.
    pub require_verified_email: bool,
}

impl RecoverySettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let enabled = env.boolean("ACCOUNT_RECOVERY", true)?;
        let require_verified_email = env.boolean("REQUIRE_VERIFIED_EMAIL", false)?;
        if require_verified_email && !enabled {
            return Err(ConfigError {
                variable: "REQUIRE_VERIFIED_EMAIL",
                message: "needs ACCOUNT_RECOVERY on: without mail, no address could be verified"
                    .into(),
            });
        }
        Ok(Self {
            enabled,
            reset_path: env.parse("RESET_PATH", "/reset-password".to_owned(), parse_app_path)?,
            verify_path: env.parse("VERIFY_PATH", "/verify-email".to_owned(), parse_app_path)?,
            reset_ttl: env.period("RESET_TTL", seconds(HOUR))?,
            verify_ttl: env.period("VERIFY_TTL", seconds(48 * HOUR))?,
            require_verified_email,
        })
    }
}

/// A page of the client application: a path that starts with `/`.
fn parse_app_path(value: &str) -> Result<String, String> {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#' | '\\'));
    if value.starts_with('/') && !value.starts_with("//") && plain {
        Ok(value.to_owned())
    } else {
        Err("must be a path such as /reset-password (no query, no fragment)".into())
    }
}
