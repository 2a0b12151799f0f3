//! Activity on sessions (`last_seen_at`), noted as requests come and written
//! to the database in batches, off the request path.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::configuration::Period;
use crate::db::{self, PgPool};
use crate::domain::SessionToken;

/// Sessions written per statement. A backlog (every session of a working
/// set seen for the first time in its minute, after a start or a burst) is
/// written at the database's pace in statements of tens of milliseconds.
/// Written as one statement, a backlog of 300,000 outlived the statement
/// timeout at every try: nothing was ever written, the retries kept a core
/// of Postgres busy, and the backlog kept growing in memory.
const CHUNK: usize = 1000;

type Seen = (SessionToken, DateTime<Utc>);

/// Activity noted since the last flush: when each session was last seen.
#[derive(Default)]
pub struct Activity {
    pending: Mutex<HashMap<SessionToken, DateTime<Utc>>>,
}

impl Activity {
    pub fn note(&self, token: &SessionToken, at: DateTime<Utc>) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), at);
    }

    /// Writes what was noted, a chunk at a time. What a failure leaves
    /// unwritten is noted again for next time, unless newer activity was,
    /// and so is what a flush stopped part way leaves (at shutdown the
    /// periodic flush is aborted and awaited, and the last one writes it).
    pub async fn flush(&self, pool: &PgPool, idle: Period) {
        let mut seen: Vec<Seen> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        // Every instance lists the rows in the same order, so that two
        // flushes of the same sessions take their locks in the same order
        // (as the plan of `touch_many` walks the list), not in a cycle.
        seen.sort_unstable_by(|(a, _), (b, _)| a.expose().cmp(b.expose()));
        let mut taken = Taken {
            activity: self,
            seen,
            written: 0,
        };
        let idle = idle.std();
        while taken.written < taken.seen.len() {
            self.report(taken.seen.len() - taken.written);
            let end = taken.seen.len().min(taken.written + CHUNK);
            let batch = taken.seen[taken.written..end].to_vec();
            if let Err(error) = db::run(pool, move |conn| {
                db::sessions::touch_many(conn, &batch, idle)
            })
            .await
            {
                let unwritten = taken.seen.len() - taken.written;
                tracing::warn!(%error, sessions = unwritten, "could not note session activity; will retry");
                return;
            }
            taken.written = end;
        }
    }

    /// Shows how many sessions' activity waits to be written: what is
    /// noted, and what a flush has taken and not written yet (`taken`).
    /// It grows when the database cannot keep up.
    fn report(&self, taken: usize) {
        let noted = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        metrics::gauge!("authd_session_activity_pending").set((noted + taken) as f64);
    }
}

/// What a flush took: on drop, whatever it has not written is noted again.
struct Taken<'a> {
    activity: &'a Activity,
    seen: Vec<Seen>,
    written: usize,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let unwritten = self.seen.drain(self.written..);
        if unwritten.len() > 0 {
            let mut pending = self
                .activity
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (token, at) in unwritten {
                pending.entry(token).or_insert(at);
            }
        }
        self.activity.report(0);
    }
}
