//! Password resets: a link mailed to whoever asks with an account's
//! address, that sets a new password without the old one, once.

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::configuration::Period;
use crate::db::email_tokens::{NewToken, Purpose, Supersede};
use crate::db::mail_outbox::QueuedMail;
use crate::db::users::{self, User};
use crate::db::{self, sessions};
use crate::domain::{Client, Email, Password};
use crate::services::audit::{self, Event, Record};
use crate::services::mail::{Composer, Links, Mail, spoken};
use crate::services::notices::Notice;
use crate::services::recovery::{RESET_MAIL, Recovery, RecoveryError, consume, tokens};

/// A reset link that was valid when opened: whose password it sets. The new
/// password is checked against the policy for this user before it is used.
#[derive(Debug)]
pub struct OpenedReset {
    pub user: User,
    digest: [u8; 32],
}

impl Recovery {
    /// Asks for a reset link for `email`. The same work whether or not an
    /// account has the address: one throttle check and one queued row,
    /// which the worker resolves later. So the answer, and its timing, says
    /// nothing about who has an account.
    #[tracing::instrument(skip_all)]
    pub async fn request_reset(&self, email: Email, client: &Client) -> Result<(), RecoveryError> {
        self.available()?;
        let counters = self.reset_counters(email.as_str(), client);
        let event = |kind| Record::new(kind, None, Some(email.as_str()), client);
        if let Err(blocked) = self.core.throttle.hit(&counters).await? {
            audit::record(&self.core.pool, event(Event::RecoveryThrottled)).await;
            return Err(RecoveryError::Throttled(blocked));
        }
        let (outbox, event) = (self.outbox.clone(), event(Event::PasswordResetRequested));
        let (address, requested_by) = (email.as_str().to_owned(), client.network());
        let expires_at = self.core.clock.now() + self.settings.reset_ttl.delta();
        let (_, event) = db::run(&self.core.pool, move |conn| {
            let queue = |conn: &mut PgConnection| {
                let to = (None, address.as_str());
                outbox.queue(conn, RESET_MAIL, to, requested_by.as_deref(), expires_at)
            };
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
        let now = self.core.clock.now();
        let user = db::run(
            &self.core.pool,
            move |conn| match db::email_tokens::find_live(conn, &digest, Purpose::Reset, now)? {
                Some(token) => users::find(conn, token.user_id),
                None => Ok(None),
            },
        )
        .await?;
        match user {
            Some(user) if user.is_active => Ok(OpenedReset { user, digest }),
            _ => Err(RecoveryError::InvalidToken),
        }
    }

    /// Sets the new password with an opened link, using it up. Every
    /// session of the user ends, and the address counts as verified: the
    /// link reached it. Of two requests racing with one link, one wins.
    #[tracing::instrument(skip_all, fields(user_id = %opened.user.id))]
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
        let now = self.core.clock.now();
        let notices = self.core.notices.clone();
        let (ended, event) = db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
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
                notices.queue(conn, Notice::PasswordReset, id)?;
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

    /// A reset link for support staff to hand over, instead of a mail: it
    /// supersedes every earlier reset link of the user, and is audited.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn reset_link(&self, user: &User, client: &Client) -> Result<String, RecoveryError> {
        let (id, email, ttl) = (user.id, user.email.clone(), self.settings.reset_ttl);
        let event = Record::new(Event::ResetLinkIssued, Some(id), None, client);
        let now = self.core.clock.now();
        let (token, event) = db::run(&self.core.pool, move |conn| {
            let issue = |conn: &mut PgConnection| {
                let new = NewToken {
                    user_id: id,
                    purpose: Purpose::Reset,
                    email: &email,
                    requested_by: None,
                    created_at: now,
                    expires_at: now + ttl.delta(),
                };
                tokens::issue(conn, &new, Supersede::All)
            };
            event.with(conn, issue, |_| true)
        })
        .await?;
        event.iter().for_each(Record::log);
        Ok(self.links.page(&self.settings.reset_path, &token))
    }

    pub(super) fn reset_mail(&self) -> ResetMail {
        ResetMail {
            links: self.links.clone(),
            path: self.settings.reset_path.clone(),
            ttl: self.settings.reset_ttl,
        }
    }
}

/// Makes a queued reset mail: to the active account with the address
/// asked for, with a new link. It supersedes the links asked for from the
/// same client network only: a flood of requests from elsewhere cannot
/// void the link the account's owner is about to use.
pub struct ResetMail {
    links: Links,
    path: String,
    ttl: Period,
}

impl Composer for ResetMail {
    fn compose(
        &self,
        conn: &mut PgConnection,
        queued: &QueuedMail,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Mail>> {
        // The account's row stays locked until the token is stored: a change
        // of address or password made meanwhile waits, and then voids it.
        let Some(user) =
            users::find_by_email_locked(conn, &queued.address)?.filter(|user| user.is_active)
        else {
            return Ok(None);
        };
        let new = NewToken {
            user_id: user.id,
            purpose: Purpose::Reset,
            email: &user.email,
            requested_by: queued.requested_by.as_deref(),
            created_at: now,
            expires_at: now + self.ttl.delta(),
        };
        let token = tokens::issue(conn, &new, Supersede::SameRequester)?;
        let link = self.links.page(&self.path, &token);
        Ok(Some(Mail {
            to: user.email,
            subject: "Reset your password".into(),
            body: format!(
                "Someone, hopefully you, asked to reset the password of the account \
                 with this address.\n\n\
                 To choose a new password, open this link within {}:\n\n{link}\n\n\
                 It works once. Every device logged in to the account will be logged \
                 out.\n\n\
                 If you did not ask for this, ignore this mail: your password stays \
                 as it is.\n",
                spoken(self.ttl.std())
            ),
        }))
    }
}
