//! Activity on sessions (`last_seen_at`), noted as requests come and written
//! to the database in batches, off the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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

    /// Writes what was noted, a chunk at a time; what a failure left
    /// unwritten is noted again for next time, unless newer activity was.
    pub async fn flush(&self, pool: &PgPool, idle: Period) {
        let mut seen: Vec<Seen> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        // Every instance updates rows in the same order, so that two
        // flushes of the same sessions never wait on each other in a cycle.
        seen.sort_unstable_by(|(a, _), (b, _)| a.expose().cmp(b.expose()));
        let idle = idle.std();
        let mut chunks = seen.chunks(CHUNK);
        while let Some(chunk) = chunks.next() {
            let batch: Arc<[Seen]> = chunk.into();
            let writing = batch.clone();
            let written = db::run(pool, move |conn| {
                db::sessions::touch_many(conn, &writing, idle)
            })
            .await;
            if let Err(error) = written {
                let unwritten: Vec<&Seen> = batch.iter().chain(chunks.flatten()).collect();
                tracing::warn!(%error, sessions = unwritten.len(), "could not note session activity; will retry");
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                for (token, at) in unwritten {
                    pending.entry(token.clone()).or_insert(*at);
                }
                return;
            }
        }
    }
}
