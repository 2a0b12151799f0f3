//! Throttling, not lockout: sliding-window limits on attempts, counted in a
//! store every instance shares (Postgres, or Redis when `REDIS_URL` is set).
//!
//! The one operation is [`Throttle::hit`]: given counters (bucket, key,
//! limit, window) it either counts one attempt against each of them, or
//! refuses with how long to wait. Counting happens atomically with checking
//! the limit, so a burst of parallel attempts cannot all slip in under it.
//! A new limit is a [`Counter`] at its call site; the policy of what to
//! count (per identifier, per client address) belongs to that caller.

pub mod postgres;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use ipnet::Ipv6Net;

use crate::configuration::Period;
use crate::crypto::keyed_digest;
use crate::db::DbError;

/// One limit: at most `limit` hits on `key` in `bucket` per sliding `window`.
#[derive(Clone, Debug)]
pub struct Counter {
    pub bucket: &'static str,
    pub key: String,
    pub limit: u32,
    pub window: Period,
}

/// Refused until this long from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blocked {
    pub retry_after: Duration,
}

/// One counted attempt, as its store names it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub bucket: &'static str,
    pub key: String,
    pub id: String,
}

/// The hits one [`Throttle::hit`] counted, so a caller can take them back.
#[derive(Debug)]
#[must_use = "a reservation is either kept (do nothing) or released"]
pub struct Reservation {
    hits: Vec<Hit>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// Where the counts live. Each store keeps [`Store::reserve`] atomic across
/// every instance sharing it.
pub trait Store: Send + Sync {
    /// Adds one hit to every counter, unless one of them is at its limit:
    /// then nothing is added and the answer says until when.
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Result<Vec<Hit>, Blocked>, ThrottleError>>;

    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>>;

    /// Forgets every hit of the counter.
    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>>;
}

#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn Store>,
    /// Keys identifiers with an HMAC, so the store never holds the text
    /// typed (which may be a password typed into the wrong field).
    secret: [u8; 32],
}

impl Throttle {
    pub fn new(store: impl Store + 'static, secret: [u8; 32]) -> Self {
        Self {
            store: Arc::new(store),
            secret,
        }
    }

    /// Counts one attempt against every counter, or refuses it if any of
    /// them is at its limit (then none counts it).
    #[tracing::instrument(skip_all)]
    pub async fn hit(
        &self,
        counters: &[Counter],
    ) -> Result<Result<Reservation, Blocked>, ThrottleError> {
        let reserved = self.store.reserve(counters, Utc::now()).await?;
        Ok(reserved.map(|hits| Reservation { hits }))
    }

    /// Takes back the attempts a reservation counted.
    pub async fn release(&self, reservation: Reservation) -> Result<(), ThrottleError> {
        for hit in &reservation.hits {
            self.store.release(hit).await?;
        }
        Ok(())
    }

    /// Forgets every attempt counted against `counter`.
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
