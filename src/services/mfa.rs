//! The second factor, a TOTP authenticator and its recovery codes: turning
//! it on and off and renewing the codes. Checking a code is
//! [`Factors`](crate::services::factors::Factors).

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::db::second_factor as stored;
use crate::db::users::User;
use crate::db::{self, DbError};
use crate::db::{passkeys, sessions};
use crate::domain::{Client, UserId};
use crate::services::Core;
use crate::services::audit::{Event, Record};
use crate::services::credentials::ConfirmError;
use crate::services::factors::totp::{self, TotpSecret};
use crate::services::factors::{Factors, recovery_codes};
use crate::services::notices::{Notice, Notices};

/// Turning a pending factor on with a code from it: with its recovery
/// codes, its notice and its audit event, in one transaction.
pub(crate) struct Confirmation {
    factors: Factors,
    notices: Notices,
    user_id: UserId,
    code: Option<String>,
    digests: Vec<[u8; 32]>,
    pub(crate) event: Record,
    now: DateTime<Utc>,
}

impl Confirmation {
    /// Runs in the caller's transaction: the factor on, or why not
    /// ([`MfaError::WrongCode`], [`MfaError::NotStarted`]), nothing changed.
    pub(crate) fn run(&self, conn: &mut PgConnection) -> QueryResult<Result<(), MfaError>> {
        let user_id = self.user_id;
        let pending = stored::totp(conn, user_id)?;
        let Some(factor) = pending.filter(|factor| factor.confirmed_at.is_none()) else {
            return Ok(Err(MfaError::NotStarted));
        };
        let step = self.code.as_deref().and_then(|code| {
            let (secret, _) = self.factors.open(&factor.sealed)?;
            secret.matching_step(code, self.now)
        });
        let Some(step) = step else {
            return Ok(Err(MfaError::WrongCode));
        };
        if !stored::accept_step(conn, user_id, step, Some(self.now))? {
            return Ok(Err(MfaError::WrongCode));
        }
        stored::replace_recovery_codes(conn, user_id, &self.digests)?;
        self.notices.queue(conn, Notice::MfaEnabled, user_id)?;
        self.event.store(conn)?;
        Ok(Ok(()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("a second factor is on already")]
    AlreadyOn,
    #[error("no second factor is on")]
    NotOn,
    #[error("no enrolment was started")]
    NotStarted,
    #[error("the code is wrong")]
    WrongCode,
    #[error(transparent)]
    Confirm(#[from] ConfirmError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a new enrolment shows its owner, once.
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
}

/// Turning the second factor on and off, and renewing recovery codes.
#[derive(Clone)]
pub struct Mfa {
    core: Core,
    issuer: String,
}

impl Mfa {
    pub fn new(core: Core, issuer: String) -> Self {
        Self { core, issuer }
    }

    /// Starts (or restarts) enrolment, confirmed by the password: a new
    /// secret, pending until a code from it is confirmed. Refused while a
    /// factor is on: replacing it would be removing it without a code.
    pub async fn start_totp(
        &self,
        user: &User,
        password: secrecy::SecretString,
        client: &Client,
    ) -> Result<Enrolment, MfaError> {
        if user.totp_enabled {
            return Err(MfaError::AlreadyOn);
        }
        self.core.confirm(user, password, None, client).await?;
        self.begin_totp(user).await
    }

    /// [`Mfa::start_totp`] for an account whose password was proved some
    /// other way: by the login that answered an enrolment's `mfa_token`.
    pub async fn begin_totp(&self, user: &User) -> Result<Enrolment, MfaError> {
        let secret = TotpSecret::generate();
        let sealed = self.core.factors.seal(&secret);
        let id = user.id;
        let started = db::run(&self.core.pool, move |conn| {
            stored::start_totp(conn, id, &sealed)
        })
        .await?;
        if !started {
            return Err(MfaError::AlreadyOn);
        }
        Ok(Enrolment {
            uri: secret.uri(&self.issuer, &user.username),
            secret: secret.base32(),
        })
    }

    /// Confirms the pending factor with a code from it: the factor is on,
    /// with a new set of recovery codes.
    pub async fn confirm_totp(
        &self,
        user_id: UserId,
        typed: &str,
        client: &Client,
    ) -> Result<Vec<String>, MfaError> {
        let (confirmation, codes) = self.confirmation(user_id, typed, client);
        let (confirmed, confirmation) = db::run(&self.core.pool, move |conn| {
            let confirmed = conn.transaction(|conn| confirmation.run(conn))?;
            Ok::<_, diesel::result::Error>((confirmed, confirmation))
        })
        .await?;
        confirmed?;
        confirmation.event.log();
        self.core.sessions.forget_user(user_id);
        Ok(codes)
    }

    /// The confirmation of `user_id`'s pending factor with `typed`, to run
    /// in a transaction of the caller's, and the recovery codes it sets (to
    /// show the owner once it has committed).
    pub(crate) fn confirmation(
        &self,
        user_id: UserId,
        typed: &str,
        client: &Client,
    ) -> (Confirmation, Vec<String>) {
        let (codes, digests) = recovery_codes::new_set();
        let confirmation = Confirmation {
            factors: self.core.factors.clone(),
            notices: self.core.notices.clone(),
            user_id,
            code: totp::parse_code(typed),
            digests,
            event: Record::new(Event::MfaEnabled, Some(user_id), None, client),
            now: self.core.clock.now(),
        };
        (confirmation, codes)
    }

    /// Turns the factor off, confirmed by the password and a code.
    pub async fn disable(
        &self,
        user: &User,
        password: secrecy::SecretString,
        code: Option<String>,
        client: &Client,
    ) -> Result<(), MfaError> {
        if !user.totp_enabled {
            return Err(MfaError::NotOn);
        }
        self.core
            .confirm(user, password, Some(code), client)
            .await?;
        let id = user.id;
        let event = Record::new(Event::MfaDisabled, Some(id), None, client);
        let notices = self.core.notices.clone();
        let (_, event) = db::run(&self.core.pool, move |conn| {
            let remove = |conn: &mut PgConnection| {
                let removed = stored::remove_all(conn, id)?;
                if removed {
                    notices.queue(conn, Notice::MfaDisabled, id)?;
                }
                Ok(removed)
            };
            event.with(conn, remove, |removed| *removed)
        })
        .await?;
        event.iter().for_each(Record::log);
        self.core.sessions.forget_user(id);
        Ok(())
    }

    /// A new set of recovery codes, confirmed by the password and a code;
    /// the old set stops working.
    pub async fn regenerate_codes(
        &self,
        user: &User,
        password: secrecy::SecretString,
        code: Option<String>,
        client: &Client,
    ) -> Result<Vec<String>, MfaError> {
        if !user.totp_enabled {
            return Err(MfaError::NotOn);
        }
        self.core
            .confirm(user, password, Some(code), client)
            .await?;
        let (codes, digests) = recovery_codes::new_set();
        let id = user.id;
        let event = Record::new(Event::RecoveryCodesRegenerated, Some(id), None, client);
        let notices = self.core.notices.clone();
        db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                stored::replace_recovery_codes(conn, id, &digests)?;
                notices.queue(conn, Notice::RecoveryCodesRegenerated, id)?;
                event.store(conn)?;
                Ok::<_, diesel::result::Error>(event)
            })
        })
        .await
        .map(|event| event.log())?;
        self.core.sessions.forget_user(id);
        Ok(codes)
    }

    /// An operator's reset, for an owner who lost the factor and proved
    /// who they are some other way (ASVS 6.4.4): the factor, pending or on,
    /// the recovery codes and the passkeys go, every session of the account ends, and
    /// any second step still owed is void. False, and nothing changed,
    /// when the account had none.
    pub async fn reset(&self, user: &User, client: &Client) -> Result<bool, MfaError> {
        let id = user.id;
        let event = Record::new(Event::MfaReset, Some(id), None, client);
        let (notices, now) = (self.core.notices.clone(), self.core.clock.now());
        let (ended, event) = db::run(&self.core.pool, move |conn| {
            let reset = |conn: &mut PgConnection| {
                let factor = stored::remove_all(conn, id)?;
                let passkeys = passkeys::delete_all_of(conn, id)? > 0;
                if !(factor || passkeys) {
                    return Ok(None);
                }
                stored::void_challenges(conn, id)?;
                notices.queue(conn, Notice::MfaReset, id)?;
                sessions::revoke_all_of(conn, id, &[], now).map(Some)
            };
            event.with(conn, reset, Option::is_some)
        })
        .await?;
        event.iter().for_each(Record::log);
        match ended {
            Some(ended) => {
                self.core.sessions.revoked(id, ended);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
