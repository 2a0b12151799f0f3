//! Logging in: a password for a new session, under the login throttle, with
//! the audit trail of whatever happened.

use secrecy::SecretString;

use crate::db::sessions::Session;
use crate::db::users::{self, User};
use crate::db::{self, DbError};
use crate::domain::{Client, LoginName, UserId};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::credentials::{Verdict, account_subject};
use crate::services::passwords::HashError;
use crate::services::recovery::{Recovery, RecoveryError};
use crate::services::throttle::{Blocked, ThrottleError};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identifier or wrong password; `user_id` is for the audit
    /// trail only and never reaches the client.
    #[error("invalid username or password")]
    InvalidCredentials { user_id: Option<UserId> },
    #[error("account disabled")]
    Inactive { user_id: UserId },
    /// The right password, but `REQUIRE_VERIFIED_EMAIL` is on and the
    /// address is not verified yet; `mailed` when a new link is on its way.
    #[error("the address is not verified")]
    Unverified { mailed: bool },
    #[error("too many failed logins")]
    Throttled(Blocked),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

#[derive(Clone)]
pub struct Login {
    core: Core,
    /// For a fresh confirmation link when an unverified address is refused.
    recovery: Recovery,
    require_verified_email: bool,
}

impl Login {
    pub fn new(core: Core, recovery: Recovery, require_verified_email: bool) -> Self {
        Self {
            core,
            recovery,
            require_verified_email,
        }
    }

    /// Logs in: throttle check, password check, a new session, and the
    /// audit trail of whichever happened.
    ///
    /// Failed logins are counted per (account, client address) and per
    /// client address. The account is whichever the name reaches, however
    /// it is spelt (username or address, any case); a name that reaches
    /// none counts under its normal spelling. Only failures count; attempts
    /// in flight make parallel ones wait (see
    /// [`Throttle::begin`](crate::services::throttle::Throttle::begin)).
    #[tracing::instrument(skip_all)]
    pub async fn log_in(
        &self,
        identifier: String,
        password: SecretString,
        remember: bool,
        client: &Client,
    ) -> Result<(User, Session), LoginError> {
        let name = LoginName::parse(&identifier);
        let lookup = name.clone();
        let found = db::run(&self.core.pool, move |conn| {
            users::find_by_login(conn, &lookup)
        })
        .await?;
        let event = |event, user_id| Record::new(event, user_id, Some(&identifier), client);

        let subject = match &found {
            Some(user) => account_subject(user),
            None => format!("name:{}", name.canonical()),
        };
        let user_id = found.as_ref().map(|user| user.id);
        // Verify even without an account, so unknown users cost a hash too.
        let hash = found.as_ref().map(|user| user.password_hash.clone());
        let verdict = self
            .core
            .check_password::<LoginError>(&subject, client, password.clone(), hash)
            .await?;
        let refuse = async |kind, user_id, outcome| {
            login_outcome(outcome);
            audit::record(&self.core.pool, event(kind, user_id)).await;
        };
        let mut user = match (verdict, found) {
            (Verdict::Blocked(blocked), _) => {
                refuse(Event::LoginThrottled, user_id, "throttled").await;
                return Err(LoginError::Throttled(blocked));
            }
            (Verdict::Matched, Some(user)) => user,
            (Verdict::Matched | Verdict::Mismatched, _) => {
                refuse(Event::LoginFailure, user_id, "failure").await;
                return Err(LoginError::InvalidCredentials { user_id });
            }
        };
        // The right password is no guess, even for a disabled account,
        // which is only revealed to someone who knows its password.
        if !user.is_active {
            refuse(Event::LoginFailure, Some(user.id), "inactive").await;
            return Err(LoginError::Inactive { user_id: user.id });
        }
        if self.require_verified_email && user.email_verified_at.is_none() {
            refuse(Event::LoginFailure, Some(user.id), "unverified").await;
            // Whoever knows the password gets a fresh link, within the
            // limits every recovery mail has.
            let mailed = match self.recovery.resend_verification(&user, client).await {
                Ok(()) => true,
                Err(RecoveryError::Throttled(_)) => false,
                Err(error) => return Err(error.into()),
            };
            return Err(LoginError::Unverified { mailed });
        }
        if self.core.hasher.needs_upgrade(&user.password_hash) {
            self.upgrade_hash(&mut user, password).await;
        }
        let success = event(Event::LoginSuccess, Some(user.id));
        let session = self
            .core
            .sessions
            .start(user.id, remember, client.clone(), success)
            .await?;
        user.last_login_at = Some(session.created_at);
        login_outcome("success");
        Ok((user, session))
    }

    /// Best effort: a failed upgrade is logged and retried at the next login.
    async fn upgrade_hash(&self, user: &mut User, password: SecretString) {
        let upgraded = match self.core.hasher.rehash(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not re-hash a password");
                return;
            }
        };
        let (id, old, new) = (user.id, user.password_hash.clone(), upgraded.clone());
        match db::run(&self.core.pool, move |conn| {
            users::replace_hash(conn, id, &old, &new)
        })
        .await
        {
            Ok(()) => {
                tracing::info!(
                    user_id = %user.id,
                    "upgraded a password hash to the configured cost"
                );
                user.password_hash = upgraded;
            }
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not store an upgraded hash")
            }
        }
    }
}

fn login_outcome(outcome: &'static str) {
    metrics::counter!("authd_logins_total", "outcome" => outcome).increment(1);
}
