//! Activity on sessions (`last_seen_at`), noted as requests come and written
//! to the database in batches, off the request path.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::configuration::Period;
use crate::db::{self, PgPool};
use crate::domain::SessionToken;

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

    /// Writes what was noted; on failure it is noted again for next time.
    pub async fn flush(&self, pool: &PgPool, idle: Period) {
        let seen: Vec<(SessionToken, DateTime<Utc>)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if seen.is_empty() {
            return;
        }
        let batch = seen.clone();
        let idle = idle.std();
        if let Err(error) = db::run(pool, move |conn| {
            db::sessions::touch_many(conn, &batch, idle)
        })
        .await
        {
            tracing::warn!(%error, sessions = seen.len(), "could not note session activity; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (token, at) in seen {
                pending.entry(token).or_insert(at);
            }
        }
    }
}
