//! The outbox: mails queued in the transaction of the change that needs
//! them, and the worker, one in every instance, that makes and delivers
//! them.
//!
//! The worker takes one due mail at a time under a row lock (`FOR UPDATE
//! SKIP LOCKED`) held while it sends it: another instance skips that mail
//! instead of sending it too, and if the worker dies, Postgres releases the
//! lock with its connection, so the mail is due again at once. A mail
//! server outage only delays mail, with growing waits between attempts.
//! Delivery is at least once: a crash between the server accepting a mail
//! and the row's removal sends it again (made anew: a new link that
//! supersedes the old).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{Connection, PgConnection, QueryResult};

use crate::clock::Clock;
use crate::db::mail_outbox::{self, QueuedMail};
use crate::db::{self, DbError, PgPool};
use crate::domain::UserId;
use crate::services::mail::{Mail, MailError, MailKind, Mailer};

/// How soon a mail queued by another instance is noticed (this instance's
/// own are taken at once).
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at one mail.
const MAX_BACKOFF_SECS: u64 = 600;

/// What a kind of queued mail becomes when it is due: the mail made now
/// (a link's token is made at this moment, so it works when it arrives),
/// or `None` when there is nobody to send it to any more. Runs in a
/// transaction of its own, committed before the mail goes.
pub trait Composer: Send + Sync {
    fn compose(
        &self,
        conn: &mut PgConnection,
        queued: &QueuedMail,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Mail>>;
}

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
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Signal>,
}

impl Outbox {
    /// Queues a mail of `kind` to `address` (for `user_id`, when it is
    /// about an account; asked for from the client network `requested_by`,
    /// when a client asked), in the caller's transaction; it is dropped if
    /// not delivered by `expires_at`. Call [`Outbox::wake`] once the
    /// transaction has committed.
    pub fn queue(
        &self,
        conn: &mut PgConnection,
        kind: MailKind,
        (user_id, address): (Option<UserId>, &str),
        requested_by: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> QueryResult<()> {
        mail_outbox::enqueue(conn, kind.0, user_id, address, requested_by, expires_at)
    }

    /// Tells this instance's worker that mail is waiting.
    pub fn wake(&self) {
        self.wake.raise();
    }
}

/// What became of one queued mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Nothing to send: its composer found nobody to send it to any more.
    Skipped,
    Retry,
    /// Refused for good, past its expiry, or of a kind nobody composes.
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

/// The worker: takes due mails, has them composed, sends them.
#[derive(Clone)]
pub struct Worker {
    /// A pool of its own, of two connections (one holds the mail's lock,
    /// the other commits what its composer made), so that mail never waits
    /// for, nor starves, the requests' pool.
    pool: PgPool,
    mailer: Mailer,
    /// By kind name.
    composers: Arc<HashMap<&'static str, Arc<dyn Composer>>>,
    wake: Arc<Signal>,
    clock: Clock,
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
    /// A worker for the mails `outbox` queues, of the kinds `composers`
    /// make.
    pub fn new(
        pool: PgPool,
        mailer: Mailer,
        outbox: &Outbox,
        composers: impl IntoIterator<Item = (MailKind, Arc<dyn Composer>)>,
        clock: Clock,
    ) -> Self {
        Self {
            pool,
            mailer,
            composers: Arc::new(
                composers
                    .into_iter()
                    .map(|(kind, composer)| (kind.0, composer))
                    .collect(),
            ),
            wake: outbox.wake.clone(),
            clock,
        }
    }

    /// Closes its pool, when it was never started. Blocks.
    pub fn close(self, db_timeout: Duration) {
        db::close(self.pool, db_timeout);
    }

    /// Runs on a thread of its own: sending mail blocks.
    pub fn start(self) -> std::io::Result<RunningWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, pool) = (self.wake.clone(), self.pool.clone());
        let stopping = stop.clone();
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
            self.wake.wait(POLL);
        }
    }

    /// Delivers every mail due now, one after another, and what became of
    /// each; a mail put back for a later attempt ends the round. Blocks.
    /// For tests that deliver mail at a moment of their choosing.
    #[cfg(feature = "internals")]
    pub fn deliver_due(&self) -> Result<Vec<Outcome>, DbError> {
        let mut outcomes = Vec::new();
        while let Some(outcome) = self.deliver_next()? {
            outcomes.push(outcome);
            if outcome == Outcome::Retry {
                break;
            }
        }
        Ok(outcomes)
    }

    /// Takes the next due mail, if any, and delivers it, holding its row
    /// lock until the outcome is written.
    fn deliver_next(&self) -> Result<Option<Outcome>, DbError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|error| DbError::Unavailable(error.to_string()))?;
        let delivered = conn.transaction(|conn| {
            let Some(mail) = mail_outbox::lock_next_due(conn, self.clock.now())? else {
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

    /// One attempt at `queued`, its row locked by `conn`'s transaction.
    fn attempt(&self, conn: &mut PgConnection, queued: &QueuedMail) -> QueryResult<Outcome> {
        let attempts = queued.attempts + 1;
        let now = self.clock.now();
        if queued.expires_at <= now {
            tracing::error!("a mail was not delivered before its link would expire; dropped");
            mail_outbox::remove(conn, queued.id)?;
            return Ok(Outcome::Dropped);
        }
        let Some(composer) = self.composers.get(queued.kind.as_str()) else {
            tracing::error!("a mail of a kind nothing composes; dropped");
            mail_outbox::remove(conn, queued.id)?;
            return Ok(Outcome::Dropped);
        };
        let retry = |conn: &mut PgConnection, why: &str| {
            let at = now + backoff(attempts);
            tracing::warn!(error = why, retry_at = %at, "mail not delivered; will retry");
            mail_outbox::retry_at(conn, queued.id, attempts, at, why).map(|()| Outcome::Retry)
        };
        // What the composer makes (a link's token) is committed on a
        // connection of its own before the mail goes: the link must work
        // the moment it arrives.
        let composed = self
            .pool
            .get()
            .map_err(|error| DbError::Unavailable(error.to_string()))
            .and_then(|mut other| {
                other
                    .transaction(|other| composer.compose(other, queued, now))
                    .map_err(DbError::from)
            });
        let mail = match composed {
            Ok(Some(mail)) => mail,
            Ok(None) => {
                mail_outbox::remove(conn, queued.id)?;
                return Ok(Outcome::Skipped);
            }
            Err(error) => return retry(conn, &error.to_string()),
        };
        match self.mailer.send(&mail) {
            Ok(reply) => {
                tracing::info!(%reply, "mail delivered");
                mail_outbox::remove(conn, queued.id)?;
                Ok(Outcome::Sent)
            }
            Err(error) if error.is_permanent() => {
                tracing::error!(%error, "mail refused for good; dropped");
                mail_outbox::remove(conn, queued.id)?;
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
