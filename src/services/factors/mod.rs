//! Checking a code against an account's second factor (a TOTP
//! authenticator, or a recovery code): shared by every check of who someone
//! is, the login's second step and the step-up before a sensitive change.
//! Turning the factor on and off is [`Mfa`](crate::services::mfa::Mfa).

pub mod recovery_codes;
pub mod totp;

use std::sync::Arc;

use diesel::Connection;

use crate::clock::Clock;
use crate::configuration::SecretKey;
use crate::crypto::{derive_key, open, seal};
use crate::db::second_factor as stored;
use crate::db::{self, DbError, PgPool};
use crate::domain::{AuthMethod, UserId};
use crate::services::notices::{Notice, Notices};
use totp::TotpSecret;

/// The key TOTP secrets are sealed with, derived from `SECRET_KEY`, and the
/// one derived from `SECRET_KEY_PREVIOUS` during a rotation.
struct SealingKeys {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

const SEALING_LABEL: &str = "authd totp secrets v1";

/// Checks codes against an account's factor; shared by every service that
/// asks for one.
#[derive(Clone)]
pub struct Factors {
    pool: PgPool,
    clock: Clock,
    /// A recovery code used is news for its owner.
    notices: Notices,
    keys: Arc<SealingKeys>,
}

impl Factors {
    pub fn new(
        pool: PgPool,
        clock: Clock,
        notices: Notices,
        key: &SecretKey,
        previous: Option<&SecretKey>,
    ) -> Self {
        Self {
            pool,
            clock,
            notices,
            keys: Arc::new(SealingKeys {
                current: derive_key(key.expose(), SEALING_LABEL),
                previous: previous.map(|key| derive_key(key.expose(), SEALING_LABEL)),
            }),
        }
    }

    pub(crate) fn seal(&self, secret: &TotpSecret) -> Vec<u8> {
        seal(&self.keys.current, secret.expose())
    }

    /// The secret, and whether it was sealed with the previous key (and so
    /// should be sealed again).
    pub(crate) fn open(&self, sealed: &[u8]) -> Option<(TotpSecret, bool)> {
        if let Some(plain) = open(&self.keys.current, sealed) {
            return Some((TotpSecret::from_bytes(plain), false));
        }
        let previous = self.keys.previous.as_ref()?;
        open(previous, sealed).map(|plain| (TotpSecret::from_bytes(plain), true))
    }

    /// Checks `typed` (a TOTP code or a recovery code) against the account's
    /// confirmed factor and uses it up: a TOTP step is accepted once, a
    /// recovery code works once. `None` when it is wrong, used, or the
    /// account has no factor.
    pub async fn redeem(
        &self,
        user_id: UserId,
        typed: &str,
    ) -> Result<Option<AuthMethod>, DbError> {
        let now = self.clock.now();
        if let Some(code) = totp::parse_code(typed) {
            let this = self.clone();
            return db::run(&self.pool, move |conn| {
                conn.transaction(|conn| {
                    let Some(factor) = stored::totp(conn, user_id)? else {
                        return Ok(None);
                    };
                    let Some((secret, stale)) = this.open(&factor.sealed) else {
                        tracing::error!(%user_id, "a TOTP secret opens with no configured key");
                        return Ok(None);
                    };
                    let Some(step) = secret.matching_step(&code, now) else {
                        return Ok(None);
                    };
                    if !stored::accept_step(conn, user_id, step, None)? {
                        return Ok(None);
                    }
                    if stale {
                        stored::reseal_totp(conn, user_id, &this.seal(&secret))?;
                    }
                    Ok(Some(AuthMethod::Otp))
                })
            })
            .await;
        }
        let Some(code) = recovery_codes::normalise(typed) else {
            return Ok(None);
        };
        let digest = recovery_codes::digest(&code);
        let notices = self.notices.clone();
        let used = db::run(&self.pool, move |conn| {
            conn.transaction(|conn| {
                let used = stored::use_recovery_code(conn, user_id, &digest, now)?;
                if used {
                    notices.queue(conn, Notice::RecoveryCodeUsed, user_id)?;
                }
                Ok::<_, diesel::result::Error>(used)
            })
        })
        .await?;
        Ok(used.then_some(AuthMethod::RecoveryCode))
    }
}
