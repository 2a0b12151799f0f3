//! The throttle's counts as Redis sorted sets (member: one hit, score: its
//! time in milliseconds), checked and added in one MULTI transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Blocked, Counter, Hit, Store, ThrottleError, blocked_until};
use crate::crypto::random_token;

pub struct RedisStore {
    redis: ConnectionManager,
}

impl RedisStore {
    /// Connects now, so a wrong `REDIS_URL` stops the start; afterwards the
    /// manager reconnects by itself, and each command waits at most `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let redis = redis::Client::open(url)?
            .get_connection_manager_with_config(config)
            .await?;
        Ok(Self { redis })
    }
}

fn redis_key(bucket: &str, key: &str) -> String {
    format!("authd:throttle:{bucket}:{key}")
}

impl Store for RedisStore {
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Result<Vec<Hit>, Blocked>, ThrottleError>> {
        async move {
            let mut redis = self.redis.clone();
            let now_ms = now.timestamp_millis();
            let member = format!("{now_ms}-{}", random_token());
            let mut hits = Vec::with_capacity(counters.len());
            let mut over = false;
            for counter in counters {
                let key = redis_key(counter.bucket, &counter.key);
                let window_ms = counter.window.delta().num_milliseconds();
                // Added and counted in one transaction: of N parallel
                // attempts, each sees a different count, and only those
                // within the limit stay.
                let (count,): (u64,) = redis::pipe()
                    .atomic()
                    .zrembyscore(&key, "-inf", now_ms - window_ms)
                    .ignore()
                    .zadd(&key, &member, now_ms)
                    .ignore()
                    .zcard(&key)
                    .pexpire(&key, window_ms)
                    .ignore()
                    .query_async(&mut redis)
                    .await?;
                hits.push(Hit {
                    bucket: counter.bucket,
                    key: counter.key.clone(),
                    id: member.clone(),
                });
                over |= count > u64::from(counter.limit);
            }
            if !over {
                return Ok(Ok(hits));
            }
            for hit in &hits {
                self.release(hit).await?;
            }
            let mut longest = Blocked {
                retry_after: Duration::ZERO,
            };
            for counter in counters {
                let offset = isize::try_from(counter.limit).unwrap_or(isize::MAX) - 1;
                let since = (now - counter.window.delta()).timestamp_millis() + 1;
                let newest: Vec<(String, i64)> = redis
                    .zrevrangebyscore_limit_withscores(
                        redis_key(counter.bucket, &counter.key),
                        "+inf",
                        since,
                        offset,
                        1,
                    )
                    .await?;
                let limit_th_newest = newest
                    .first()
                    .and_then(|(_, millis)| DateTime::from_timestamp_millis(*millis));
                if let Some(blocked) = blocked_until(limit_th_newest, counter.window, now) {
                    longest = longest.max(blocked);
                }
            }
            // Over the limit yet nothing to wait for: a race with expiry; one second.
            Ok(Err(Blocked {
                retry_after: longest.retry_after.max(Duration::from_secs(1)),
            }))
        }
        .boxed()
    }

    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            self.redis
                .clone()
                .zrem::<_, _, ()>(redis_key(hit.bucket, &hit.key), &hit.id)
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            self.redis
                .clone()
                .del::<_, ()>(redis_key(counter.bucket, &counter.key))
                .await?;
            Ok(())
        }
        .boxed()
    }
}
