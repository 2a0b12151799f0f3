//! Throttling, not lockout: failed logins are counted per (identifier,
//! client IP) and per client IP, and registrations per client IP, over a
//! sliding window. Past a limit the request is refused with 429 before any
//! password is checked. Counting per IP too means an attacker elsewhere
//! cannot lock a user out.
//!
//! An attempt is counted *before* its password check, atomically with the
//! check of the limit, so a burst of parallel guesses cannot all slip in
//! under it; a successful login then takes its own count back.
//!
//! The counts live in Postgres, or in Redis when `REDIS_URL` is set, so
//! every instance behind a load balancer sees the same ones.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use hmac::{Hmac, Mac};
use ipnet::Ipv6Net;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::Sha256;

use crate::configuration::ThrottleSettings;
use crate::db::{self, PgPool, StoreError};
use crate::schema::throttle_hits;

#[derive(Clone)]
enum Store {
    Postgres(PgPool),
    Redis(ConnectionManager),
}

#[derive(Clone)]
pub struct Throttle {
    store: Store,
    limits: ThrottleSettings,
    /// Keys hold an HMAC of the identifier, never the text typed (which may
    /// be a password typed into the wrong field).
    key: [u8; 32],
}

/// Refused until this long from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blocked {
    pub retry_after: Duration,
}

/// One counter: a kind of event, for one key.
#[derive(Clone)]
struct Counter {
    bucket: &'static str,
    key: String,
    limit: u32,
    window: Duration,
}

/// One counted attempt, as stored.
#[derive(Debug)]
enum Hit {
    Row(i64),
    Member { key: String, member: String },
}

/// A login attempt that was let through and counted.
#[derive(Debug)]
pub struct LoginAttempt {
    identifier_counter: Option<String>,
    hits: Vec<Hit>,
}

impl Throttle {
    pub fn postgres(pool: PgPool, limits: ThrottleSettings, key: [u8; 32]) -> Self {
        Self {
            store: Store::Postgres(pool),
            limits,
            key,
        }
    }

    pub async fn redis(
        url: &str,
        timeout: Duration,
        limits: ThrottleSettings,
        key: [u8; 32],
    ) -> Result<Self, redis::RedisError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let manager = redis::Client::open(url)?
            .get_connection_manager_with_config(config)
            .await?;
        Ok(Self {
            store: Store::Redis(manager),
            limits,
            key,
        })
    }

    fn login_counters(&self, identifier: &str, ip: Option<IpAddr>) -> [Counter; 2] {
        let ip = ip_key(ip);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(identifier.trim().to_lowercase().as_bytes());
        let identifier: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        [
            Counter {
                bucket: "login_identifier",
                key: format!("{identifier}|{ip}"),
                limit: self.limits.login_per_identifier,
                window: self.limits.login_window,
            },
            Counter {
                bucket: "login_ip",
                key: ip,
                limit: self.limits.login_per_ip,
                window: self.limits.login_window,
            },
        ]
    }

    /// Before the password check: counts the attempt against both login
    /// limits, or refuses it if either is reached.
    pub async fn begin_login(
        &self,
        identifier: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<LoginAttempt, Blocked>, StoreError> {
        let counters = self.login_counters(identifier, ip);
        Ok(self.reserve(&counters).await?.map(|hits| LoginAttempt {
            identifier_counter: Some(counters[0].key.clone()),
            hits,
        }))
    }

    /// The password was right: this identifier's failures from this IP are
    /// forgiven, and the attempt no longer counts against the IP.
    pub async fn login_succeeded(&self, attempt: LoginAttempt) -> Result<(), StoreError> {
        if let Some(key) = attempt.identifier_counter {
            self.clear("login_identifier", key).await?;
        }
        for hit in attempt.hits {
            self.release(hit).await?;
        }
        Ok(())
    }

    /// Counts a registration attempt, unless the IP is already at its limit.
    pub async fn registration(&self, ip: Option<IpAddr>) -> Result<Option<Blocked>, StoreError> {
        let counter = Counter {
            bucket: "register_ip",
            key: ip_key(ip),
            limit: self.limits.register_per_ip,
            window: self.limits.register_window,
        };
        Ok(self.reserve(&[counter]).await?.err())
    }

    /// Adds one hit to every counter, unless one of them is at its limit.
    async fn reserve(&self, counters: &[Counter]) -> Result<Result<Vec<Hit>, Blocked>, StoreError> {
        match &self.store {
            Store::Postgres(pool) => {
                let counters = counters.to_vec();
                db::run(pool, move |conn| {
                    conn.transaction(|conn| reserve_rows(conn, &counters, Utc::now()))
                })
                .await
            }
            Store::Redis(manager) => self.reserve_members(manager.clone(), counters).await,
        }
    }

    async fn reserve_members(
        &self,
        mut redis: ConnectionManager,
        counters: &[Counter],
    ) -> Result<Result<Vec<Hit>, Blocked>, StoreError> {
        let now = Utc::now();
        let member = format!(
            "{}-{}",
            now.timestamp_millis(),
            crate::sessions::random_token()
        );
        let mut hits = Vec::new();
        let mut over = false;
        for counter in counters {
            let key = redis_key(counter);
            let window = window_of(counter).num_milliseconds();
            // Added and counted in one transaction: of N parallel attempts,
            // each sees a different count, and only those within the limit stay.
            let (count,): (u64,) = redis::pipe()
                .atomic()
                .zrembyscore(&key, "-inf", now.timestamp_millis() - window)
                .ignore()
                .zadd(&key, &member, now.timestamp_millis())
                .ignore()
                .zcard(&key)
                .pexpire(&key, window)
                .ignore()
                .query_async(&mut redis)
                .await
                .map_err(redis_unavailable)?;
            hits.push(Hit::Member {
                key,
                member: member.clone(),
            });
            over |= count > u64::from(counter.limit);
        }
        if !over {
            return Ok(Ok(hits));
        }
        for hit in hits {
            self.release(hit).await?;
        }
        let mut longest = Blocked {
            retry_after: Duration::ZERO,
        };
        for counter in counters {
            let key = redis_key(counter);
            let offset = isize::try_from(counter.limit).unwrap_or(isize::MAX) - 1;
            let window = window_of(counter);
            let newest: Vec<(String, i64)> = redis
                .zrevrangebyscore_limit_withscores(
                    &key,
                    "+inf",
                    (now - window).timestamp_millis() + 1,
                    offset,
                    1,
                )
                .await
                .map_err(redis_unavailable)?;
            let limit_th_newest = newest
                .first()
                .and_then(|(_, millis)| DateTime::from_timestamp_millis(*millis));
            longest = longest.max(blocked_until(limit_th_newest, window, now).unwrap_or(longest));
        }
        // Over the limit yet nothing to wait for: a race with expiry; one second.
        Ok(Err(Blocked {
            retry_after: longest.retry_after.max(Duration::from_secs(1)),
        }))
    }

    async fn clear(&self, bucket: &'static str, key: String) -> Result<(), StoreError> {
        match &self.store {
            Store::Postgres(pool) => {
                db::run(pool, move |conn| {
                    diesel::delete(
                        throttle_hits::table
                            .filter(throttle_hits::bucket.eq(bucket))
                            .filter(throttle_hits::key.eq(key)),
                    )
                    .execute(conn)
                    .map(drop)
                })
                .await
            }
            Store::Redis(manager) => manager
                .clone()
                .del::<_, ()>(format!("authd:throttle:{bucket}:{key}"))
                .await
                .map_err(redis_unavailable),
        }
    }

    async fn release(&self, hit: Hit) -> Result<(), StoreError> {
        match (&self.store, hit) {
            (Store::Postgres(pool), Hit::Row(id)) => {
                db::run(pool, move |conn| {
                    diesel::delete(throttle_hits::table.find(id))
                        .execute(conn)
                        .map(drop)
                })
                .await
            }
            (Store::Redis(manager), Hit::Member { key, member }) => manager
                .clone()
                .zrem::<_, _, ()>(key, member)
                .await
                .map_err(redis_unavailable),
            _ => Ok(()),
        }
    }
}

/// Postgres: under a per-counter advisory lock (taken in a fixed order), a
/// counter at its limit refuses; otherwise every counter gets a row.
fn reserve_rows(
    conn: &mut PgConnection,
    counters: &[Counter],
    now: DateTime<Utc>,
) -> QueryResult<Result<Vec<Hit>, Blocked>> {
    let mut longest: Option<Blocked> = None;
    for counter in counters {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 7400))")
            .bind::<Text, _>(counter.bucket)
            .bind::<Text, _>(&counter.key)
            .execute(conn)?;
        let window = window_of(counter);
        let limit_th_newest: Option<DateTime<Utc>> = throttle_hits::table
            .filter(throttle_hits::bucket.eq(counter.bucket))
            .filter(throttle_hits::key.eq(&counter.key))
            .filter(throttle_hits::at.gt(now - window))
            .order(throttle_hits::at.desc())
            .offset(i64::from(counter.limit) - 1)
            .select(throttle_hits::at)
            .first(conn)
            .optional()?;
        longest = longest.max(blocked_until(limit_th_newest, window, now));
    }
    if let Some(blocked) = longest {
        return Ok(Err(blocked));
    }
    let mut hits = Vec::new();
    for counter in counters {
        // Expired rows of this kind go as new ones come, so the table holds
        // what the windows can still see.
        diesel::delete(
            throttle_hits::table
                .filter(throttle_hits::bucket.eq(counter.bucket))
                .filter(throttle_hits::at.le(now - window_of(counter))),
        )
        .execute(conn)?;
        let id: i64 = diesel::insert_into(throttle_hits::table)
            .values((
                throttle_hits::bucket.eq(counter.bucket),
                throttle_hits::key.eq(&counter.key),
                throttle_hits::at.eq(now),
            ))
            .returning(throttle_hits::id)
            .get_result(conn)?;
        hits.push(Hit::Row(id));
    }
    Ok(Ok(hits))
}

fn window_of(counter: &Counter) -> TimeDelta {
    TimeDelta::from_std(counter.window).expect("configuration caps windows")
}

/// Blocked while the limit-th newest hit is inside the window: until it
/// leaves. Whole seconds for Retry-After, never 0 while still blocked.
fn blocked_until(
    limit_th_newest: Option<DateTime<Utc>>,
    window: TimeDelta,
    now: DateTime<Utc>,
) -> Option<Blocked> {
    let wait = (limit_th_newest? + window - now).to_std().ok()?;
    Some(Blocked {
        retry_after: Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
    })
}

/// One key per client: IPv4-mapped IPv6 addresses count as their IPv4
/// address, and IPv6 clients by /64, the block one subscriber usually holds.
fn ip_key(ip: Option<IpAddr>) -> String {
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

fn redis_key(counter: &Counter) -> String {
    format!("authd:throttle:{}:{}", counter.bucket, counter.key)
}

fn redis_unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_ipv4_or_ipv6_64() {
        let key = |ip: &str| ip_key(Some(ip.parse().unwrap()));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2:aaaa::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn retry_after_rounds_up_and_ends_with_the_window() {
        let now = Utc::now();
        let window = TimeDelta::seconds(60);
        let blocked =
            blocked_until(Some(now - TimeDelta::milliseconds(30_500)), window, now).unwrap();
        assert_eq!(blocked.retry_after, Duration::from_secs(30));
        assert!(blocked_until(Some(now - TimeDelta::seconds(61)), window, now).is_none());
        assert!(blocked_until(None, window, now).is_none());
    }
}
