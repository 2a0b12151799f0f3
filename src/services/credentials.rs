//! Checking a password under the login throttle: for a login, and for the
//! current password asked again before a change to the account, so that
//! neither is a side door for guessing the other.

use std::time::Duration;

use secrecy::SecretString;

use crate::configuration::Bucket;
use crate::db::DbError;
use crate::db::users::User;
use crate::domain::{AuthMethod, Client, PasswordHash, UserId};
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
    /// The account has a second factor, and no code was sent.
    #[error("a code from the second factor is required")]
    CodeRequired,
    #[error("the code is wrong")]
    WrongCode,
    #[error("too many failed attempts")]
    Throttled(Blocked),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Db(#[from] DbError),
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
    /// back when it does (or when the check itself failed: no verdict, no
    /// failure), and then, if `forgive`, the account's failures from this
    /// address are forgiven. (Not while a second step is owed: a password
    /// that is known must not wipe out the count of wrong codes.) Without a
    /// hash (no such account) it costs a hash all the same.
    pub async fn check_password<E: From<ThrottleError> + From<HashError>>(
        &self,
        subject: &str,
        client: &Client,
        candidate: SecretString,
        hash: Option<PasswordHash>,
        forgive: bool,
    ) -> Result<Verdict, E> {
        let Some(_slot) = self.in_flight.enter(client_key(client.ip)) else {
            return Ok(Verdict::Blocked(Blocked {
                retry_after: IN_FLIGHT_RETRY,
            }));
        };
        self.throttled(
            subject,
            client,
            forgive,
            self.hasher.verify(candidate, hash),
        )
        .await
    }

    /// A second-factor code (TOTP or recovery code) under the same throttle
    /// as the password: wrong codes count as failed logins of the account,
    /// across tokens and instances. A right one is used up.
    pub async fn check_code<E: From<ThrottleError> + From<DbError>>(
        &self,
        user_id: UserId,
        client: &Client,
        typed: &str,
    ) -> Result<CodeVerdict, E> {
        let subject = account_key(user_id);
        let mut method = None;
        let redeem = async {
            method = self.factors.redeem(user_id, typed).await?;
            Ok::<_, DbError>(method.is_some())
        };
        Ok(
            match self
                .throttled::<E, DbError>(&subject, client, true, redeem)
                .await?
            {
                Verdict::Matched => method.map_or(CodeVerdict::Wrong, CodeVerdict::Right),
                Verdict::Mismatched => CodeVerdict::Wrong,
                Verdict::Blocked(blocked) => CodeVerdict::Blocked(blocked),
            },
        )
    }

    /// `check` under the login throttle's counters for `subject`.
    pub(crate) async fn throttled<E: From<ThrottleError> + From<C>, C>(
        &self,
        subject: &str,
        client: &Client,
        forgive: bool,
        check: impl Future<Output = Result<bool, C>>,
    ) -> Result<Verdict, E> {
        let counters = self.password_counters(subject, client);
        let attempt = match self.throttle.begin(&counters).await? {
            Ok(attempt) => attempt,
            Err(blocked) => return Ok(Verdict::Blocked(blocked)),
        };
        match check.await {
            Ok(true) => {
                self.throttle.succeeded(attempt).await?;
                if forgive {
                    self.throttle.reset(&counters[0]).await?;
                }
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

    /// Who is asking, proved again before a change to the account: the
    /// current password, checked as a login's is, against the same counters
    /// and audited as a login failure when wrong; and, for an account with
    /// a second factor when `code` is asked for (`Some`), a code from it.
    /// A missing code is refused before anything is checked.
    pub async fn confirm(
        &self,
        user: &User,
        password: SecretString,
        code: Option<Option<String>>,
        client: &Client,
    ) -> Result<(), ConfirmError> {
        let code = match code {
            Some(code) if user.totp_enabled => Some(code.ok_or(ConfirmError::CodeRequired)?),
            _ => None,
        };
        let hash = Some(user.password_hash.clone());
        let forgive = !user.totp_enabled;
        let subject = account_subject(user);
        let (kind, refused) = match self
            .check_password::<ConfirmError>(&subject, client, password, hash, forgive)
            .await?
        {
            Verdict::Matched => match code {
                None => return Ok(()),
                Some(code) => match self
                    .check_code::<ConfirmError>(user.id, client, &code)
                    .await?
                {
                    CodeVerdict::Right(_) => return Ok(()),
                    CodeVerdict::Wrong => (Event::MfaFailure, ConfirmError::WrongCode),
                    CodeVerdict::Blocked(blocked) => {
                        (Event::LoginThrottled, ConfirmError::Throttled(blocked))
                    }
                },
            },
            Verdict::Blocked(blocked) => (Event::LoginThrottled, ConfirmError::Throttled(blocked)),
            Verdict::Mismatched => (Event::LoginFailure, ConfirmError::WrongPassword),
        };
        let event = Record::new(kind, Some(user.id), Some(&user.username), client);
        audit::record(&self.pool, event).await;
        Err(refused)
    }
}

/// What a second-factor code check found.
pub enum CodeVerdict {
    Right(AuthMethod),
    Wrong,
    Blocked(Blocked),
}

/// How the throttle names an account, however its name was spelt.
pub fn account_subject(user: &User) -> String {
    account_key(user.id)
}

pub(crate) fn account_key(user_id: UserId) -> String {
    format!("user:{user_id}")
}
