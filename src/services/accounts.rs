//! Accounts: registration and login, each with its throttle and its audit
//! trail, so that a handler only translates HTTP to a call here and back.

use diesel::Connection;
use secrecy::SecretString;

use crate::configuration::ThrottleSettings;
use crate::db::sessions::Session;
use crate::db::users::{self, NewUser, Taken, User};
use crate::db::{self, DbError, PgPool};
use crate::domain::{Client, Email, FieldErrors, LoginName, Password, Username, add_error};
use crate::services::audit::{self, Event, Record};
use crate::services::passwords::{HashError, PasswordHasher};
use crate::services::sessions::Sessions;
use crate::services::throttle::{
    Blocked, Counter, Reservation, Throttle, ThrottleError, client_key,
};

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

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the registration has invalid fields")]
    Invalid(FieldErrors),
    #[error("too many registrations from this address")]
    Throttled(Blocked),
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
    pool: PgPool,
    hasher: PasswordHasher,
    throttle: Throttle,
    sessions: Sessions,
    limits: ThrottleSettings,
}

impl Accounts {
    pub fn new(
        pool: PgPool,
        hasher: PasswordHasher,
        throttle: Throttle,
        sessions: Sessions,
        limits: ThrottleSettings,
    ) -> Self {
        Self {
            pool,
            hasher,
            throttle,
            sessions,
            limits,
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
    ) -> Result<User, RegisterError> {
        let counter = Counter {
            bucket: "register_ip",
            key: client_key(client.ip),
            limit: self.limits.register_per_ip,
            window: self.limits.register_window,
        };
        let typed = account.submitted_username.as_deref();
        if let Err(blocked) = self.throttle.hit(&[counter]).await? {
            let event = Record::new(Event::RegisterThrottled, None, typed, client);
            audit::record(&self.pool, event).await;
            return Err(RegisterError::Throttled(blocked));
        }
        let event = Record::new(Event::Register, None, typed, client);
        self.create(account, event).await
    }

    /// The pre-check of taken names also spares a hash for a doomed
    /// request; the unique indexes still decide races. The account and its
    /// `register` event are stored in one transaction.
    async fn create(&self, account: NewAccount, event: Record) -> Result<User, RegisterError> {
        let NewAccount {
            username,
            email,
            password,
            mut errors,
            ..
        } = account;
        if username.is_some() || email.is_some() {
            let (username, email) = (username.clone(), email.clone());
            let taken = db::run(&self.pool, move |conn| {
                users::taken(conn, username.as_ref(), email.as_ref())
            })
            .await?;
            note_taken(&mut errors, &taken);
        }
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(RegisterError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(RegisterError::Invalid(errors));
        }
        // Hash with no connection checked out: a slow hash must not hold the pool.
        let password_hash = self.hasher.hash(&password).await?;
        let inserted = db::run(&self.pool, move |conn| {
            // A taken name aborts the transaction: roll it back, and say which.
            let created = conn.transaction(|conn| {
                let new = NewUser {
                    username: username.as_str(),
                    email: email.as_str(),
                    password_hash: &password_hash,
                };
                let user = users::insert(conn, &new)?.map_err(Refused::Taken)?;
                let event = event.about(user.id);
                event.store(conn)?;
                Ok::<_, Refused>((user, event))
            });
            match created {
                Ok(created) => Ok(Ok(created)),
                Err(Refused::Taken(taken)) => Ok(Err(taken)),
                Err(Refused::Db(error)) => Err(error),
            }
        })
        .await?;
        match inserted {
            Ok((user, event)) => {
                event.log();
                Ok(user)
            }
            Err(taken) => {
                note_taken(&mut errors, &taken);
                Err(RegisterError::Invalid(errors))
            }
        }
    }

    /// Logs in: throttle check, password check, a new session, and the
    /// audit trail of whichever happened.
    ///
    /// Failed logins are counted per (account, client address) and per
    /// client address. The account is whichever the name reaches, however
    /// it is spelt (username or address, any case); a name that reaches
    /// none counts under its normal spelling. Each attempt is counted
    /// before its password check, and a success takes it back.
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
        let found = db::run(&self.pool, move |conn| users::find_by_login(conn, &lookup)).await?;
        let event = |event, user_id| Record::new(event, user_id, Some(&identifier), client);
        let audit = |event, user_id| {
            audit::record(
                &self.pool,
                Record::new(event, user_id, Some(&identifier), client),
            )
        };

        let ip = client_key(client.ip);
        let subject = match &found {
            Some(user) => format!("user:{}", user.id),
            None => format!("name:{}", name.canonical()),
        };
        let per_account = Counter {
            bucket: "login_account",
            key: format!("{}|{ip}", self.throttle.text_key(&subject)),
            limit: self.limits.login_per_identifier,
            window: self.limits.login_window,
        };
        let per_ip = Counter {
            bucket: "login_ip",
            key: ip,
            limit: self.limits.login_per_ip,
            window: self.limits.login_window,
        };
        let user_id = found.as_ref().map(|user| user.id);
        let attempt = match self.throttle.hit(&[per_account.clone(), per_ip]).await? {
            Ok(attempt) => attempt,
            Err(blocked) => {
                audit(Event::LoginThrottled, user_id).await;
                return Err(LoginError::Throttled(blocked));
            }
        };

        // Verify before looking at `found`, so unknown users cost a hash too.
        let hash = found.as_ref().map(|user| user.password_hash.clone());
        let matched = self.hasher.verify(password.clone(), hash).await?;
        let Some(mut user) = found.filter(|_| matched) else {
            // The attempt stays counted: failures are what the throttle counts.
            audit(Event::LoginFailure, user_id).await;
            return Err(LoginError::InvalidCredentials { user_id });
        };
        // The right password is no guess, even for a disabled account,
        // which is only revealed to someone who knows its password.
        self.forgive(&per_account, attempt).await?;
        if !user.is_active {
            audit(Event::LoginFailure, Some(user.id)).await;
            return Err(LoginError::Inactive { user_id: user.id });
        }
        if self.hasher.needs_upgrade(&user.password_hash) {
            self.upgrade_hash(&mut user, password).await;
        }
        let success = event(Event::LoginSuccess, Some(user.id));
        let session = self
            .sessions
            .start(user.id, remember, client.clone(), success)
            .await?;
        user.last_login_at = Some(session.created_at);
        Ok((user, session))
    }

    /// The password was right: this account's failures from this address
    /// are forgiven, and the attempt no longer counts against the address.
    async fn forgive(
        &self,
        per_account: &Counter,
        attempt: Reservation,
    ) -> Result<(), ThrottleError> {
        self.throttle.reset(per_account).await?;
        self.throttle.release(attempt).await
    }

    /// Best effort: a failed upgrade is logged and retried at the next login.
    async fn upgrade_hash(&self, user: &mut User, password: SecretString) {
        let upgraded = match self.hasher.rehash(password).await {
            Ok(hash) => hash,
            Err(error) => {
                tracing::warn!(user_id = user.id, %error, "could not re-hash a password");
                return;
            }
        };
        let (id, old, new) = (user.id, user.password_hash.clone(), upgraded.clone());
        match db::run(&self.pool, move |conn| {
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

/// Why a registration's transaction rolled back.
enum Refused {
    Taken(Taken),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Refused {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
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
