//! Account recovery by e-mail: password resets for whoever reads an
//! account's address, and proof that an address is its owner's. As careful
//! as login: asking for a reset says nothing about whether an account
//! exists, links carry single-use tokens, and every mail is throttled.

pub mod mail;
pub mod outbox;
pub mod tokens;

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::db::email_tokens::{self, EmailToken, Purpose};
use crate::db::users::{self, User};
use crate::db::{self, DbError, sessions};
use crate::domain::{Client, Email, Password};
use crate::services::Core;
use crate::services::audit::{self, Event, Record};
use crate::services::passwords::HashError;
use crate::services::recovery::mail::Links;
use crate::services::recovery::outbox::Outbox;
use crate::services::throttle::{Blocked, Counter, ThrottleError, client_key};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("account recovery is turned off")]
    Disabled,
    /// Unknown, used, expired, superseded or of the other purpose: the
    /// client is told no more than that.
    #[error("the link is not valid")]
    InvalidToken,
    #[error("too many recovery mails asked for")]
    Throttled(Blocked),
    #[error("the address is verified already")]
    AlreadyVerified,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A reset link that was valid when opened: whose password it sets. The new
/// password is checked against the policy for this user before it is used.
#[derive(Debug)]
pub struct OpenedReset {
    pub user: User,
    digest: [u8; 32],
}

#[derive(Clone)]
pub struct Recovery {
    core: Core,
    outbox: Outbox,
    links: Links,
}

impl Recovery {
    pub fn new(core: Core, outbox: Outbox, links: Links) -> Self {
        Self {
            core,
            outbox,
            links,
        }
    }

    /// Refused when recovery is turned off (`ACCOUNT_RECOVERY=false`).
    pub fn available(&self) -> Result<(), RecoveryError> {
        if self.outbox.enabled() {
            Ok(())
        } else {
            Err(RecoveryError::Disabled)
        }
    }

    /// What a recovery mail counts against: mails per address (typed, not
    /// looked up, so a limit says nothing about an account) and per client.
    fn mail_counters(&self, address: &str, client: &Client) -> [Counter; 2] {
        [
            Counter {
                bucket: "recovery_address",
                key: self.core.throttle.text_key(address),
                limit: self.core.limits.recovery_per_address,
                window: self.core.limits.recovery_window,
            },
            Counter {
                bucket: "recovery_ip",
                key: client_key(client.ip),
                limit: self.core.limits.recovery_per_ip,
                window: self.core.limits.recovery_window,
            },
        ]
    }

    /// Asks for a reset link for `email`. The same work whether or not an
    /// account has the address: one throttle check and one queued row,
    /// which the worker resolves later. So the answer, and its timing, says
    /// nothing about who has an account.
    #[tracing::instrument(skip_all)]
    pub async fn request_reset(&self, email: Email, client: &Client) -> Result<(), RecoveryError> {
        self.available()?;
        let counters = self.mail_counters(email.as_str(), client);
        let event = |kind| Record::new(kind, None, Some(email.as_str()), client);
        if let Err(blocked) = self.core.throttle.hit(&counters).await? {
            audit::record(&self.core.pool, event(Event::RecoveryThrottled)).await;
            return Err(RecoveryError::Throttled(blocked));
        }
        let (outbox, event) = (self.outbox.clone(), event(Event::PasswordResetRequested));
        let address = email.as_str().to_owned();
        let (_, event) = db::run(&self.core.pool, move |conn| {
            let queue =
                |conn: &mut PgConnection| outbox.queue(conn, Purpose::Reset, None, &address);
            event.with(conn, queue, |_| true)
        })
        .await?;
        event.iter().for_each(Record::log);
        self.outbox.wake();
        Ok(())
    }

    /// Opens a reset link: the user whose password it would set, if the
    /// token is live and the account active. Nothing is used up yet.
    pub async fn open_reset(&self, token: &str) -> Result<OpenedReset, RecoveryError> {
        self.available()?;
        let digest = tokens::digest_of(token).ok_or(RecoveryError::InvalidToken)?;
        let user = db::run(&self.core.pool, move |conn| match email_tokens::find_live(
            conn,
            &digest,
            Purpose::Reset,
            Utc::now(),
        )? {
            Some(token) => users::find(conn, token.user_id),
            None => Ok(None),
        })
        .await?;
        match user {
            Some(user) if user.is_active => Ok(OpenedReset { user, digest }),
            _ => Err(RecoveryError::InvalidToken),
        }
    }

    /// Sets the new password with an opened link, using it up. Every
    /// session of the user ends, and the address counts as verified: the
    /// link reached it. Of two requests racing with one link, one wins.
    #[tracing::instrument(skip_all, fields(user_id = opened.user.id))]
    pub async fn reset_password(
        &self,
        opened: OpenedReset,
        new: Password,
        client: &Client,
    ) -> Result<(), RecoveryError> {
        let hash = self.core.hasher.hash(&new).await?;
        let OpenedReset { user, digest } = opened;
        let id = user.id;
        let event = Record::new(Event::PasswordReset, Some(id), None, client);
        let (ended, event) = db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                let now = Utc::now();
                // Still the account's address, and the account still active:
                // a link mailed to an address given up since must not work.
                let Some((token, owner)) = consume(conn, &digest, Purpose::Reset, now)? else {
                    return Ok((None, None));
                };
                if !(owner.is_active && owner.email == token.email) {
                    return Ok((None, None));
                }
                users::mark_email_verified(conn, id, &token.email, now)?;
                users::set_password_hash(conn, id, &hash)?;
                let ended = sessions::revoke_all_of(conn, id, &[], now)?;
                event.store(conn)?;
                Ok::<_, diesel::result::Error>((Some(ended), Some(event)))
            })
        })
        .await?;
        let Some(ended) = ended else {
            return Err(RecoveryError::InvalidToken);
        };
        self.core.sessions.revoked(id, ended);
        event.iter().for_each(Record::log);
        Ok(())
    }

    /// Marks the address a verification link went to as verified, using
    /// the link up. A link for an address the account no longer has was
    /// voided when the address changed.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str, client: &Client) -> Result<(), RecoveryError> {
        self.available()?;
        let digest = tokens::digest_of(token).ok_or(RecoveryError::InvalidToken)?;
        let client = client.clone();
        let verified = db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                let now = Utc::now();
                let Some((token, owner)) = consume(conn, &digest, Purpose::Verify, now)? else {
                    return Ok(None);
                };
                if owner.email != token.email {
                    return Ok(None);
                }
                let event = Record::new(Event::EmailVerified, Some(token.user_id), None, &client);
                let (_, event) = event.with(
                    conn,
                    |conn| users::mark_email_verified(conn, token.user_id, &token.email, now),
                    |changed| *changed,
                )?;
                Ok::<_, diesel::result::Error>(Some((token.user_id, event)))
            })
        })
        .await?;
        let Some((user_id, event)) = verified else {
            return Err(RecoveryError::InvalidToken);
        };
        // This instance's cached sessions show the change at once (others
        // hear of it from Postgres).
        self.core.sessions.forget_user(user_id);
        event.iter().for_each(Record::log);
        Ok(())
    }

    /// Queues a new verification mail for the user's address, throttled as
    /// every recovery mail is.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn resend_verification(
        &self,
        user: &User,
        client: &Client,
    ) -> Result<(), RecoveryError> {
        self.available()?;
        if user.email_verified_at.is_some() {
            return Err(RecoveryError::AlreadyVerified);
        }
        let counters = self.mail_counters(&user.email, client);
        if let Err(blocked) = self.core.throttle.hit(&counters).await? {
            let event = Record::new(Event::RecoveryThrottled, Some(user.id), None, client);
            audit::record(&self.core.pool, event).await;
            return Err(RecoveryError::Throttled(blocked));
        }
        let (outbox, id, email) = (self.outbox.clone(), user.id, user.email.clone());
        db::run(&self.core.pool, move |conn| {
            outbox.queue(conn, Purpose::Verify, Some(id), &email)
        })
        .await?;
        self.outbox.wake();
        Ok(())
    }

    /// A reset link for support staff to hand over, instead of a mail: it
    /// supersedes the user's earlier reset links, and is audited.
    #[tracing::instrument(skip_all, fields(user_id = user.id))]
    pub async fn reset_link(&self, user: &User, client: &Client) -> Result<String, RecoveryError> {
        let (id, email, ttl) = (user.id, user.email.clone(), self.outbox.ttl(Purpose::Reset));
        let event = Record::new(Event::ResetLinkIssued, Some(id), None, client);
        let (token, event) = db::run(&self.core.pool, move |conn| {
            let issue = |conn: &mut PgConnection| {
                tokens::issue(conn, id, &email, Purpose::Reset, ttl, Utc::now())
            };
            event.with(conn, issue, |_| true)
        })
        .await?;
        event.iter().for_each(Record::log);
        Ok(self.links.link(Purpose::Reset, &token))
    }
}

/// Uses a live token up, its owner's row locked first: the order every
/// account change takes (the user, then its tokens, by trigger or by
/// `set_password_hash`), so a reset racing an address change waits rather
/// than deadlocks. `None` when the token is not live, or was taken by a
/// request racing this one.
fn consume(
    conn: &mut PgConnection,
    digest: &[u8],
    purpose: Purpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<(EmailToken, User)>> {
    let Some(token) = email_tokens::find_live(conn, digest, purpose, now)? else {
        return Ok(None);
    };
    let Some(owner) = users::find_locked(conn, token.user_id)? else {
        return Ok(None);
    };
    Ok(email_tokens::consume(conn, digest, purpose, now)?.map(|token| (token, owner)))
}
