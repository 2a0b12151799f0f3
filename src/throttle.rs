//! Throttling, not lockout: failed logins are counted per (identifier,
//! client IP) and per client IP, and registrations per client IP, over a
//! sliding window. Past a limit the request is refused with 429 before any
//! password is checked. Counting per IP too means an attacker elsewhere
//! cannot lock a user out.
//!
//! The counts live in Postgres, or in Redis when `REDIS_URL` is set, so
//! every instance behind a load balancer sees the same ones.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

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
}

/// Refused until this long from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Blocked {
    pub retry_after: Duration,
}

/// One counter: a kind of event, for one key.
struct Counter {
    bucket: &'static str,
    key: String,
    limit: u32,
    window: Duration,
}

impl Throttle {
    pub fn postgres(pool: PgPool, limits: ThrottleSettings) -> Self {
        Self {
            store: Store::Postgres(pool),
            limits,
        }
    }

    pub async fn redis(
        url: &str,
        timeout: Duration,
        limits: ThrottleSettings,
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
        })
    }

    fn login_counters(&self, identifier: &str, ip: Option<IpAddr>) -> [Counter; 2] {
        let ip = ip_key(ip);
        [
            Counter {
                bucket: "login_identifier",
                key: format!("{}|{ip}", digest(&identifier.trim().to_lowercase())),
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

    /// Before the password check: is this identifier or IP over its limit?
    pub async fn check_login(
        &self,
        identifier: &str,
        ip: Option<IpAddr>,
    ) -> Result<Option<Blocked>, StoreError> {
        let mut longest = None;
        for counter in self.login_counters(identifier, ip) {
            longest = longest.max(self.blocked(&counter).await?);
        }
        Ok(longest)
    }

    pub async fn login_failed(
        &self,
        identifier: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        for counter in self.login_counters(identifier, ip) {
            self.hit(&counter).await?;
        }
        Ok(())
    }

    /// A success forgives this identifier's failures from this IP (not the
    /// IP's failures for other identifiers).
    pub async fn login_succeeded(
        &self,
        identifier: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        let [identifier_counter, _] = self.login_counters(identifier, ip);
        self.clear(&identifier_counter).await
    }

    /// Counts a registration attempt, unless the IP is already over its limit.
    pub async fn registration(&self, ip: Option<IpAddr>) -> Result<Option<Blocked>, StoreError> {
        let counter = Counter {
            bucket: "register_ip",
            key: ip_key(ip),
            limit: self.limits.register_per_ip,
            window: self.limits.register_window,
        };
        let blocked = self.blocked(&counter).await?;
        if blocked.is_none() {
            self.hit(&counter).await?;
        }
        Ok(blocked)
    }

    /// Blocked while `limit` hits are within the window: until the oldest of
    /// the newest `limit` hits leaves it.
    async fn blocked(&self, counter: &Counter) -> Result<Option<Blocked>, StoreError> {
        let window = TimeDelta::from_std(counter.window).expect("configuration caps windows");
        let now = Utc::now();
        let limit_th_newest: Option<DateTime<Utc>> = match &self.store {
            Store::Postgres(pool) => {
                let (bucket, key, offset) = (
                    counter.bucket,
                    counter.key.clone(),
                    i64::from(counter.limit) - 1,
                );
                db::run(pool, move |conn| {
                    throttle_hits::table
                        .filter(throttle_hits::bucket.eq(bucket))
                        .filter(throttle_hits::key.eq(key))
                        .filter(throttle_hits::at.gt(now - window))
                        .order(throttle_hits::at.desc())
                        .offset(offset)
                        .select(throttle_hits::at)
                        .first(conn)
                        .optional()
                })
                .await?
            }
            Store::Redis(manager) => {
                let mut redis = manager.clone();
                let key = redis_key(counter);
                let index = isize::try_from(counter.limit).unwrap_or(isize::MAX) - 1;
                let hits: Vec<(String, i64)> = redis
                    .zrevrangebyscore_limit_withscores(
                        &key,
                        "+inf",
                        (now - window).timestamp_millis() + 1,
                        index,
                        1,
                    )
                    .await
                    .map_err(redis_unavailable)?;
                hits.first()
                    .and_then(|(_, millis)| DateTime::from_timestamp_millis(*millis))
            }
        };
        Ok(limit_th_newest.and_then(|at| {
            let wait = (at + window - now).to_std().ok()?;
            // Whole seconds for Retry-After, never 0 while still blocked.
            Some(Blocked {
                retry_after: Duration::from_secs(
                    wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                ),
            })
        }))
    }

    async fn hit(&self, counter: &Counter) -> Result<(), StoreError> {
        let window = TimeDelta::from_std(counter.window).expect("configuration caps windows");
        match &self.store {
            Store::Postgres(pool) => {
                let (bucket, key) = (counter.bucket, counter.key.clone());
                db::run(pool, move |conn| {
                    diesel::insert_into(throttle_hits::table)
                        .values((
                            throttle_hits::bucket.eq(bucket),
                            throttle_hits::key.eq(&key),
                        ))
                        .execute(conn)?;
                    // Keep the table to what the windows can still see.
                    diesel::delete(
                        throttle_hits::table
                            .filter(throttle_hits::bucket.eq(bucket))
                            .filter(throttle_hits::key.eq(&key))
                            .filter(throttle_hits::at.le(Utc::now() - window)),
                    )
                    .execute(conn)
                    .map(drop)
                })
                .await
            }
            Store::Redis(manager) => {
                let mut redis = manager.clone();
                let key = redis_key(counter);
                let now = Utc::now().timestamp_millis();
                let member = format!("{now}-{}", crate::sessions::random_token());
                redis::pipe()
                    .atomic()
                    .zadd(&key, member, now)
                    .ignore()
                    .zrembyscore(&key, "-inf", now - window.num_milliseconds())
                    .ignore()
                    .pexpire(&key, window.num_milliseconds())
                    .ignore()
                    .query_async::<()>(&mut redis)
                    .await
                    .map_err(redis_unavailable)
            }
        }
    }

    async fn clear(&self, counter: &Counter) -> Result<(), StoreError> {
        match &self.store {
            Store::Postgres(pool) => {
                let (bucket, key) = (counter.bucket, counter.key.clone());
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
            Store::Redis(manager) => {
                let mut redis = manager.clone();
                redis
                    .del::<_, ()>(redis_key(counter))
                    .await
                    .map_err(redis_unavailable)
            }
        }
    }
}

fn ip_key(ip: Option<IpAddr>) -> String {
    ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).to_string()
}

/// Keys hold a digest of the identifier: a password typed into the
/// username field by mistake is not kept.
fn digest(identifier: &str) -> String {
    Sha256::digest(identifier.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn redis_key(counter: &Counter) -> String {
    format!("authd:throttle:{}:{}", counter.bucket, counter.key)
}

fn redis_unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}
