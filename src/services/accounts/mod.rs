//! Accounts: registration ([`registration`]) and changes to an account
//! ([`changes`]), each with its throttle and its audit trail, so that a
//! handler or a command only translates its input to a call here and back.
//! Logging in is [`login`](crate::services::login).

pub mod changes;
pub mod registration;

use diesel::result::Error as DieselError;

use crate::db::users::{self, Taken, User};
use crate::db::{self, DbError};
use crate::domain::{FieldErrors, add_error};
use crate::services::Core;
use crate::services::audit::Record;
use crate::services::credentials::ConfirmError;
use crate::services::passwords::HashError;
use crate::services::recovery::Recovery;
use crate::services::throttle::{Blocked, ThrottleError};

pub use changes::ProfileChange;
pub use registration::NewAccount;

pub const USERNAME_TAKEN: &str = "Please use a different username.";
pub const EMAIL_TAKEN: &str = "Please use a different email address.";

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
    /// The account has a second factor and the change needs a code from
    /// it: none was sent, or a wrong one.
    #[error("a code from the second factor is required")]
    CodeRequired,
    #[error("the code is wrong")]
    WrongCode,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<ConfirmError> for AccountError {
    fn from(error: ConfirmError) -> Self {
        match error {
            ConfirmError::WrongPassword => Self::WrongPassword,
            ConfirmError::Throttled(blocked) => Self::Throttled(blocked),
            ConfirmError::Throttle(error) => Self::Throttle(error),
            ConfirmError::Hash(error) => Self::Hash(error),
            ConfirmError::CodeRequired => Self::CodeRequired,
            ConfirmError::WrongCode => Self::WrongCode,
            ConfirmError::Db(error) => Self::Db(error),
        }
    }
}

#[derive(Clone)]
pub struct Accounts {
    core: Core,
    /// Confirmation mails, queued with the change that needs one.
    recovery: Recovery,
}

impl Accounts {
    pub fn new(core: Core, recovery: Recovery) -> Self {
        Self { core, recovery }
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
}

/// Why a transaction that writes a username or address rolled back.
enum Refused {
    Taken(Taken),
    Db(DieselError),
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

impl From<DieselError> for Refused {
    fn from(error: DieselError) -> Self {
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
