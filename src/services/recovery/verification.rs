//! Address confirmation: a link mailed at registration and at every
//! change of address, that proves the owner reads it.

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::configuration::Bucket;
use crate::configuration::Period;
use crate::db::email_tokens::{self, NewToken, Purpose, Supersede};
use crate::db::mail_outbox::QueuedMail;
use crate::db::users::{self, User};
use crate::db::{self};
use crate::domain::{Client, UserId};
use crate::services::audit::{self, Event, Record};
use crate::services::credentials::account_subject;
use crate::services::mail::{Composer, Links, Mail, spoken};
use crate::services::recovery::{Recovery, RecoveryError, VERIFY_MAIL, consume, tokens};
use crate::services::throttle::Counter;

impl Recovery {
    /// Queues a confirmation mail for `address`, the new or first address of
    /// `user_id`, in the caller's transaction (nothing when recovery is
    /// off). Call [`Recovery::wake`] once it has committed.
    pub fn queue_verification(
        &self,
        conn: &mut PgConnection,
        user_id: UserId,
        address: &str,
    ) -> QueryResult<()> {
        if !self.settings.enabled {
            return Ok(());
        }
        let expires_at = self.core.clock.now() + self.settings.verify_ttl.delta();
        let to = (Some(user_id), address);
        self.outbox.queue(conn, VERIFY_MAIL, to, None, expires_at)
    }

    /// Tells the mail worker that a mail queued in a committed transaction
    /// is waiting.
    pub fn wake(&self) {
        self.outbox.wake();
    }

    /// Marks the address a verification link went to as verified, using
    /// the link up (and the account's other confirmation links with it). A
    /// link for an address the account no longer has was voided when the
    /// address changed.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str, client: &Client) -> Result<(), RecoveryError> {
        self.available()?;
        let digest = tokens::digest_of(token).ok_or(RecoveryError::InvalidToken)?;
        let (client, now) = (client.clone(), self.core.clock.now());
        let verified = db::run(&self.core.pool, move |conn| {
            conn.transaction(|conn| {
                let Some((token, owner)) = consume(conn, &digest, Purpose::Verify, now)? else {
                    return Ok(None);
                };
                if owner.email != token.email {
                    return Ok(None);
                }
                let event = Record::new(Event::EmailVerified, Some(token.user_id), None, &client);
                let verify = |conn: &mut PgConnection| {
                    email_tokens::void_of(conn, token.user_id, Purpose::Verify)?;
                    users::mark_email_verified(conn, token.user_id, &token.email, now)
                };
                let (_, event) = event.with(conn, verify, |changed| *changed)?;
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

    /// Mails a new confirmation link to the user whose login was refused
    /// for an unverified address, at most once per
    /// [`Bucket::LoginVerificationMail`]'s window (ten minutes): true when
    /// one is on its way.
    pub async fn remail_on_refused_login(
        &self,
        user: &User,
        client: &Client,
    ) -> Result<bool, RecoveryError> {
        let key = account_subject(user);
        let counter = Counter::new(Bucket::LoginVerificationMail, key, &self.core.limits);
        if self.core.throttle.hit(&[counter]).await?.is_err() {
            return Ok(false);
        }
        match self.resend_verification(user, client).await {
            Ok(()) => Ok(true),
            Err(RecoveryError::Throttled(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Queues a new confirmation mail for the user's address, throttled
    /// per account (others' requests for the address do not count) and per
    /// client. Earlier links keep working: asking again never voids the
    /// link in a mail still on its way.
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    pub async fn resend_verification(
        &self,
        user: &User,
        client: &Client,
    ) -> Result<(), RecoveryError> {
        self.available()?;
        if user.email_verified_at.is_some() {
            return Err(RecoveryError::AlreadyVerified);
        }
        let counters = self.owner_counters(user, client);
        if let Err(blocked) = self.core.throttle.hit(&counters).await? {
            let event = Record::new(Event::RecoveryThrottled, Some(user.id), None, client);
            audit::record(&self.core.pool, event).await;
            return Err(RecoveryError::Throttled(blocked));
        }
        let (recovery, id, email) = (self.clone(), user.id, user.email.clone());
        db::run(&self.core.pool, move |conn| {
            recovery.queue_verification(conn, id, &email)
        })
        .await?;
        self.wake();
        Ok(())
    }

    pub(super) fn verify_mail(&self) -> VerifyMail {
        VerifyMail {
            links: self.links.clone(),
            path: self.settings.verify_path.clone(),
            ttl: self.settings.verify_ttl,
        }
    }
}

/// Makes a queued confirmation mail: to the address still to be verified
/// of the account it was queued for, with a new link beside any earlier
/// ones.
pub struct VerifyMail {
    links: Links,
    path: String,
    ttl: Period,
}

impl Composer for VerifyMail {
    fn compose(
        &self,
        conn: &mut PgConnection,
        queued: &QueuedMail,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Mail>> {
        let Some(id) = queued.user_id else {
            return Ok(None);
        };
        // Locked until the token is stored, as for a reset.
        let Some(user) = users::find_locked(conn, id)?.filter(|user| {
            user.is_active && user.email == queued.address && user.email_verified_at.is_none()
        }) else {
            return Ok(None);
        };
        let new = NewToken {
            user_id: user.id,
            purpose: Purpose::Verify,
            email: &user.email,
            requested_by: None,
            created_at: now,
            expires_at: now + self.ttl.delta(),
        };
        let token = tokens::issue(conn, &new, Supersede::Nothing)?;
        let link = self.links.page(&self.path, &token);
        Ok(Some(Mail {
            to: user.email,
            subject: "Confirm your e-mail address".into(),
            body: format!(
                "Please confirm that this address is yours by opening this link \
                 within {}:\n\n{link}\n\n\
                 If you did not create an account or change its address, ignore \
                 this mail.\n",
                spoken(self.ttl.std())
            ),
        }))
    }
}
