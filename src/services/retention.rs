//! Nothing piles up: sessions that ended long ago, audit events past their
//! retention, throttle hits no window can see any more and mailed tokens
//! and the second steps and passkey ceremonies that expired are deleted, in
//! bounded batches, by one instance at a time.

use std::time::Instant;

use diesel::{Connection, PgConnection, QueryResult};

use crate::clock::Clock;
use crate::configuration::Period;
use crate::db::locks::{self, Job};
use crate::db::{
    self, DbError, PgPool, auth_events, email_tokens, passkeys, second_factor, sessions,
    throttle_hits,
};

/// Rows deleted per statement: small enough not to hold locks for long.
const BATCH: i64 = 1000;

/// What one purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub auth_events: usize,
    pub throttle_hits: usize,
    pub email_tokens: usize,
    pub mfa_challenges: usize,
    pub passkey_ceremonies: usize,
}

#[derive(Clone)]
pub struct Retention {
    pool: PgPool,
    /// How long ended sessions and audit events are kept (`AUDIT_RETENTION`).
    keep: Period,
    /// The longest throttle window: older hits count for nothing.
    longest_window: Period,
    clock: Clock,
}

impl Retention {
    pub fn new(pool: PgPool, keep: Period, longest_window: Period, clock: Clock) -> Self {
        Self {
            pool,
            keep,
            longest_window,
            clock,
        }
    }

    /// Deletes what is past keeping; `None` when another instance is
    /// purging right now.
    #[tracing::instrument(skip_all)]
    pub async fn purge(&self) -> Result<Option<Purged>, DbError> {
        let (keep, window) = (self.keep.delta(), self.longest_window.delta());
        let now = self.clock.now();
        db::run(&self.pool, move |conn| {
            let (mut sessions_from, mut events_from) = (Default::default(), None);
            let purged = (|| {
                Ok(Purged {
                    sessions: batches(conn, |c| {
                        sessions::purge_ended(c, now - keep, &mut sessions_from, BATCH)
                    })?,
                    auth_events: batches(conn, |c| {
                        auth_events::purge_before(c, now - keep, &mut events_from, BATCH)
                    })?,
                    throttle_hits: batches(conn, |c| {
                        throttle_hits::purge_before(c, now - window, BATCH)
                    })?,
                    email_tokens: batches(conn, |c| email_tokens::purge_expired(c, now, BATCH))?,
                    mfa_challenges: batches(conn, |c| {
                        second_factor::purge_expired_challenges(c, now, BATCH)
                    })?,
                    passkey_ceremonies: batches(conn, |c| {
                        passkeys::purge_expired_ceremonies(c, now, BATCH)
                    })?,
                })
            })();
            match purged {
                Ok(purged) => Ok(Some(purged)),
                Err(Stop::Busy) => Ok(None),
                Err(Stop::Failed(error)) => Err(error),
            }
        })
        .await
    }

    /// One round of the background purge: what it did, or why it failed,
    /// is logged (it is retried at the next round).
    pub async fn purge_round(&self) {
        match self.purge().await {
            Ok(Some(purged)) if purged != Purged::default() => {
                tracing::info!(?purged, "purged what is past keeping");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "purge failed; will retry"),
        }
    }
}

/// Why a purge stopped early.
enum Stop {
    /// Another instance holds the purge lock.
    Busy,
    Failed(diesel::result::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error)
    }
}

/// Repeats a batch delete, each batch in a short transaction of its own
/// under the purge lock (so a large backlog never holds its locks, or one
/// statement's time, for long), until a batch comes back short: the total.
/// After each full batch it rests as long as the batch took, so that a
/// backlog takes at most half of a core from the requests beside it, and
/// still goes hundreds of times faster than logins write rows (see the
/// README's scale figures).
fn batches(
    conn: &mut PgConnection,
    mut delete: impl FnMut(&mut PgConnection) -> QueryResult<usize>,
) -> Result<usize, Stop> {
    let mut total = 0;
    loop {
        let started = Instant::now();
        let deleted = conn.transaction(|conn| {
            if !locks::try_lock_in_transaction(conn, Job::Purge)? {
                return Err(Stop::Busy);
            }
            Ok(delete(conn)?)
        })?;
        total += deleted;
        if deleted < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            return Ok(total);
        }
        std::thread::sleep(started.elapsed());
    }
}
