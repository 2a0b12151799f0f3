//! Validated sessions in memory (this instance's), so that checking one costs no database
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
use std::time::{Duration, Instant};

use crate::db::notifications::Invalidation;
use crate::domain::SessionToken;
use crate::services::sessions::live::LiveSession;

/// How long a session stays cached without being invalidated: a bound on
/// memory, not on correctness.
const TTL: Duration = Duration::from_secs(600);
/// Past this many sessions the cache starts over.
const CAPACITY: usize = 100_000;
/// The cache is not used when its listener last proved itself alive
/// longer ago than this (it does every
/// [`HEARTBEAT`](super::listener::HEARTBEAT)): a connection that stalls
/// without failing stops vouching for the cache within this, so a
/// revocation it does not pass on is still seen within a second.
const FRESH: Duration = Duration::from_millis(800);

struct Cached {
    live: Arc<LiveSession>,
    stored: Instant,
}

pub struct SessionCache {
    entries: Mutex<HashMap<SessionToken, Cached>>,
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
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<SessionToken, Cached>> {
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

    /// The cached session with this token and its user, if the cache is
    /// usable.
    pub fn get(&self, token: &SessionToken) -> Option<Arc<LiveSession>> {
        if !self.usable() {
            return None;
        }
        let mut entries = self.entries();
        let cached = entries.get(token)?;
        if cached.stored.elapsed() > TTL {
            entries.remove(token);
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
    pub fn insert(&self, generation: u64, live: &Arc<LiveSession>) {
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
            live.session.token.clone(),
            Cached {
                live: live.clone(),
                stored: Instant::now(),
            },
        );
    }

    /// Puts the session as last seen now in place of the one cached.
    pub fn touch(&self, live: &Arc<LiveSession>) {
        if let Some(cached) = self.entries().get_mut(&live.session.token) {
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

    /// The listener has (re)subscribed: what was missed meanwhile is
    /// forgotten before the cache is used again.
    pub(super) fn subscribed(&self) {
        self.forget(Invalidation::All);
        self.beat();
        self.live.store(true, Ordering::Release);
    }

    pub(super) fn unsubscribed(&self) {
        self.live.store(false, Ordering::Release);
        self.forget(Invalidation::All);
    }

    /// The listener has proved its connection alive. After a gap longer
    /// than [`FRESH`] (a connection that stalled and resumed) the cache
    /// starts empty, as after a reconnection: what it holds was not vouched
    /// for meanwhile.
    pub(super) fn beat(&self) {
        let since = self
            .now_ms()
            .saturating_sub(self.last_beat.load(Ordering::Acquire));
        if Duration::from_millis(since) >= FRESH {
            self.forget(Invalidation::All);
        }
        self.last_beat.store(self.now_ms(), Ordering::Release);
    }
}
