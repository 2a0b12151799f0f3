//! A new account: parsed by the registration rules (the same for the API
//! and the command line), created with its audit event and its
//! confirmation mail, and, for the public, throttled.

use diesel::Connection;

use crate::configuration::Bucket;
use crate::db::users::{self, NewUser, User};
use crate::db::{self};
use crate::domain::{Client, Email, FieldErrors, Owner, Password, Username, parse_field};
use crate::services::accounts::{AccountError, Accounts, Refused, note_taken, written};
use crate::services::audit::{self, Event, Record};
use crate::services::credentials::IN_FLIGHT_RETRY;
use crate::services::throttle::{Blocked, Counter, client_key};

/// A registration as typed: the fields that parsed, and messages for those
/// that did not.
#[derive(Debug, Default)]
pub struct NewAccount {
    /// The username exactly as submitted, for the audit trail.
    pub submitted_username: Option<String>,
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub errors: FieldErrors,
}

impl NewAccount {
    /// Parses what was typed by the registration rules, every field's
    /// problems at once. A field not given (`None`) is left for the caller
    /// to report as missing.
    pub fn parse(username: Option<&str>, email: Option<&str>, password: Option<&str>) -> Self {
        let mut errors = FieldErrors::new();
        let parsed_username = parse_field(&mut errors, "username", username, Username::parse);
        let parsed_email = parse_field(&mut errors, "email", email, Email::parse);
        let owner = Owner { username, email };
        let password = parse_field(&mut errors, "password", password, |value| {
            Password::parse(value, owner)
        });
        Self {
            submitted_username: username.map(str::to_owned),
            username: parsed_username,
            email: parsed_email,
            password,
            errors,
        }
    }
}

impl Accounts {
    /// Creates the account, or reports every problem with it at once, taken
    /// names included (as a form would). Attempts are limited per client
    /// address, valid or not.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        account: NewAccount,
        client: &Client,
    ) -> Result<User, AccountError> {
        let key = client_key(client.ip);
        let typed = account.submitted_username.as_deref();
        // A registration hashes a password: it takes its place among the
        // client's checks in flight.
        let slot = self.core.in_flight.enter(key.clone());
        let counter = Counter::new(Bucket::Registration, key, &self.core.limits);
        let hit = match slot {
            Some(_) => self.core.throttle.hit(&[counter]).await?,
            None => Err(Blocked {
                retry_after: IN_FLIGHT_RETRY,
            }),
        };
        if let Err(blocked) = hit {
            registration_outcome("throttled");
            let event = Record::new(Event::RegisterThrottled, None, typed, client);
            audit::record(&self.core.pool, event).await;
            return Err(AccountError::Throttled(blocked));
        }
        let created = self.create(account, client).await;
        drop(slot);
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
        let recovery = self.recovery.clone();
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
                recovery.queue_verification(conn, user.id, &user.email)?;
                Ok::<_, Refused>((user, event))
            });
            Refused::split(created)
        })
        .await?;
        self.recovery.wake();
        written(inserted, errors)
    }
}

fn registration_outcome(outcome: &'static str) {
    metrics::counter!("authd_registrations_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use proptest::option::of;
    use proptest::prelude::*;

    use super::NewAccount;

    proptest! {
        /// Whatever the fields hold, parsing reports or accepts; an account
        /// with every field parsed has no errors, and the other way round.
        #[test]
        fn parsing_never_panics(
            username in any::<String>(),
            email in any::<String>(),
            password in of(any::<String>()),
        ) {
            let account = NewAccount::parse(Some(&username), Some(&email), password.as_deref());
            let complete = account.username.is_some() && account.email.is_some() && account.password.is_some();
            prop_assert!(complete || !account.errors.is_empty() || password.is_none());
            prop_assert!(!complete || account.errors.is_empty());
        }
    }
}
