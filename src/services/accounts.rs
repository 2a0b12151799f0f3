//! Accounts: registration and login, each with its throttle and its audit
//! trail, so that a handler only translates HTTP to a call here and back.

use chrono::Utc;
use diesel::{Connection, PgConnection};
use secrecy::SecretString;

use crate::db::email_tokens::Purpose;
use crate::db::sessions::{self, Session};
use crate::db::users::{self, NewUser, Taken, User};
use crate::db::{self, DbError};
use crate::domain::{Client, Email, FieldErrors, LoginName, Password, Username, add_error};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::passwords::HashError;
use crate::services::recovery::outbox::Outbox;
use crate::services::throttle::{Blocked, Counter, ThrottleError, client_key};

pub const USERNAME_TAKEN: &str = "Please use a different username.";
pub const EMAIL_TAKEN: &str = "Please use a different email address.";

/// A registration as parsed from a request: the fields that parsed, and
/// messages for those that did not.
#[derive(Debug, Default)]
pub struct NewAccount {
    /// The username exactly as submitted, for the audit trail.
    pub submitted_username: Option<String>,
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub errors: FieldErrors,
}

/// A change to an account, as parsed from a request: the username and
/// address to set (either may stay as it is), what did not parse, and the
/// current password that confirms it.
#[derive(Debug)]
pub struct ProfileChange {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub errors: FieldErrors,
    pub current_password: SecretString,
}

/// Why a registration or a change to an account did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the request has invalid fields")]
    Invalid(FieldErrors),
    #[error("too many attempts from this address")]
    Throttled(Blocked),
    /// The current password, asked to confirm a change, is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identifier or wrong password; `user_id` is for the audit
    /// trail only and never reaches the client.
    #[error("invalid username or password")]
    InvalidCredentials { user_id: Option<i64> },
    #[error("account disabled")]
    Inactive { user_id: i64 },
    /// The right password, but `REQUIRE_VERIFIED_EMAIL` is on and the
    /// address is not verified yet.
    #[error("the address is not verified")]
    Unverified { user: Box<User> },
    #[error("too many failed logins")]
    Throttled(Blocked),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

#[derive(Clone)]
pub struct Accounts {
    core: Core,
    /// Where verification mails are queued, with the change that needs one.
    outbox: Outbox,
    require_verified_email: bool,
}

impl Accounts {
    pub fn new(core: Core, outbox: Outbox, require_verified_email: bool) -> Self {
        Self {
            core,
            outbox,
            require_verified_email,
        }
    }

    /// Creates the account, or reports every problem with it at once, taken
    /// names included (as a form would). Attempts are limited per client
    /// address, valid or not.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        account: NewAccount,
        client: &Client,
    ) -> Result<User, AccountError> {
        let counter = Counter {
            bucket: "register_ip",
            key: client_key(client.ip),
            limit: self.core.limits.register_per_ip,
            window: self.core.limits.register_window,
        };
        let typed = account.submitted_username.as_deref();
        if let Err(blocked) = self.core.throttle.hit(&[counter]).await? {
            registration_outcome("throttled");
            let event = Record::new(Event::RegisterThrottled, None, typed, client);
            audit::record(&self.core.pool, event).await;
            return Err(AccountError::Throttled(blocked));
        }
        let created = self.create(account, client).await;
        match &created {
            Ok(_) => registration_outcome("created"),
            Err(AccountError::Invalid(_)) => registration_outcome("invalid"),
            Err(_) => {}
        }
        created
    }

    /// Creates the account by the registration rules, unthrottled (for an
    /// operator). The pre-check of taken names also spares a hash for a
    /// doomed request; the unique indexes still decide races. The account,
    /// its `register` event and its verification mail are stored in one
    /// transaction.
    pub async fn create(&self, account: NewAccount, client: &Client) -> Result<User, AccountError> {
        let event = Record::new(
            Event::Register,
            None,
            account.submitted_username.as_deref(),
            client,
        );
        let NewAccount {
            username,
            email,
            password,
            mut errors,
            ..
        } = account;
        if username.is_some() || email.is_some() {
            let (username, email) = (username.clone(), email.clone());
            let taken = db::run(&self.core.pool, move |conn| {
                users::taken(conn, username.as_ref(), email.as_ref(), None)
            })
            .await?;
            note_taken(&mut errors, &taken);
        }
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(AccountError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        // Hash with no connection checked out: a slow hash must not hold the pool.
        let password_hash = self.core.hasher.hash(&password).await?;
        let outbox = self.outbox.clone();
        let inserted = db::run(&self.core.pool, move |conn| {
            let new = NewUser {
                username: username.as_str(),
                email: email.as_str(),
                password_hash: &password_hash,
            };
            // A taken name aborts the transaction: roll it back, and say which.
            let created = conn.transaction(|conn| {
                let user = users::insert(conn, &new)?.map_err(Refused::Taken)?;
                let event = event.about(user.id);
                event.store(conn)?;
                outbox.queue(conn, Purpose::Verify, Some(user.id), &user.email)?;
                Ok::<_, Refused>((user, event))
            });
            Refused::split(created)
        })
        .await?;
        self.outbox.wake();
        written(inserted, errors)
    }

    /// Logs in: throttle check, password check, a new session, and the
    /// audit trail of whichever happened.
    ///
    /// Failed logins are counted per (account, client address) and per
    /// client address. The account is whichever the name reaches, however
    /// it is spelt (username or address, any case); a name that reaches
    /// none counts under its normal spelling. Only failures count; attempts
    /// in flight make parallel ones wait (see [`Throttle::begin`]).
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
        let audit = |event, user_id| {
            audit::record(
                &self.core.pool,
                Record::new(event, user_id, Some(&identifier), client),
            )
        };

        let subject = match &found {
            Some(user) => format!("user:{}", user.id),
            None => format!("name:{}", name.canonical()),
        };
        let user_id = found.as_ref().map(|user| user.id);
        // Verify even without an account, so unknown users cost a hash too.
        let hash = found.as_ref().map(|user| user.password_hash.clone());
        let verdict = self
            .check::<LoginError>(&subject, client, password.clone(), hash)
            .await?;
        let mut user = match (verdict, found) {
            (Verdict::Blocked(blocked), _) => {
                login_outcome("throttled");
                audit(Event::LoginThrottled, user_id).await;
                return Err(LoginError::Throttled(blocked));
            }
            (Verdict::Matched, Some(user)) => user,
            (Verdict::Matched | Verdict::Mismatched, _) => {
                login_outcome("failure");
                audit(Event::LoginFailure, user_id).await;
                return Err(LoginError::InvalidCredentials { user_id });
            }
        };
        // The right password is no guess, even for a disabled account,
        // which is only revealed to someone who knows its password.
        if !user.is_active {
            login_outcome("inactive");
            audit(Event::LoginFailure, Some(user.id)).await;
            return Err(LoginError::Inactive { user_id: user.id });
        }
        if self.require_verified_email && user.email_verified_at.is_none() {
            login_outcome("unverified");
            audit(Event::LoginFailure, Some(user.id)).await;
            return Err(LoginError::Unverified {
                user: Box::new(user),
            });
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

    /// What a password check counts against: failures per (account or
    /// name, client address), and per client address.
    fn password_counters(&self, subject: &str, client: &Client) -> [Counter; 2] {
        let ip = client_key(client.ip);
        [
            Counter {
                bucket: "login_account",
                key: format!("{}|{ip}", self.core.throttle.text_key(subject)),
                limit: self.core.limits.login_per_identifier,
                window: self.core.limits.login_window,
            },
            Counter {
                bucket: "login_ip",
                key: ip,
                limit: self.core.limits.login_per_ip,
                window: self.core.limits.login_window,
            },
        ]
    }

    /// The current password, asked again before a change to the account:
    /// checked as a login's is, against the same counters, so it is no
    /// side door for guessing.
    async fn confirm_password(
        &self,
        user: &User,
        password: SecretString,
        client: &Client,
    ) -> Result<(), AccountError> {
        let hash = Some(user.password_hash.clone());
        let subject = format!("user:{}", user.id);
        let (kind, refused) = match self
            .check::<AccountError>(&subject, client, password, hash)
            .await?
        {
            Verdict::Matched => return Ok(()),
            Verdict::Blocked(blocked) => (Event::LoginThrottled, AccountError::Throttled(blocked)),
            Verdict::Mismatched => (Event::LoginFailure, AccountError::WrongPassword),
        };
        let event = Record::new(kind, Some(user.id), Some(&user.username), client);
        audit::record(&self.core.pool, event).await;
        Err(refused)
    }

    /// A password check under the login throttle: an attempt that waits
    /// while attempts in flight could reach a limit, and is refused once
    /// failures have; a failure when the password does not match; taken
    /// back, and the account's failures from this address forgiven, when it
    /// does (or when the check itself failed: no verdict, no failure).
    async fn check<E: From<ThrottleError> + From<HashError>>(
        &self,
        subject: &str,
        client: &Client,
        candidate: SecretString,
        hash: Option<String>,
    ) -> Result<Verdict, E> {
        let counters = self.password_counters(subject, client);
        let attempt = match self.core.throttle.begin(&counters).await? {
            Ok(attempt) => attempt,
            Err(blocked) => return Ok(Verdict::Blocked(blocked)),
        };
        match self.core.hasher.verify(candidate, hash).await {
            Ok(true) => {
                self.core.throttle.succeeded(attempt).await?;
                self.core.throttle.reset(&counters[0]).await?;
                Ok(Verdict::Matched)
            }
            Ok(false) => {
                self.core.throttle.failed(attempt, &counters).await?;
                Ok(Verdict::Mismatched)
            }
            Err(error) => {
                self.core.throttle.succeeded(attempt).await?;
                Err(error.into())
            }
        }
    }

    /// Changes the password, confirmed by the current one, and ends every
    /// other session of the user; `keep` (the session asking) stays valid.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn change_password(
        &self,
        user: &User,
        keep: &Session,
        current: SecretString,
        new: Password,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.confirm_password(user, current, client).await?;
        self.set_password(user, new, Some(keep.id.clone()), client)
            .await
    }

    /// Sets the password and ends every session of the user but `keep`.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn set_password(
        &self,
        user: &User,
        new: Password,
        keep: Option<String>,
        client: &Client,
    ) -> Result<(), AccountError> {
        let hash = self.core.hasher.hash(&new).await?;
        let (id, event) = (
            user.id,
            Record::new(Event::PasswordChanged, Some(user.id), None, client),
        );
        let (ended, event) = db::run(&self.core.pool, move |conn| {
            let change = |conn: &mut PgConnection| {
                users::set_password_hash(conn, id, &hash)?;
                let keep: Vec<String> = keep.into_iter().collect();
                sessions::revoke_all_of(conn, id, &keep, Utc::now())
            };
            event.with(conn, change, |_| true)
        })
        .await?;
        self.core.sessions.revoked(user.id, ended);
        event.iter().for_each(Record::log);
        Ok(())
    }

    /// Changes the username and/or address by the registration rules,
    /// confirmed by the current password.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn update_profile(
        &self,
        user: &User,
        change: ProfileChange,
        client: &Client,
    ) -> Result<User, AccountError> {
        let ProfileChange {
            username,
            email,
            mut errors,
            current_password,
        } = change;
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        self.confirm_password(user, current_password, client)
            .await?;
        let id = user.id;
        let (wanted_username, wanted_email) = (username.clone(), email.clone());
        let taken = db::run(&self.core.pool, move |conn| {
            users::taken(
                conn,
                wanted_username.as_ref(),
                wanted_email.as_ref(),
                Some(id),
            )
        })
        .await?;
        note_taken(&mut errors, &taken);
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let event = Record::new(Event::AccountUpdated, Some(id), None, client);
        let (outbox, old_email) = (self.outbox.clone(), user.email.clone());
        let updated = db::run(&self.core.pool, move |conn| {
            let change = users::ProfileChange {
                username: username.as_ref().map(Username::as_str),
                email: email.as_ref().map(Email::as_str),
            };
            let updated = conn.transaction(|conn| {
                let user = users::update_profile(conn, id, &change)?.map_err(Refused::Taken)?;
                event.store(conn)?;
                // A new address is unverified (a trigger sees to it): ask
                // its owner to prove it.
                if user.email != old_email {
                    outbox.queue(conn, Purpose::Verify, Some(id), &user.email)?;
                }
                Ok::<_, Refused>((user, event))
            });
            Refused::split(updated)
        })
        .await?;
        self.core.sessions.forget_user(id);
        self.outbox.wake();
        written(updated, errors)
    }

    /// Deletes the account, confirmed by its password; its sessions go with
    /// it, so every cookie and token of it stops working at once.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn delete_account(
        &self,
        user: &User,
        password: SecretString,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.confirm_password(user, password, client).await?;
        self.delete(user, client).await
    }

    /// Deletes the account and its sessions. The event keeps the username:
    /// the user id it would name is gone.
    pub async fn delete(&self, user: &User, client: &Client) -> Result<(), AccountError> {
        let id = user.id;
        let event = Record::new(Event::AccountDeleted, None, Some(&user.username), client);
        let (_, event) = db::run(&self.core.pool, move |conn| {
            event.with(conn, |conn| users::delete(conn, id), |deleted| *deleted)
        })
        .await?;
        self.core.sessions.forget_user(id);
        event.iter().for_each(Record::log);
        Ok(())
    }

    /// Enables or disables the account; disabling ends its sessions (a
    /// trigger does it, whoever disables it). False when nothing changed.
    pub async fn set_active(
        &self,
        user: &User,
        active: bool,
        client: &Client,
    ) -> Result<bool, AccountError> {
        let id = user.id;
        let kind = if active {
            Event::AccountActivated
        } else {
            Event::AccountDeactivated
        };
        let event = Record::new(kind, Some(id), None, client);
        let (changed, event) = db::run(&self.core.pool, move |conn| {
            event.with(
                conn,
                |conn| users::set_active(conn, id, active),
                |changed| *changed,
            )
        })
        .await?;
        self.core.sessions.forget_user(id);
        event.iter().for_each(Record::log);
        Ok(changed)
    }

    pub async fn find_by_username(&self, username: String) -> Result<Option<User>, DbError> {
        db::run(&self.core.pool, move |conn| {
            users::find_by_username(conn, &username)
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<User>, DbError> {
        db::run(&self.core.pool, users::list).await
    }

    /// Best effort: a failed upgrade is logged and retried at the next login.
    async fn upgrade_hash(&self, user: &mut User, password: SecretString) {
        let upgraded = match self.core.hasher.rehash(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(user_id = user.id, %error, "could not re-hash a password");
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
                    user_id = user.id,
                    "upgraded a password hash to the configured cost"
                );
                user.password_hash = upgraded;
            }
            Err(error) => {
                tracing::warn!(user_id = user.id, %error, "could not store an upgraded hash")
            }
        }
    }
}

fn login_outcome(outcome: &'static str) {
    metrics::counter!("authd_logins_total", "outcome" => outcome).increment(1);
}

fn registration_outcome(outcome: &'static str) {
    metrics::counter!("authd_registrations_total", "outcome" => outcome).increment(1);
}

/// What a password check under the throttle found.
enum Verdict {
    Matched,
    Mismatched,
    Blocked(Blocked),
}

/// Why a transaction that writes a username or address rolled back.
enum Refused {
    Taken(Taken),
    Db(diesel::result::Error),
}

impl Refused {
    /// A taken name as an answer, a database error as an error.
    fn split<T>(result: Result<T, Refused>) -> diesel::QueryResult<Result<T, Taken>> {
        match result {
            Ok(done) => Ok(Ok(done)),
            Err(Refused::Taken(taken)) => Ok(Err(taken)),
            Err(Refused::Db(error)) => Err(error),
        }
    }
}

impl From<diesel::result::Error> for Refused {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
    }
}

/// The user a write of a username or address made (its event logged now
/// that it committed), or the taken names beside the other field errors.
fn written(
    result: Result<(User, Record), Taken>,
    mut errors: FieldErrors,
) -> Result<User, AccountError> {
    match result {
        Ok((user, event)) => {
            event.log();
            Ok(user)
        }
        Err(taken) => {
            note_taken(&mut errors, &taken);
            Err(AccountError::Invalid(errors))
        }
    }
}

fn note_taken(errors: &mut FieldErrors, taken: &Taken) {
    if taken.username {
        add_error(errors, "username", USERNAME_TAKEN);
    }
    if taken.email {
        add_error(errors, "email", EMAIL_TAKEN);
    }
}
