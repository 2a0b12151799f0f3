//! Validated sessions in memory (this instance's), so that checking one costs no database
//! round trip, without giving up instant logout:
//!
//! - Whatever ends a session or changes an account, on any instance and by
//!   any path (the API, the command line, plain SQL), makes a trigger
//!   `NOTIFY` every instance at commit; each forgets that user's sessions.
//!   The instance that made the change forgets them at once, itself.
//! - The cache is used only while its listener is connected and has proved
//!   so within the last [`FRESH`]. After a reconnection it starts empty,
//!   since notifications were missed. After a connection that was only
//!   late (a stall, or a database too busy to answer the ping in time) it
//!   is kept: nothing was missed, since Postgres sends a listener the
//!   notifications it holds before the answer to its next query, and the
//!   listener applies them before vouching for the cache again. Emptying
//!   it there made a cliff: under load a late ping threw away the working
//!   set, and refilling it from the database made the next ping later.
//! - Every invalidation takes a number from one counter; a session cached
//!   remembers the counter from before its database read, and is not used
//!   once an invalidation of its user (or of everything) is newer: a
//!   revocation racing the read cannot leave it in use. Invalidating a user
//!   touches one slot of a fixed table (users share slots: a neighbour's
//!   invalidation costs a miss, never a stale hit), not every entry.
//! - It holds `SESSION_CACHE_CAPACITY` sessions at most, and past that
//!   evicts the least useful (quick_cache's S3-FIFO-like policy), one at a
//!   time: a working set larger than the cache costs misses, not a cliff.
//! - An entry is small: the session and its user [packed](super::packed),
//!   keyed by the SHA-256 of the credential and holding no copy of it, in
//!   a table allocated whole at start-up so that it never grows by copying
//!   (the README's sizing guide has the bytes per session).
//! - A session past its lifetime (see [`TTL`]) that nothing invalidated is
//!   still used while it is read again off the request path, one refresh
//!   per session; only one not read again within [`REFRESH_GRACE`] is a
//!   miss. Under load a session in use does not pay a database round trip
//!   on its request every few minutes, and a burst of them (a working set
//!   cached together) does not queue behind a busy database.
//! - Only "live" is cached. A cached session whose idle timeout looks
//!   passed is checked against the database, where another instance may
//!   have seen it more recently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::db::notifications::Invalidation;
use crate::domain::{SessionToken, UserId};
use crate::services::sessions::live::LiveSession;
use crate::services::sessions::packed::Packed;

/// About how long a cached session is used before it is read from the
/// database again, invalidated or not (that read is a refresh, see
/// [`Lookup::Due`]): a bound on how long anything the
/// notifications might not cover (a change no trigger sees) can go
/// unnoticed, not what keeps revocation instant. Each entry's own lifetime
/// is drawn between three quarters and five quarters of it, so that a
/// working set cached all at once (after a start, or a reconnection) is
/// re-read spread over minutes, not all in the same second.
const TTL: Duration = Duration::from_secs(600);
/// How long past its lifetime a cached session is still used while its
/// refresh is under way: one not refreshed by then (the database slow or
/// failing) is a miss, so that nothing cached goes unchecked for longer
/// than five quarters of the TTL and this.
const REFRESH_GRACE: Duration = Duration::from_secs(30);
/// Refreshes under way at most: a database too slow for them postpones
/// some (within the grace) rather than queueing a task per session.
const REFRESHES: usize = 32;
/// The cache is not used when its listener last proved itself alive
/// longer ago than this (it does every
/// [`HEARTBEAT`](super::listener::HEARTBEAT)): a connection that stalls
/// without failing stops vouching for the cache within this, so a
/// revocation it does not pass on is still seen within a second.
const FRESH: Duration = Duration::from_millis(800);
/// Slots of the table of users' last invalidations.
const USER_SLOTS: usize = 65_536;

/// Behind an `Arc`, so that what the table holds per entry is a pointer
/// (quick_cache hands out clones of it).
struct Cached {
    packed: Packed,
    /// The session's `last_seen_at`, in microseconds since the Unix epoch
    /// (the database's precision). Apart from the rest, so that noting
    /// activity (about once a minute for each session in use) is a store
    /// into the entry, not a new entry.
    last_seen_at: AtomicI64,
    /// When it is to be read from the database again.
    expires: Instant,
    /// A refresh of it is under way.
    refreshing: AtomicBool,
    /// The invalidation counter before the database read it came from.
    read_at: u64,
}

pub struct SessionCache {
    /// `None` when `SESSION_CACHE_CAPACITY` is 0.
    entries: Option<quick_cache::sync::Cache<[u8; 32], Arc<Cached>>>,
    /// The last number an invalidation took.
    generation: AtomicU64,
    /// The newest invalidation of everything.
    all: AtomicU64,
    /// The newest invalidation of the users of each slot.
    users: Box<[AtomicU64]>,
    /// Refreshes under way ([`Refresh`] tickets alive).
    refreshes: Arc<AtomicUsize>,
    /// The listener is subscribed (and the cache was emptied when it
    /// subscribed).
    live: AtomicBool,
    /// When the listener last proved its connection, in milliseconds since
    /// `epoch`.
    last_beat: AtomicU64,
    epoch: Instant,
}

impl SessionCache {
    /// A cache of `capacity` sessions at most (none at 0).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| {
                let entries = quick_cache::sync::Cache::new(capacity);
                entries.reserve(capacity);
                entries
            }),
            generation: AtomicU64::new(0),
            all: AtomicU64::new(0),
            users: (0..USER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            refreshes: Arc::default(),
            live: AtomicBool::new(false),
            last_beat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn slot(&self, user_id: UserId) -> &AtomicU64 {
        // Ids are sequential: consecutive users land in different slots.
        let index = user_id.get().unsigned_abs() % USER_SLOTS as u64;
        &self.users[usize::try_from(index).unwrap_or(0)]
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

    /// Whether anything invalidated `cached` since it was read.
    fn invalidated(&self, cached: &Cached) -> bool {
        let newest = self
            .all
            .load(Ordering::Acquire)
            .max(self.slot(cached.packed.user_id).load(Ordering::Acquire));
        newest > cached.read_at
    }

    /// What the cache holds for this token, if the cache is usable.
    pub fn get(&self, token: &SessionToken) -> Lookup {
        let Some(entries) = &self.entries else {
            return Lookup::Miss;
        };
        if !self.usable() {
            return Lookup::Miss;
        }
        let key = token.digest();
        let Some(cached) = entries.get(&key) else {
            return Lookup::Miss;
        };
        let now = Instant::now();
        if self.invalidated(&cached) || now >= cached.expires + REFRESH_GRACE {
            entries.remove(&key);
            return Lookup::Miss;
        }
        let last_seen_at =
            DateTime::from_timestamp_micros(cached.last_seen_at.load(Ordering::Acquire));
        let Some(live) = last_seen_at
            .and_then(|last_seen_at| cached.packed.unpack(token, last_seen_at))
            .map(Arc::new)
        else {
            return Lookup::Miss;
        };
        if now < cached.expires {
            return Lookup::Hit(live);
        }
        match self.claim_refresh(key, cached) {
            Some(refresh) => Lookup::Due(live, refresh),
            None => Lookup::Hit(live),
        }
    }

    /// The refresh of `cached`, unless one is under way or too many are.
    fn claim_refresh(&self, key: [u8; 32], cached: Arc<Cached>) -> Option<Refresh> {
        if self.refreshes.load(Ordering::Acquire) >= REFRESHES
            || cached.refreshing.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        self.refreshes.fetch_add(1, Ordering::AcqRel);
        Some(Refresh {
            key,
            cached,
            in_flight: self.refreshes.clone(),
        })
    }

    /// What a refresh read, taken before `generation`: the session again
    /// (cached anew, unless invalidated since), or nothing (it is no longer
    /// live: forgotten).
    pub fn refreshed(&self, refresh: Refresh, generation: u64, found: Option<&Arc<LiveSession>>) {
        match found {
            Some(live) => self.insert(generation, live),
            None => {
                if let Some(entries) = &self.entries {
                    entries.remove(&refresh.key);
                }
            }
        }
    }

    /// Taken before reading from the database, for [`SessionCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what was read after `generation` was taken; an invalidation
    /// since then keeps it from being used.
    pub fn insert(&self, generation: u64, live: &Arc<LiveSession>) {
        let Some(entries) = &self.entries else {
            return;
        };
        if !self.usable() {
            return;
        }
        let Some(packed) = Packed::pack(live) else {
            return;
        };
        let cached = Cached {
            packed,
            last_seen_at: AtomicI64::new(live.session.last_seen_at.timestamp_micros()),
            expires: Instant::now() + lifetime(rand::random()),
            read_at: generation,
            refreshing: AtomicBool::new(false),
        };
        if !self.invalidated(&cached) {
            entries.insert(live.session.token.digest(), Arc::new(cached));
        }
    }

    /// Notes that the session cached for `token` was seen at `at` (unless
    /// a later sighting was noted already).
    pub fn touch(&self, token: &SessionToken, at: DateTime<Utc>) {
        if let Some(cached) = self
            .entries
            .as_ref()
            .and_then(|entries| entries.get(&token.digest()))
        {
            cached
                .last_seen_at
                .fetch_max(at.timestamp_micros(), Ordering::AcqRel);
        }
    }

    pub fn forget(&self, invalidation: Invalidation) {
        let number = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        match invalidation {
            Invalidation::User(user_id) => {
                self.slot(user_id).fetch_max(number, Ordering::AcqRel);
            }
            Invalidation::All => {
                self.all.fetch_max(number, Ordering::AcqRel);
                // Memory back at once; correctness does not need it.
                if let Some(entries) = &self.entries {
                    entries.clear();
                }
            }
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

    /// The listener has proved its connection alive, and applied every
    /// notification that arrived before the proof.
    pub(super) fn beat(&self) {
        let since = self
            .now_ms()
            .saturating_sub(self.last_beat.load(Ordering::Acquire));
        if Duration::from_millis(since) >= FRESH && self.live.load(Ordering::Acquire) {
            tracing::debug!(silent_ms = since, "the invalidation listener was late");
        }
        self.last_beat.store(self.now_ms(), Ordering::Release);
    }
}

/// What the cache holds for a credential.
pub enum Lookup {
    /// A live session to use.
    Hit(Arc<LiveSession>),
    /// A live session to use, past its lifetime: read it again off the
    /// request path and hand the outcome to [`SessionCache::refreshed`]
    /// (meanwhile it is a plain hit for everyone else).
    Due(Arc<LiveSession>, Refresh),
    /// Nothing usable: read it from the database.
    Miss,
}

/// The one refresh under way of a cached session. Dropped without
/// [`SessionCache::refreshed`] (the read failed), it lets the next use of
/// the session try again.
pub struct Refresh {
    key: [u8; 32],
    cached: Arc<Cached>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Refresh {
    fn drop(&mut self) {
        self.cached.refreshing.store(false, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An entry's lifetime for a draw `unit` in [0, 1): [`TTL`] give or take a
/// quarter.
fn lifetime(unit: f64) -> Duration {
    TTL.mul_f64(0.75 + unit.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sessions::Session;
    use crate::db::users::User;
    use crate::domain::PasswordHash;

    fn live(user: i64) -> Arc<LiveSession> {
        let now = Utc::now();
        Arc::new(LiveSession {
            session: Session::sample(UserId::new(user), SessionToken::generate()),
            user: User {
                id: UserId::new(user),
                username: format!("user{user}"),
                email: format!("user{user}@example.com"),
                password_hash: PasswordHash::new("$2b$04$hash".into()),
                is_active: true,
                created_at: now,
                last_login_at: None,
                email_verified_at: None,
                totp_enabled: false,
                recovery_codes_left: 0,
                passkey_count: 0,
            },
        })
    }

    fn listening(capacity: usize) -> SessionCache {
        let cache = SessionCache::new(capacity);
        cache.subscribed();
        cache
    }

    /// Whether the cache has the session to use, whatever else it asks.
    fn used(cache: &SessionCache, token: &SessionToken) -> bool {
        !matches!(cache.get(token), Lookup::Miss)
    }

    /// A session cached as if long ago: it is to be read again at `expires`.
    fn cached_until(cache: &SessionCache, user: i64, expires: Instant) -> Arc<LiveSession> {
        let session = live(user);
        let entries = cache.entries.as_ref().expect("a capacity");
        let cached = Cached {
            packed: Packed::pack(&session).expect("packs"),
            last_seen_at: AtomicI64::new(session.session.last_seen_at.timestamp_micros()),
            expires,
            read_at: cache.generation(),
            refreshing: AtomicBool::new(false),
        };
        entries.insert(session.session.token.digest(), Arc::new(cached));
        session
    }

    fn due(cache: &SessionCache, token: &SessionToken) -> Option<Refresh> {
        match cache.get(token) {
            Lookup::Due(_, refresh) => Some(refresh),
            _ => None,
        }
    }

    fn cached(cache: &SessionCache, user: i64) -> Arc<LiveSession> {
        let session = live(user);
        cache.insert(cache.generation(), &session);
        session
    }

    fn last_seen(cache: &SessionCache, token: &SessionToken) -> DateTime<Utc> {
        match cache.get(token) {
            Lookup::Hit(live) => live.session.last_seen_at,
            _ => panic!("not cached"),
        }
    }

    /// A touch changes the cached session in place, and never back in time.
    #[test]
    fn a_touch_moves_the_last_seen_time_forward_only() {
        let cache = listening(100);
        let session = cached(&cache, 1);
        let token = &session.session.token;
        // Kept to the database's precision, the microsecond.
        let seen = session.session.last_seen_at.timestamp_micros();
        assert_eq!(last_seen(&cache, token).timestamp_micros(), seen);
        let later = DateTime::from_timestamp_micros(seen + 300_000_000).unwrap();
        cache.touch(token, later);
        assert_eq!(last_seen(&cache, token), later);
        cache.touch(token, session.session.last_seen_at);
        assert_eq!(last_seen(&cache, token), later);
        assert!(used(&cache, token));
    }

    #[test]
    fn a_full_cache_evicts_some_not_all() {
        let cache = listening(1_000);
        let sessions: Vec<_> = (1..=3_000).map(|user| cached(&cache, user)).collect();
        let kept = sessions
            .iter()
            .filter(|live| used(&cache, &live.session.token))
            .count();
        assert!((500..=1_000).contains(&kept), "{kept} of 3000 kept");
    }

    #[test]
    fn forgetting_a_user_forgets_only_that_user() {
        let cache = listening(100);
        let (susan, bob) = (cached(&cache, 1), cached(&cache, 2));
        cache.forget(Invalidation::User(UserId::new(1)));
        assert!(!used(&cache, &susan.session.token));
        assert!(used(&cache, &bob.session.token));
        cache.forget(Invalidation::All);
        assert!(!used(&cache, &bob.session.token));
    }

    /// A read that began before an invalidation is cached, but never used.
    #[test]
    fn a_read_racing_an_invalidation_is_not_used() {
        let cache = listening(100);
        let before = cache.generation();
        cache.forget(Invalidation::User(UserId::new(7)));
        let session = live(7);
        cache.insert(before, &session);
        assert!(!used(&cache, &session.session.token));
        cache.insert(cache.generation(), &session);
        assert!(used(&cache, &session.session.token));
    }

    /// A late beat is not a lost connection: until it comes the cache is
    /// not trusted, and after it what the cache held is used again.
    #[test]
    fn a_late_listener_suspends_the_cache_without_emptying_it() {
        let cache = listening(100);
        let session = cached(&cache, 1);
        std::thread::sleep(FRESH + Duration::from_millis(50));
        assert!(!used(&cache, &session.session.token));
        cache.beat();
        assert!(used(&cache, &session.session.token));
    }

    /// Sessions cached in the same instant are re-read over half a TTL,
    /// not in the same second.
    #[test]
    fn sessions_cached_together_expire_spread_out() {
        let cache = listening(1_000);
        let before = Instant::now();
        let expiries: Vec<Instant> = (1..=200)
            .map(|user| {
                let session = cached(&cache, user);
                let entries = cache.entries.as_ref().expect("a capacity");
                entries
                    .get(&session.session.token.digest())
                    .expect("cached")
                    .expires
            })
            .collect();
        let after = Instant::now();
        let earliest = expiries.iter().min().expect("some");
        let latest = expiries.iter().max().expect("some");
        assert!(
            *earliest >= before + TTL * 3 / 4,
            "none before three quarters of the TTL"
        );
        assert!(
            *latest <= after + TTL * 5 / 4,
            "none after five quarters of it"
        );
        assert!(
            *latest - *earliest > TTL / 4,
            "spread over {:?} only",
            *latest - *earliest
        );
    }

    /// Past its lifetime a session is still used; the first use asks for
    /// its refresh and the others do not while it is under way; a failed
    /// one is asked for again; what it reads is cached anew.
    #[test]
    fn a_session_past_its_lifetime_is_used_while_one_refresh_reads_it() {
        let cache = listening(100);
        let session = cached_until(&cache, 1, Instant::now() - Duration::from_secs(1));
        let token = &session.session.token;
        let refresh = due(&cache, token).expect("the first use refreshes");
        assert!(
            matches!(cache.get(token), Lookup::Hit(_)),
            "one refresh at a time"
        );
        drop(refresh);
        let refresh = due(&cache, token).expect("a failed refresh is tried again");
        cache.refreshed(refresh, cache.generation(), Some(&session));
        assert!(
            matches!(cache.get(token), Lookup::Hit(_)),
            "read again, it is fresh"
        );
        assert_eq!(cache.refreshes.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_refresh_that_finds_the_session_gone_forgets_it() {
        let cache = listening(100);
        let session = cached_until(&cache, 1, Instant::now() - Duration::from_secs(1));
        let refresh = due(&cache, &session.session.token).expect("due");
        cache.refreshed(refresh, cache.generation(), None);
        assert!(!used(&cache, &session.session.token));
    }

    /// A refresh that read the session before an invalidation does not
    /// bring it back.
    #[test]
    fn a_refresh_racing_an_invalidation_is_not_used() {
        let cache = listening(100);
        let session = cached_until(&cache, 7, Instant::now() - Duration::from_secs(1));
        let refresh = due(&cache, &session.session.token).expect("due");
        let before = cache.generation();
        cache.forget(Invalidation::User(UserId::new(7)));
        cache.refreshed(refresh, before, Some(&session));
        assert!(!used(&cache, &session.session.token));
    }

    /// A session whose refresh has not come back within the grace is read
    /// on the request path: nothing goes unchecked for long.
    #[test]
    fn a_session_past_its_grace_is_a_miss() {
        let cache = listening(100);
        let long_ago = Instant::now() - REFRESH_GRACE - Duration::from_secs(1);
        let session = cached_until(&cache, 1, long_ago);
        assert!(!used(&cache, &session.session.token));
    }

    /// Past [`REFRESHES`] under way, sessions past their lifetime are used
    /// without asking for more.
    #[test]
    fn refreshes_under_way_are_bounded() {
        let cache = listening(1_000);
        let expired = Instant::now() - Duration::from_secs(1);
        let refreshes: Vec<Refresh> = (1..=100)
            .filter_map(|user| due(&cache, &cached_until(&cache, user, expired).session.token))
            .collect();
        assert_eq!(refreshes.len(), REFRESHES);
        drop(refreshes);
        assert_eq!(cache.refreshes.load(Ordering::Acquire), 0);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = listening(0);
        let session = cached(&cache, 1);
        assert!(!used(&cache, &session.session.token));
    }
}
