//! The throttle's counts in Redis: per counter, a sorted set of failures and
//! one of pending attempts (member: one attempt, score: its time in
//! milliseconds), checked and changed by Lua scripts, which Redis runs
//! atomically.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Blocked, Counter, Hit, PENDING_AT_MOST, Reserved, Store, ThrottleError};
use crate::configuration::{Bucket, Period};
use crate::crypto::random_token;

/// KEYS: failures and pending sets, two per counter. ARGV: now, the pending
/// lifetime (both ms), the member, "1" for a pending hit, then per counter
/// its window (ms) and limit. Stale pending attempts become failures;
/// blocked when failures reach a limit (answering how long, in ms), busy
/// when failures and pending do; else one hit on every counter.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now, ttl, member, pending = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local wait, busy = 0, false
for i = 1, #KEYS / 2 do
  local failures, inflight = KEYS[2 * i - 1], KEYS[2 * i]
  local window, limit = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local stale = redis.call('ZRANGEBYSCORE', inflight, '-inf', now - ttl, 'WITHSCORES')
  for j = 1, #stale, 2 do redis.call('ZADD', failures, stale[j + 1], stale[j]) end
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now - ttl)
  redis.call('ZREMRANGEBYSCORE', failures, '-inf', now - window)
  local failed = redis.call('ZCARD', failures)
  if failed >= limit then
    local nth = redis.call('ZREVRANGE', failures, limit - 1, limit - 1, 'WITHSCORES')
    wait = math.max(wait, tonumber(nth[2]) + window - now, 1)
  elseif pending and failed + redis.call('ZCARD', inflight) >= limit then
    busy = true
  end
end
if wait > 0 then return {'blocked', tostring(wait)} end
if busy then return {'busy'} end
for i = 1, #KEYS / 2 do
  local window = tonumber(ARGV[3 + 2 * i])
  local key = KEYS[2 * i - 1]
  if pending then key = KEYS[2 * i] end
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.max(window, ttl))
end
return {'ok'}
",
    )
});

/// KEYS: a counter's failures and pending sets. ARGV: now, window (ms), the
/// member. The pending attempt becomes a failure.
static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
",
    )
});

pub struct RedisStore {
    redis: ConnectionManager,
    /// Starts every key: instances that must not share counts (a test and
    /// a local server) use different ones.
    prefix: String,
}

impl RedisStore {
    /// Connects now, so a wrong `REDIS_URL` stops the start; afterwards the
    /// manager reconnects by itself, and each command waits at most `timeout`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let redis = redis::Client::open(url)?
            .get_connection_manager_with_config(config)
            .await?;
        Ok(Self {
            redis,
            prefix: prefix.to_owned(),
        })
    }
}

impl RedisStore {
    fn failures_key(&self, bucket: Bucket, key: &str) -> String {
        format!("{}throttle:{}:{key}", self.prefix, bucket.as_str())
    }

    fn pending_key(&self, bucket: Bucket, key: &str) -> String {
        format!("{}throttle:{}:{key}:pending", self.prefix, bucket.as_str())
    }
}

fn millis(period: Period) -> i64 {
    period.delta().num_milliseconds()
}

impl Store for RedisStore {
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
        pending: bool,
    ) -> BoxFuture<'a, Result<Reserved, ThrottleError>> {
        async move {
            let member = format!("{}-{}", now.timestamp_millis(), random_token());
            let mut invocation = RESERVE.prepare_invoke();
            invocation
                .arg(now.timestamp_millis())
                .arg(i64::try_from(PENDING_AT_MOST.as_millis()).unwrap_or(i64::MAX))
                .arg(&member)
                .arg(if pending { "1" } else { "0" });
            for counter in counters {
                invocation
                    .key(self.failures_key(counter.bucket, &counter.key))
                    .key(self.pending_key(counter.bucket, &counter.key))
                    .arg(millis(counter.window))
                    .arg(counter.limit);
            }
            let answer: Vec<String> = invocation.invoke_async(&mut self.redis.clone()).await?;
            Ok(match answer.first().map(String::as_str) {
                Some("ok") => Reserved::Hits(
                    counters
                        .iter()
                        .map(|counter| Hit {
                            bucket: counter.bucket,
                            key: counter.key.clone(),
                            id: member.clone(),
                        })
                        .collect(),
                ),
                Some("busy") => Reserved::Busy,
                _ => {
                    let wait: u64 = answer.get(1).and_then(|ms| ms.parse().ok()).unwrap_or(1000);
                    Reserved::Blocked(Blocked {
                        retry_after: Duration::from_secs(wait.div_ceil(1000).max(1)),
                    })
                }
            })
        }
        .boxed()
    }

    fn confirm<'a>(
        &'a self,
        hit: &'a Hit,
        window: Period,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            CONFIRM
                .key(self.failures_key(hit.bucket, &hit.key))
                .key(self.pending_key(hit.bucket, &hit.key))
                .arg(now.timestamp_millis())
                .arg(millis(window))
                .arg(&hit.id)
                .invoke_async::<i64>(&mut self.redis.clone())
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            // From the failures too: a hit that went stale was moved there,
            // and Postgres' release takes it back wherever it is.
            redis::pipe()
                .atomic()
                .cmd("ZREM")
                .arg(self.pending_key(hit.bucket, &hit.key))
                .arg(&hit.id)
                .ignore()
                .cmd("ZREM")
                .arg(self.failures_key(hit.bucket, &hit.key))
                .arg(&hit.id)
                .ignore()
                .query_async::<()>(&mut self.redis.clone())
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            redis::cmd("DEL")
                .arg(self.failures_key(counter.bucket, &counter.key))
                .query_async::<()>(&mut self.redis.clone())
                .await?;
            Ok(())
        }
        .boxed()
    }
}
