//! Changes to an existing account: its password, its username and address,
//! its deletion and (by an operator) whether it may log in. Each ends the
//! sessions it must, and is audited in its own transaction.

use diesel::{Connection, PgConnection};
use secrecy::{ExposeSecret, SecretString};

use crate::db::sessions::{self, Session};
use crate::db::users::{self, User};
use crate::db::{self};
use crate::domain::{Client, Email, FieldErrors, Password, SessionToken, Username};
use crate::services::accounts::{AccountError, Accounts, Refused, note_taken, written};
use crate::services::audit::{Event, Record};
use crate::services::notices::Notice;

/// A change to an account, as parsed from a request: the username and
/// address to set (either may stay as it is), what did not parse, and the
/// current password that confirms it (with a second factor's code, for an
/// account that has one, when the address changes).
#[derive(Debug)]
pub struct ProfileChange {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub errors: FieldErrors,
    pub current_password: SecretString,
    /// A recovery code is a standing secret: never printed.
    pub code: Option<SecretString>,
}

impl Accounts {
    /// Changes the password, confirmed by the current one (and a code, for
    /// an account with a second factor), and ends every other session of
    /// the user; `keep` (the session asking) stays valid.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn change_password(
        &self,
        user: &User,
        keep: &Session,
        current: SecretString,
        code: Option<String>,
        new: Password,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.core.confirm(user, current, Some(code), client).await?;
        self.set_password(user, new, Some(keep.token.clone()), client)
            .await
    }

    /// Sets the password and ends every session of the user but `keep`.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn set_password(
        &self,
        user: &User,
        new: Password,
        keep: Option<SessionToken>,
        client: &Client,
    ) -> Result<(), AccountError> {
        let hash = self.core.hasher.hash(&new).await?;
        let (id, event) = (
            user.id,
            Record::new(Event::PasswordChanged, Some(user.id), None, client),
        );
        let now = self.core.clock.now();
        let notices = self.core.notices.clone();
        let (ended, event) = db::run(&self.core.pool, move |conn| {
            let change = |conn: &mut PgConnection| {
                users::set_password_hash(conn, id, &hash)?;
                notices.queue(conn, Notice::PasswordChanged, id)?;
                let keep: Vec<SessionToken> = keep.into_iter().collect();
                sessions::revoke_all_of(conn, id, &keep, now)
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
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
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
            code,
        } = change;
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        // A new address is a new way to reset the password: as sensitive
        // as the password itself.
        let step_up = email
            .is_some()
            .then(|| code.map(|code| code.expose_secret().to_owned()));
        self.core
            .confirm(user, current_password, step_up, client)
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
        let (recovery, old_email) = (self.recovery.clone(), user.email.clone());
        let notices = self.core.notices.clone();
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
                // The old address hears of it: if someone else made the
                // change, the owner still reads the old one.
                if user.email != old_email {
                    recovery.queue_verification(conn, id, &user.email)?;
                    notices.queue_to(conn, Notice::EmailChanged, id, &old_email)?;
                }
                Ok::<_, Refused>((user, event))
            });
            Refused::split(updated)
        })
        .await?;
        self.core.sessions.forget_user(id);
        self.recovery.wake();
        written(updated, errors)
    }

    /// Deletes the account, confirmed by its password (and a code, for an
    /// account with a second factor); its sessions go with it, so every
    /// cookie and token of it stops working at once.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn delete_account(
        &self,
        user: &User,
        password: SecretString,
        code: Option<String>,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.core
            .confirm(user, password, Some(code), client)
            .await?;
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
}
