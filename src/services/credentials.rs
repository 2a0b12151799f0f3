//! Checking a password under the login throttle: for a login, and for the
//! current password asked again before a change to the account, so that
//! neither is a side door for guessing the other.

use std::time::Duration;

use secrecy::SecretString;

use crate::configuration::Bucket;
use crate::db::users::User;
use crate::domain::{Client, PasswordHash};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::passwords::HashError;
use crate::services::throttle::{Blocked, Counter, ThrottleError, client_key};

/// How long a client with too many checks in flight is told to wait.
pub const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// What a password check under the throttle found.
pub enum Verdict {
    Matched,
    Mismatched,
    Blocked(Blocked),
}

/// The current password, asked again: wrong, or the checks refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many failed attempts")]
    Throttled(Blocked),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl Core {
    /// What a password check counts against: failures per (account or
    /// name, client address), and per client address.
    fn password_counters(&self, subject: &str, client: &Client) -> [Counter; 2] {
        let ip = client_key(client.ip);
        [
            Counter::new(
                Bucket::LoginAccount,
                format!("{}|{ip}", self.throttle.text_key(subject)),
                &self.limits,
            ),
            Counter::new(Bucket::LoginIp, ip, &self.limits),
        ]
    }

    /// A password check under the login throttle: an attempt that waits
    /// while attempts in flight could reach a limit, and is refused once
    /// failures have; a failure when the password does not match; taken
    /// back, and the account's failures from this address forgiven, when it
    /// does (or when the check itself failed: no verdict, no failure).
    /// Without a hash (no such account) it costs a hash all the same.
    pub async fn check_password<E: From<ThrottleError> + From<HashError>>(
        &self,
        subject: &str,
        client: &Client,
        candidate: SecretString,
        hash: Option<PasswordHash>,
    ) -> Result<Verdict, E> {
        let Some(_slot) = self.in_flight.enter(client_key(client.ip)) else {
            return Ok(Verdict::Blocked(Blocked {
                retry_after: IN_FLIGHT_RETRY,
            }));
        };
        let counters = self.password_counters(subject, client);
        let attempt = match self.throttle.begin(&counters).await? {
            Ok(attempt) => attempt,
            Err(blocked) => return Ok(Verdict::Blocked(blocked)),
        };
        match self.hasher.verify(candidate, hash).await {
            Ok(true) => {
                self.throttle.succeeded(attempt).await?;
                self.throttle.reset(&counters[0]).await?;
                Ok(Verdict::Matched)
            }
            Ok(false) => {
                self.throttle.failed(attempt, &counters).await?;
                Ok(Verdict::Mismatched)
            }
            Err(error) => {
                self.throttle.succeeded(attempt).await?;
                Err(error.into())
            }
        }
    }

    /// The current password, asked again before a change to the account:
    /// checked as a login's is, against the same counters, and audited as a
    /// login failure when wrong.
    pub async fn confirm_password(
        &self,
        user: &User,
        password: SecretString,
        client: &Client,
    ) -> Result<(), ConfirmError> {
        let hash = Some(user.password_hash.clone());
        let (kind, refused) = match self
            .check_password::<ConfirmError>(&account_subject(user), client, password, hash)
            .await?
        {
            Verdict::Matched => return Ok(()),
            Verdict::Blocked(blocked) => (Event::LoginThrottled, ConfirmError::Throttled(blocked)),
            Verdict::Mismatched => (Event::LoginFailure, ConfirmError::WrongPassword),
        };
        let event = Record::new(kind, Some(user.id), Some(&user.username), client);
        audit::record(&self.pool, event).await;
        Err(refused)
    }
}

/// How the throttle names an account, however its name was spelt.
pub fn account_subject(user: &User) -> String {
    format!("user:{}", user.id)
}
