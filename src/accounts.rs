//! Accounts: registration and the password check behind login.

use crate::audit::{self, Event};
use crate::client::Client;
use crate::db::{self, PgPool, StoreError};
use crate::domain::{Email, Password, Username};
use crate::error::FieldErrors;
use crate::models::user::{self, NewUser, Taken};
use crate::models::{Session, User};
use crate::passwords::{HashError, Passwords};
use crate::sessions;
use crate::state::AppState;
use crate::throttle::Blocked;

/// A registration as parsed from a request: the fields that parsed, and
/// messages for those that did not.
#[derive(Debug, Default)]
pub struct Draft {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub errors: FieldErrors,
}

pub const USERNAME_TAKEN: &str = "Please use a different username.";
pub const EMAIL_TAKEN: &str = "Please use a different email address.";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the registration has invalid fields")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

fn note_taken(errors: &mut FieldErrors, taken: &Taken) {
    for (is_taken, field, message) in [
        (taken.username, "username", USERNAME_TAKEN),
        (taken.email, "email", EMAIL_TAKEN),
    ] {
        if is_taken {
            errors.entry(field.into()).or_default().push(message.into());
        }
    }
}

/// Creates the account, or reports every problem with the draft at once,
/// taken names included (as a form would). The pre-check also spares a
/// hash for a doomed request; the unique indexes still decide races.
pub async fn register(
    pool: &PgPool,
    passwords: &Passwords,
    draft: Draft,
) -> Result<User, RegisterError> {
    let Draft {
        username,
        email,
        password,
        mut errors,
    } = draft;
    if username.is_some() || email.is_some() {
        let (username, email) = (username.clone(), email.clone());
        let taken = db::run(pool, move |conn| {
            user::taken(conn, username.as_ref(), email.as_ref())
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
    let password_hash = passwords.hash(password).await?;
    let new_user = move |conn: &mut _| {
        user::insert(
            conn,
            &NewUser {
                username: username.as_str(),
                email: email.as_str(),
                password_hash: &password_hash,
            },
        )
    };
    db::run(pool, new_user).await?.map_err(|taken| {
        note_taken(&mut errors, &taken);
        RegisterError::Invalid(errors)
    })
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
    Store(#[from] StoreError),
}

/// Logs in: throttle check, password check, a new session, and the audit
/// trail of whichever happened.
pub async fn log_in(
    state: &AppState,
    identifier: String,
    password: String,
    remember: bool,
    client: &Client,
) -> Result<(User, Session), LoginError> {
    let audit =
        |event, user_id| audit::record(&state.pool, event, user_id, Some(&identifier), client);
    let attempt = match state.throttle.begin_login(&identifier, client.ip).await? {
        Ok(attempt) => attempt,
        Err(blocked) => {
            audit(Event::LoginThrottled, None).await;
            return Err(LoginError::Throttled(blocked));
        }
    };
    let checked = check_password(&state.pool, &state.passwords, identifier.clone(), password).await;
    let mut user = match checked {
        Ok(user) => user,
        // The attempt stays counted: failures are what the throttle counts.
        Err(LoginError::InvalidCredentials { user_id }) => {
            audit(Event::LoginFailure, user_id).await;
            return Err(LoginError::InvalidCredentials { user_id });
        }
        // The right password is no guess, even for a disabled account.
        Err(LoginError::Inactive { user_id }) => {
            state.throttle.login_succeeded(attempt).await?;
            audit(Event::LoginFailure, Some(user_id)).await;
            return Err(LoginError::Inactive { user_id });
        }
        Err(error) => return Err(error),
    };
    state.throttle.login_succeeded(attempt).await?;
    let session = sessions::start(
        &state.pool,
        state.lifetimes,
        user.id,
        remember,
        client.clone(),
    )
    .await?;
    user.last_login_at = Some(session.created_at);
    audit(Event::LoginSuccess, Some(user.id)).await;
    Ok((user, session))
}

/// The user whose username or email is `identifier` and whose password is
/// `password`. Unknown users and wrong passwords fail the same way, after
/// the same amount of bcrypt work. The active flag is only revealed to
/// someone who knows the password. A hash made at a lower cost than
/// configured is upgraded on the way.
pub async fn check_password(
    pool: &PgPool,
    passwords: &Passwords,
    identifier: String,
    password: String,
) -> Result<User, LoginError> {
    let found = db::run(pool, move |conn| user::find_by_login(conn, &identifier)).await?;
    let hash = found.as_ref().map(|user| user.password_hash.clone());
    // Verify before looking at `found`, so unknown users cost a hash too.
    let matched = passwords.verify(password.clone(), hash).await;
    let Some(mut user) = found else {
        return Err(LoginError::InvalidCredentials { user_id: None });
    };
    if !matched {
        return Err(LoginError::InvalidCredentials {
            user_id: Some(user.id),
        });
    }
    if !user.is_active {
        return Err(LoginError::Inactive { user_id: user.id });
    }
    if passwords.needs_upgrade(&user.password_hash) {
        upgrade_hash(pool, passwords, &mut user, password).await;
    }
    Ok(user)
}

/// Best effort: a failed upgrade is logged and retried at the next login.
async fn upgrade_hash(pool: &PgPool, passwords: &Passwords, user: &mut User, password: String) {
    let upgraded = match passwords.rehash(password).await {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(user_id = user.id, %error, "could not re-hash a password");
            return;
        }
    };
    let (id, old, new) = (user.id, user.password_hash.clone(), upgraded.clone());
    match db::run(pool, move |conn| user::replace_hash(conn, id, &old, &new)).await {
        Ok(()) => {
            tracing::info!(
                user_id = user.id,
                "upgraded a password hash to the configured cost"
            );
            user.password_hash = upgraded;
        }
        Err(error) => tracing::warn!(user_id = user.id, %error, "could not store an upgraded hash"),
    }
}
