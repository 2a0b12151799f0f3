//! Logging in: a password for a new session, under the login throttle, with
//! the audit trail of whatever happened.

use diesel::PgConnection;
use secrecy::SecretString;

use crate::db::sessions::Session;
use crate::db::users::{self, User};
use crate::db::{self, DbError};
use crate::domain::{Client, LoginName, PasswordHash, UserId};
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
    ///
    /// The session is made only if, at that moment, the account is still
    /// active and still has the password hash that was checked: a login in
    /// flight cannot outlive a password change, a reset, a deactivation or
    /// a deletion made meanwhile, by any instance or by plain SQL. A hash
    /// that changed because another login upgraded it is checked again.
    #[tracing::instrument(skip_all)]
    pub async fn log_in(
        &self,
        identifier: String,
        password: SecretString,
        remember: bool,
        client: &Client,
    ) -> Result<(User, Session), LoginError> {
        let mut checks_left = 2;
        loop {
            checks_left -= 1;
            match self
                .attempt(&identifier, &password, remember, client)
                .await?
            {
                Attempted::LoggedIn(user, session) => {
                    login_outcome("success");
                    return Ok((user, *session));
                }
                Attempted::Refused(error) => return Err(error),
                Attempted::HashChanged { user_id } if checks_left == 0 => {
                    self.refuse(
                        Event::LoginFailure,
                        Some(user_id),
                        &identifier,
                        client,
                        "failure",
                    )
                    .await;
                    return Err(LoginError::InvalidCredentials {
                        user_id: Some(user_id),
                    });
                }
                Attempted::HashChanged { .. } => {}
            }
        }
    }

    /// One check of the password, and the session if it holds.
    async fn attempt(
        &self,
        identifier: &str,
        password: &SecretString,
        remember: bool,
        client: &Client,
    ) -> Result<Attempted, LoginError> {
        let name = LoginName::parse(identifier);
        let lookup = name.clone();
        let found = db::run(&self.core.pool, move |conn| {
            users::find_by_login(conn, &lookup)
        })
        .await?;
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
        let refuse = async |kind, user_id, outcome, error| {
            self.refuse(kind, user_id, identifier, client, outcome)
                .await;
            Ok(Attempted::Refused(error))
        };
        let mut user = match (verdict, found) {
            (Verdict::Blocked(blocked), _) => {
                return refuse(
                    Event::LoginThrottled,
                    user_id,
                    "throttled",
                    LoginError::Throttled(blocked),
                )
                .await;
            }
            (Verdict::Matched, Some(user)) => user,
            (Verdict::Matched | Verdict::Mismatched, _) => {
                return refuse(
                    Event::LoginFailure,
                    user_id,
                    "failure",
                    LoginError::InvalidCredentials { user_id },
                )
                .await;
            }
        };
        // The right password is no guess, even for a disabled account,
        // which is only revealed to someone who knows its password.
        if !user.is_active {
            let error = LoginError::Inactive { user_id: user.id };
            return refuse(Event::LoginFailure, Some(user.id), "inactive", error).await;
        }
        if self.require_verified_email && user.email_verified_at.is_none() {
            self.refuse(
                Event::LoginFailure,
                Some(user.id),
                identifier,
                client,
                "unverified",
            )
            .await;
            // Whoever knows the password gets a fresh link, within the
            // limits every recovery mail has (and not at every attempt).
            let mailed = self.recovery.remail_on_refused_login(&user, client).await?;
            return Ok(Attempted::Refused(LoginError::Unverified { mailed }));
        }
        let upgrade = match self.core.hasher.needs_upgrade(&user.password_hash) {
            true => self.upgraded_hash(&user, password.clone()).await,
            false => None,
        };
        let (id, checked, new) = (user.id, user.password_hash.clone(), upgrade.clone());
        let admit = move |conn: &mut PgConnection| {
            let Some((active, current)) = users::lock_credential(conn, id)? else {
                return Ok(Err(Changed::Gone));
            };
            if !active {
                return Ok(Err(Changed::Inactive));
            }
            if current != checked {
                return Ok(Err(Changed::Hash));
            }
            if let Some(new) = &new {
                users::replace_hash(conn, id, &checked, new)?;
            }
            Ok(Ok(()))
        };
        let success = Record::new(Event::LoginSuccess, Some(id), Some(identifier), client);
        let started = self
            .core
            .sessions
            .start(id, remember, client.clone(), success, admit)
            .await?;
        match started {
            Ok(session) => {
                if let Some(upgraded) = upgrade {
                    tracing::info!(user_id = %id, "upgraded a password hash to the configured cost");
                    user.password_hash = upgraded;
                }
                user.last_login_at = Some(session.created_at);
                Ok(Attempted::LoggedIn(user, Box::new(session)))
            }
            Err(Changed::Hash) => Ok(Attempted::HashChanged { user_id: id }),
            Err(Changed::Gone) => {
                let error = LoginError::InvalidCredentials { user_id: None };
                refuse(Event::LoginFailure, None, "failure", error).await
            }
            Err(Changed::Inactive) => {
                let error = LoginError::Inactive { user_id: id };
                refuse(Event::LoginFailure, Some(id), "inactive", error).await
            }
        }
    }

    /// Counts and audits a refused login.
    async fn refuse(
        &self,
        kind: Event,
        user_id: Option<UserId>,
        identifier: &str,
        client: &Client,
        outcome: &'static str,
    ) {
        login_outcome(outcome);
        let event = Record::new(kind, user_id, Some(identifier), client);
        audit::record(&self.core.pool, event).await;
    }

    /// The password hashed at the configured cost, to replace `user`'s
    /// older, cheaper hash; best effort: a failure is logged and the
    /// upgrade tried at the next login.
    async fn upgraded_hash(&self, user: &User, password: SecretString) -> Option<PasswordHash> {
        match self.core.hasher.rehash(password).await {
            Ok(hash) => Some(hash),
            Err(error) => {
                tracing::warn!(user_id = %user.id, %error, "could not re-hash a password");
                None
            }
        }
    }
}

/// How one check of the password ended.
enum Attempted {
    LoggedIn(User, Box<Session>),
    Refused(LoginError),
    /// The password matched, but the account's hash changed before the
    /// session was made: the password is checked again, against the new one.
    HashChanged {
        user_id: UserId,
    },
}

/// What changed about an account between its password check and its
/// session.
enum Changed {
    Gone,
    Inactive,
    Hash,
}

fn login_outcome(outcome: &'static str) {
    metrics::counter!("authd_logins_total", "outcome" => outcome).increment(1);
}
