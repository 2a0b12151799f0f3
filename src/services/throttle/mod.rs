//! Throttling, not lockout: sliding-window limits on attempts, counted in a
//! store every instance shares (Postgres, or Redis when `REDIS_URL` is set).
//!
//! Two operations, each given counters (bucket, key, limit, window) and
//! each checking the limits atomically with counting, so a burst of
//! parallel attempts cannot all slip in under a limit:
//!
//! - [`Throttle::hit`] counts an attempt now (registrations: every attempt
//!   counts);
//! - [`Throttle::begin`] starts an attempt whose outcome is not known yet (a
//!   password check). It is pending: it makes parallel attempts wait rather
//!   than outrun the limit, but it is not a failure, so concurrency alone
//!   never refuses anyone. [`Throttle::failed`] makes it one;
//!   [`Throttle::succeeded`] takes it back.
//!
//! A new limit is a [`Bucket`] (which names its settings) and a
//! [`Counter`] at its call site; the policy of what to count (per account,
//! per client address) belongs to that caller.

pub mod in_flight;
pub mod postgres;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use ipnet::Ipv6Net;

use crate::clock::Clock;
use crate::configuration::{Bucket, Period, ThrottleSettings};
use crate::crypto::keyed_digest;
use crate::db::DbError;

/// One limit: at most `limit` hits on `key` in `bucket` per sliding `window`.
#[derive(Clone, Debug)]
pub struct Counter {
    pub bucket: Bucket,
    pub key: String,
    pub limit: u32,
    pub window: Period,
}

impl Counter {
    /// Counts `key` in `bucket`, by the limit its settings give.
    pub fn new(bucket: Bucket, key: String, settings: &ThrottleSettings) -> Self {
        let limit = settings.limit(bucket);
        Self {
            bucket,
            key,
            limit: limit.limit,
            window: limit.window,
        }
    }
}

/// Refused until this long from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blocked {
    pub retry_after: Duration,
}

/// One counted attempt, as its store names it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub bucket: Bucket,
    pub key: String,
    pub id: String,
}

/// An attempt [`Throttle::begin`] let through, pending until its outcome is
/// reported.
#[derive(Debug)]
#[must_use = "an attempt's outcome is reported with failed() or succeeded()"]
pub struct Attempt {
    hits: Vec<Hit>,
}

/// What a store answers to a reservation.
#[derive(Debug)]
pub enum Reserved {
    /// Counted: one hit per counter.
    Hits(Vec<Hit>),
    /// A counter's failures have reached its limit: refused until then.
    Blocked(Blocked),
    /// Failures and attempts in flight together reach a limit: try again
    /// when some have finished.
    Busy,
}

/// A pending attempt older than this never reported back (its instance
/// died): it counts as a failure.
pub const PENDING_AT_MOST: Duration = Duration::from_secs(60);
/// How long an attempt waits for attempts in flight before giving up.
const WAIT_AT_MOST: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Attempts in flight kept a limit full for longer than an attempt will
    /// wait: the client may retry shortly.
    #[error("too many attempts in flight")]
    Busy,
}

/// Where the counts live. Each store keeps [`Store::reserve`] atomic across
/// every instance sharing it.
pub trait Store: Send + Sync {
    /// Adds one hit to every counter (pending, or a failure at once), unless
    /// a counter is at its limit: failures alone (blocked), or failures and
    /// pending attempts together (busy, when `pending`).
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
        pending: bool,
    ) -> BoxFuture<'a, Result<Reserved, ThrottleError>>;

    /// A pending hit is a failure from `now`.
    fn confirm<'a>(
        &'a self,
        hit: &'a Hit,
        window: Period,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), ThrottleError>>;

    /// Takes a pending hit back.
    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>>;

    /// Forgets the counter's failures.
    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>>;
}

#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn Store>,
    /// Keys identifiers with an HMAC, so the store never holds the text
    /// typed (which may be a password typed into the wrong field).
    secret: [u8; 32],
    clock: Clock,
}

impl Throttle {
    pub fn new(store: impl Store + 'static, secret: [u8; 32], clock: Clock) -> Self {
        Self {
            store: Arc::new(store),
            secret,
            clock,
        }
    }

    /// Counts one attempt against every counter now, or refuses it if any
    /// of them is at its limit (then none counts it).
    #[tracing::instrument(skip_all)]
    pub async fn hit(&self, counters: &[Counter]) -> Result<Result<(), Blocked>, ThrottleError> {
        match self
            .store
            .reserve(counters, self.clock.now(), false)
            .await?
        {
            Reserved::Hits(_) => Ok(Ok(())),
            Reserved::Blocked(blocked) => Ok(Err(blocked)),
            Reserved::Busy => Err(ThrottleError::Busy),
        }
    }

    /// Starts an attempt whose outcome is not known yet. Refused when a
    /// counter's failures have reached its limit; waits (a little at a
    /// time) while attempts in flight might still reach it.
    #[tracing::instrument(skip_all)]
    pub async fn begin(
        &self,
        counters: &[Counter],
    ) -> Result<Result<Attempt, Blocked>, ThrottleError> {
        let deadline = std::time::Instant::now() + WAIT_AT_MOST;
        loop {
            match self.store.reserve(counters, self.clock.now(), true).await? {
                Reserved::Hits(hits) => return Ok(Ok(Attempt { hits })),
                Reserved::Blocked(blocked) => return Ok(Err(blocked)),
                Reserved::Busy if std::time::Instant::now() >= deadline => {
                    return Err(ThrottleError::Busy);
                }
                Reserved::Busy => {
                    let jitter = u64::from(rand::random::<u8>() % 40);
                    tokio::time::sleep(Duration::from_millis(20 + jitter)).await;
                }
            }
        }
    }

    /// The attempt failed: each of its hits is now a failure.
    pub async fn failed(
        &self,
        attempt: Attempt,
        counters: &[Counter],
    ) -> Result<(), ThrottleError> {
        let now = self.clock.now();
        for (hit, counter) in attempt.hits.iter().zip(counters) {
            self.store.confirm(hit, counter.window, now).await?;
        }
        Ok(())
    }

    /// The attempt succeeded (or never came to a verdict): it counts for
    /// nothing.
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), ThrottleError> {
        for hit in &attempt.hits {
            self.store.release(hit).await?;
        }
        Ok(())
    }

    /// Forgets the failures counted against `counter`.
    pub async fn reset(&self, counter: &Counter) -> Result<(), ThrottleError> {
        self.store.clear(counter).await
    }

    /// A key for free text (a login identifier): an HMAC, not the text.
    pub fn text_key(&self, text: &str) -> String {
        keyed_digest(&self.secret, text.as_bytes())
    }
}

/// A key for the client's address: IPv4-mapped IPv6 addresses count as
/// their IPv4 address, and IPv6 clients by /64, the block one subscriber
/// usually holds.
pub fn client_key(ip: Option<IpAddr>) -> String {
    match ip {
        None => "unknown".into(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => Ipv6Net::new(v6, 64)
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
    }
}

/// The sliding window's arithmetic: blocked while the `limit`-th newest hit
/// is inside the window, until it leaves. Whole seconds for `Retry-After`,
/// never 0 while still blocked.
fn blocked_until(
    limit_th_newest: Option<DateTime<Utc>>,
    window: Period,
    now: DateTime<Utc>,
) -> Option<Blocked> {
    let wait = (limit_th_newest? + window.delta() - now).to_std().ok()?;
    Some(Blocked {
        retry_after: Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn clients_are_keyed_by_ipv4_or_ipv6_64() {
        let key = |ip: &str| client_key(Some(ip.parse().unwrap()));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2:aaaa::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn retry_after_rounds_up_and_ends_with_the_window() {
        let now = Utc::now();
        let window = Period::from_secs(60).unwrap();
        let blocked =
            blocked_until(Some(now - TimeDelta::milliseconds(30_500)), window, now).unwrap();
        assert_eq!(blocked.retry_after, Duration::from_secs(30));
        assert!(blocked_until(Some(now - TimeDelta::seconds(61)), window, now).is_none());
        assert!(blocked_until(None, window, now).is_none());
    }
}
