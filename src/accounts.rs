//! Accounts: registration and the password check behind login.

use crate::db::{self, PgPool, StoreError};
use crate::domain::{Email, Password, Username};
use crate::error::FieldErrors;
use crate::models::User;
use crate::models::user::{self, NewUser, Taken};
use crate::passwords::{HashError, Passwords};

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
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account disabled")]
    Inactive,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user whose username or email is `identifier` and whose password is
/// `password`. Unknown users and wrong passwords fail the same way, after
/// the same amount of bcrypt work. The active flag is only revealed to
/// someone who knows the password.
pub async fn check_password(
    pool: &PgPool,
    passwords: &Passwords,
    identifier: String,
    password: String,
) -> Result<User, LoginError> {
    let found = db::run(pool, move |conn| user::find_by_login(conn, &identifier)).await?;
    let hash = found.as_ref().map(|user| user.password_hash.clone());
    // Verify before looking at `found`, so unknown users cost a hash too.
    let matched = passwords.verify(password, hash).await;
    match found {
        Some(user) if matched => {
            if user.is_active {
                Ok(user)
            } else {
                Err(LoginError::Inactive)
            }
        }
        _ => Err(LoginError::InvalidCredentials),
    }
}
