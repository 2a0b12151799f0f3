//! Validated sessions in memory, so that checking one costs no database
//! round trip, without giving up instant logout:
//!
//! - Whatever ends a session or changes an account, on any instance and by
//!   any path (the API, the command line, plain SQL), makes a trigger
//!   `NOTIFY` every instance at commit; each forgets that user's sessions.
//!   The instance that made the change forgets them at once, itself.
//! - The cache is used only while its listener is connected and has proved
//!   so within the last [`FRESH`]: after any gap it starts empty, since
//!   notifications may have been missed.
//! - A session read from the database is cached only if no invalidation
//!   arrived meanwhile (a generation counter), so a revocation racing the
//!   read cannot leave it cached.
//! - Only "live" is cached. A cached session whose idle timeout looks
//!   passed is checked against the database, where another instance may
//!   have seen it more recently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection};

use crate::db::notifications::{self, Invalidation};
use crate::db::sessions::Session;
use crate::db::users::User;
use crate::db::{self, PgPool};

/// How long a session stays cached without being invalidated: a bound on
/// memory, not on correctness.
const TTL: Duration = Duration::from_secs(600);
/// Past this many sessions the cache starts over.
const CAPACITY: usize = 100_000;
/// The listener proves itself alive at least this often...
const HEARTBEAT: Duration = Duration::from_millis(500);
/// ...and the cache is not used when it last did longer ago than this.
const FRESH: Duration = Duration::from_secs(2);
/// How often the listener looks for notifications.
const POLL: Duration = Duration::from_millis(10);

/// A live session and its user, as validated; shared, not copied, by the
/// requests that present it.
#[derive(Debug)]
pub struct Live {
    pub session: Session,
    pub user: User,
}

struct Cached {
    live: Arc<Live>,
    stored: Instant,
}

pub struct SessionCache {
    entries: Mutex<HashMap<String, Cached>>,
    /// Bumped by every invalidation: what was read before a bump may be stale.
    generation: AtomicU64,
    /// The listener is subscribed (and the cache was emptied when it
    /// subscribed).
    live: AtomicBool,
    /// When the listener last proved its connection, in milliseconds since
    /// `epoch`.
    last_beat: AtomicU64,
    epoch: Instant,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            last_beat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl SessionCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether what the cache holds can be trusted right now.
    fn usable(&self) -> bool {
        let since_beat = self
            .now_ms()
            .saturating_sub(self.last_beat.load(Ordering::Acquire));
        self.live.load(Ordering::Acquire) && Duration::from_millis(since_beat) < FRESH
    }

    /// The cached session with this id and its user, if the cache is usable.
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        if !self.usable() {
            return None;
        }
        let mut entries = self.entries();
        let cached = entries.get(id)?;
        if cached.stored.elapsed() > TTL {
            entries.remove(id);
            return None;
        }
        Some(cached.live.clone())
    }

    /// Taken before reading from the database, for [`SessionCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what was read at `generation`, unless anything was
    /// invalidated since.
    pub fn insert(&self, generation: u64, live: &Arc<Live>) {
        if !self.usable() {
            return;
        }
        let mut entries = self.entries();
        // Checked under the lock that invalidations take too.
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            live.session.id.clone(),
            Cached {
                live: live.clone(),
                stored: Instant::now(),
            },
        );
    }

    /// Puts the session as last seen now in place of the one cached.
    pub fn touch(&self, live: &Arc<Live>) {
        if let Some(cached) = self.entries().get_mut(&live.session.id) {
            cached.live = live.clone();
        }
    }

    pub fn forget(&self, invalidation: Invalidation) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match invalidation {
            Invalidation::User(user_id) => {
                entries.retain(|_, cached| cached.live.user.id != user_id);
            }
            Invalidation::All => entries.clear(),
        }
    }

    fn subscribed(&self) {
        self.forget(Invalidation::All);
        self.beat();
        self.live.store(true, Ordering::Release);
    }

    fn unsubscribed(&self) {
        self.live.store(false, Ordering::Release);
        self.forget(Invalidation::All);
    }

    fn beat(&self) {
        self.last_beat.store(self.now_ms(), Ordering::Release);
    }
}

/// The thread that listens for invalidations; stopped (and joined) by
/// [`Listener::stop`].
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on its own connection to `database_url`.
    pub fn start(database_url: &str, cache: Arc<SessionCache>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let url = listener_url(database_url);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("authd-listener".into())
            .spawn(move || listen(&url, &cache, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening and waits for the thread, so that no connection is
    /// being opened when the process exits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The listener's connection: named, so an operator (or a test) can find
/// it, and quick to give up connecting, so stopping is quick.
fn listener_url(database_url: &str) -> String {
    match url::Url::parse(&db::connection_url(database_url)) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("application_name", "authd-listener")
                .append_pair("connect_timeout", "2");
            url.to_string()
        }
        Err(_) => database_url.to_owned(),
    }
}

fn listen(url: &str, cache: &SessionCache, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        match PgConnection::establish(url)
            .map_err(|error| error.to_string())
            .and_then(|mut conn| {
                notifications::listen(&mut conn).map_err(|error| error.to_string())?;
                Ok(conn)
            }) {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                cache.subscribed();
                tracing::debug!("listening for session invalidations");
                let error = relay(&mut conn, cache, stop);
                cache.unsubscribed();
                if let Some(error) = error {
                    tracing::warn!(%error, "lost the invalidation listener; sessions are read from the database until it is back");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for invalidations; sessions are read from the database");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Passes notifications on until the connection fails (the error) or the
/// listener is stopped (`None`).
fn relay(conn: &mut PgConnection, cache: &SessionCache, stop: &AtomicBool) -> Option<String> {
    let mut last_ping = Instant::now();
    while !stop.load(Ordering::Acquire) {
        match notifications::received(conn) {
            Ok(invalidations) => invalidations
                .into_iter()
                .for_each(|invalidation| cache.forget(invalidation)),
            Err(error) => return Some(error.to_string()),
        }
        if last_ping.elapsed() >= HEARTBEAT {
            if let Err(error) = notifications::ping(conn) {
                return Some(error.to_string());
            }
            last_ping = Instant::now();
            cache.beat();
        }
        std::thread::sleep(POLL);
    }
    None
}

/// Activity noted on cached sessions, written to the database in batches
/// rather than on the request path.
#[derive(Default)]
pub struct Touches {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Touches {
    pub fn note(&self, id: &str, at: DateTime<Utc>) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), at);
    }

    /// Writes what was noted; on failure it is noted again for next time.
    pub async fn flush(&self, pool: &PgPool) {
        let seen: Vec<(String, DateTime<Utc>)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if seen.is_empty() {
            return;
        }
        let batch = seen.clone();
        if let Err(error) = db::run(pool, move |conn| db::sessions::touch_many(conn, &batch)).await
        {
            tracing::warn!(%error, sessions = seen.len(), "could not note session activity; will retry");
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, at) in seen {
                pending.entry(id).or_insert(at);
            }
        }
    }
}
