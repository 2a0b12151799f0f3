//! The outbox: mails queued in the transaction of the change that needs
//! them, and the worker, one in every instance, that delivers them.
//!
//! The worker takes one due mail at a time under a row lock (`FOR UPDATE
//! SKIP LOCKED`) held while it sends it: another instance skips that mail
//! instead of sending it too, and if the worker dies, Postgres releases the
//! lock with its connection, so the mail is due again at once. A mail
//! server outage only delays mail, with growing waits between attempts.
//! Delivery is at least once: a crash between the server accepting a mail
//! and the row's removal sends it again (with a new link that supersedes
//! the old).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::configuration::{Period, RecoverySettings};
use crate::db::email_tokens::Purpose;
use crate::db::mail_outbox::{self, QueuedMail};
use crate::db::{self, DbError, PgPool, users};
use crate::services::recovery::mail::{Links, MailError, Mailer, link_mail};
use crate::services::recovery::tokens;

/// How soon a mail queued by another instance is noticed (this instance's
/// own are taken at once).
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at one mail.
const MAX_BACKOFF_SECS: u64 = 600;

/// A wake-up call for the worker, that is not lost if it comes while the
/// worker is busy.
#[derive(Default)]
struct Signal {
    raised: Mutex<bool>,
    condvar: Condvar,
}

impl Signal {
    fn raise(&self) {
        if let Ok(mut raised) = self.raised.lock() {
            *raised = true;
            self.condvar.notify_one();
        }
    }

    /// Waits until raised or `timeout` passes, and lowers it.
    fn wait(&self, timeout: Duration) {
        let Ok(raised) = self.raised.lock() else {
            return;
        };
        if let Ok((mut raised, _)) = self
            .condvar
            .wait_timeout_while(raised, timeout, |raised| !*raised)
        {
            *raised = false;
        }
    }
}

/// Queuing mails: what the services that change accounts use.
#[derive(Clone)]
pub struct Outbox {
    enabled: bool,
    reset_ttl: Period,
    verify_ttl: Period,
    wake: Arc<Signal>,
}

impl Outbox {
    pub fn new(settings: &RecoverySettings) -> Self {
        Self {
            enabled: settings.enabled,
            reset_ttl: settings.reset_ttl,
            verify_ttl: settings.verify_ttl,
            wake: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How long a link of `purpose` works.
    pub fn ttl(&self, purpose: Purpose) -> Period {
        match purpose {
            Purpose::Reset => self.reset_ttl,
            Purpose::Verify => self.verify_ttl,
        }
    }

    /// Queues a mail, in the caller's transaction (nothing when recovery is
    /// off). Call [`Outbox::wake`] once the transaction has committed.
    pub fn queue(
        &self,
        conn: &mut PgConnection,
        purpose: Purpose,
        user_id: Option<i64>,
        address: &str,
    ) -> QueryResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let expires_at = Utc::now() + self.ttl(purpose).delta();
        mail_outbox::enqueue(conn, purpose, user_id, address, expires_at)
    }

    /// Tells this instance's worker that mail is waiting.
    pub fn wake(&self) {
        self.wake.raise();
    }
}

/// What became of one queued mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Nothing to send: no active account has the address, or the address
    /// changed or was verified meanwhile.
    Skipped,
    Retry,
    /// Refused for good, or past its expiry.
    Dropped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Retry => "retry",
            Self::Dropped => "dropped",
        }
    }
}

/// The worker: takes due mails, makes their tokens, sends them.
pub struct Worker {
    /// A pool of its own, of two connections (one holds the mail's lock,
    /// the other commits its token), so that mail never waits for, nor
    /// starves, the requests' pool.
    pub pool: PgPool,
    pub mailer: Mailer,
    pub links: Links,
    pub outbox: Outbox,
}

/// A running worker, to be stopped at shutdown.
pub struct RunningWorker {
    stop: Arc<AtomicBool>,
    wake: Arc<Signal>,
    thread: std::thread::JoinHandle<()>,
    pool: PgPool,
}

impl RunningWorker {
    /// Stops taking mail and waits for the thread (at most the mail being
    /// sent), then for its pool to settle. Blocks.
    pub fn stop(self, db_timeout: Duration) {
        self.stop.store(true, Ordering::Release);
        self.wake.raise();
        if self.thread.join().is_err() {
            tracing::error!("the mail worker panicked");
        }
        db::close(self.pool, db_timeout);
    }
}

impl Worker {
    /// Runs on a thread of its own: sending mail blocks.
    pub fn start(self) -> std::io::Result<RunningWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = self.outbox.wake.clone();
        let stopping = stop.clone();
        let pool = self.pool.clone();
        let thread = std::thread::Builder::new()
            .name("authd-mail".into())
            .spawn(move || self.run(&stopping))?;
        Ok(RunningWorker {
            stop,
            wake,
            thread,
            pool,
        })
    }

    fn run(&self, stopping: &AtomicBool) {
        let mut failing = false;
        while !stopping.load(Ordering::Acquire) {
            match self.deliver_next() {
                Ok(Some(outcome)) => {
                    failing = false;
                    if outcome != Outcome::Retry {
                        continue;
                    }
                }
                Ok(None) => failing = false,
                Err(error) => {
                    // Once per outage, not once a second.
                    if !failing {
                        tracing::warn!(%error, "cannot take mail from the outbox; will retry");
                    }
                    failing = true;
                }
            }
            self.outbox.wake.wait(POLL);
        }
    }

    /// Takes the next due mail, if any, and delivers it, holding its row
    /// lock until the outcome is written.
    fn deliver_next(&self) -> Result<Option<Outcome>, DbError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|error| DbError::Unavailable(error.to_string()))?;
        let delivered = conn.transaction(|conn| {
            let Some(mail) = mail_outbox::lock_next_due(conn, Utc::now())? else {
                return Ok(None);
            };
            let span = tracing::info_span!("mail", mail_id = mail.id, kind = %mail.kind, attempt = mail.attempts + 1);
            let _entered = span.enter();
            let outcome = self.attempt(conn, &mail)?;
            metrics::counter!("authd_mails_total", "kind" => mail.kind.clone(), "outcome" => outcome.as_str())
                .increment(1);
            Ok::<_, diesel::result::Error>(Some(outcome))
        })?;
        Ok(delivered)
    }

    /// One attempt at `mail`, its row locked by `conn`'s transaction.
    fn attempt(&self, conn: &mut PgConnection, mail: &QueuedMail) -> QueryResult<Outcome> {
        let attempts = mail.attempts + 1;
        let Some(purpose) = mail.purpose().filter(|_| mail.expires_at > Utc::now()) else {
            tracing::error!("a mail was not delivered before its link would expire; dropped");
            mail_outbox::remove(conn, mail.id)?;
            return Ok(Outcome::Dropped);
        };
        let retry = |conn: &mut PgConnection, why: &str| {
            let at = Utc::now() + backoff(attempts);
            tracing::warn!(error = why, retry_at = %at, "mail not delivered; will retry");
            mail_outbox::retry_at(conn, mail.id, attempts, at, why).map(|()| Outcome::Retry)
        };
        // The token is committed on a connection of its own before the mail
        // goes: its link must work the moment it arrives.
        let ttl = self.outbox.ttl(purpose);
        let prepared = self
            .pool
            .get()
            .map_err(|error| DbError::Unavailable(error.to_string()))
            .and_then(|mut other| {
                other
                    .transaction(|other| prepare(other, purpose, mail, ttl))
                    .map_err(DbError::from)
            });
        let (to, token) = match prepared {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                mail_outbox::remove(conn, mail.id)?;
                return Ok(Outcome::Skipped);
            }
            Err(error) => return retry(conn, &error.to_string()),
        };
        let link = self.links.link(purpose, &token);
        match self.mailer.send(&link_mail(&to, purpose, &link, ttl)) {
            Ok(reply) => {
                tracing::info!(%reply, "mail delivered");
                mail_outbox::remove(conn, mail.id)?;
                Ok(Outcome::Sent)
            }
            Err(error) if error.is_permanent() => {
                tracing::error!(%error, "mail refused for good; dropped");
                mail_outbox::remove(conn, mail.id)?;
                Ok(Outcome::Dropped)
            }
            Err(error @ MailError::Rejected(_)) => {
                // A refusal that is not about the recipient: the sender, the
                // credentials, a policy. The operator has something to fix;
                // the mail waits for it.
                tracing::error!(%error, "the mail server refuses to send; check SMTP_URL and MAIL_FROM");
                retry(conn, &error.to_string())
            }
            Err(error) => retry(conn, &error.to_string()),
        }
    }
}

/// Who a queued mail goes to and the token it carries, made now; `None`
/// when there is nobody to send it to any more. A reset goes to the active
/// account with the address asked for; a verification, to the address
/// still to be verified of the account it was queued for.
fn prepare(
    conn: &mut PgConnection,
    purpose: Purpose,
    mail: &QueuedMail,
    ttl: Period,
) -> QueryResult<Option<(String, String)>> {
    // The account's row stays locked until the token is stored: a change
    // of address or password made meanwhile waits, and then voids it.
    let user = match (purpose, mail.user_id) {
        (Purpose::Reset, _) => users::find_by_email_locked(conn, &mail.address)?,
        (Purpose::Verify, Some(id)) => users::find_locked(conn, id)?
            .filter(|user| user.email == mail.address && user.email_verified_at.is_none()),
        (Purpose::Verify, None) => None,
    };
    let Some(user) = user.filter(|user| user.is_active) else {
        return Ok(None);
    };
    let token = tokens::issue(conn, user.id, &user.email, purpose, ttl, Utc::now())?;
    Ok(Some((user.email, token)))
}

/// 1 s after the first failure, doubling, at most ten minutes.
fn backoff(attempts: i32) -> TimeDelta {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let seconds = 2u64.saturating_pow(exponent).min(MAX_BACKOFF_SECS);
    TimeDelta::seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        let seconds: Vec<i64> = [1, 2, 3, 4, 10, 11, 100, i32::MAX]
            .into_iter()
            .map(|attempts| backoff(attempts).num_seconds())
            .collect();
        assert_eq!(seconds, [1, 2, 4, 8, 512, 600, 600, 600]);
    }
}
