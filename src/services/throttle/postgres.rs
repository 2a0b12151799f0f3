//! The throttle's counts as rows of `throttle_hits`, checked and added
//! under a per-counter advisory lock.

use chrono::{DateTime, Utc};
use diesel::Connection;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{
    Blocked, Counter, Hit, PENDING_AT_MOST, Reserved, Store, ThrottleError, blocked_until,
};
use crate::configuration::Period;
use crate::db::{self, PgPool, throttle_hits};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn stale_before(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::TimeDelta::from_std(PENDING_AT_MOST).unwrap_or(chrono::TimeDelta::MAX)
}

/// Row ids are ours; anything else names no row.
fn row(hit: &Hit) -> Option<i64> {
    hit.id.parse().ok()
}

impl Store for PostgresStore {
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
        pending: bool,
    ) -> BoxFuture<'a, Result<Reserved, ThrottleError>> {
        let counters = counters.to_vec();
        async move {
            let reserved = db::run(&self.pool, move |conn| {
                conn.transaction(|conn| {
                    let stale = stale_before(now);
                    // Locks are taken in the callers' fixed counter order.
                    let mut longest: Option<Blocked> = None;
                    let mut busy = false;
                    for counter in &counters {
                        throttle_hits::lock(conn, counter.bucket.as_str(), &counter.key)?;
                        let since = now - counter.window.delta();
                        let limit_th_failure = throttle_hits::nth_newest_failure(
                            conn,
                            counter.bucket.as_str(),
                            &counter.key,
                            since,
                            stale,
                            counter.limit,
                        )?;
                        longest = longest.max(blocked_until(limit_th_failure, counter.window, now));
                        if pending && !busy {
                            // Busy when failures and attempts in flight
                            // together reach the limit.
                            let in_flight = throttle_hits::count_pending(
                                conn,
                                counter.bucket.as_str(),
                                &counter.key,
                                stale,
                            )?;
                            let in_flight = u32::try_from(in_flight).unwrap_or(u32::MAX);
                            busy = in_flight >= counter.limit
                                || throttle_hits::nth_newest_failure(
                                    conn,
                                    counter.bucket.as_str(),
                                    &counter.key,
                                    since,
                                    stale,
                                    counter.limit - in_flight,
                                )?
                                .is_some();
                        }
                    }
                    if let Some(blocked) = longest {
                        return Ok(Reserved::Blocked(blocked));
                    }
                    if busy {
                        return Ok(Reserved::Busy);
                    }
                    let mut hits = Vec::with_capacity(counters.len());
                    for counter in &counters {
                        // Expired rows of this kind go as new ones come, so
                        // the table holds what the windows can still see.
                        let visible = counter.window.delta().max(now - stale);
                        throttle_hits::delete_older(conn, counter.bucket.as_str(), now - visible)?;
                        let id = throttle_hits::insert(
                            conn,
                            counter.bucket.as_str(),
                            &counter.key,
                            now,
                            pending,
                        )?;
                        hits.push(Hit {
                            bucket: counter.bucket,
                            key: counter.key.clone(),
                            id: id.to_string(),
                        });
                    }
                    Ok(Reserved::Hits(hits))
                })
            })
            .await?;
            Ok(reserved)
        }
        .boxed()
    }

    fn confirm<'a>(
        &'a self,
        hit: &'a Hit,
        _window: Period,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            if let Some(id) = row(hit) {
                db::run(&self.pool, move |conn| {
                    throttle_hits::confirm_failure(conn, id, now)
                })
                .await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            if let Some(id) = row(hit) {
                db::run(&self.pool, move |conn| throttle_hits::delete(conn, id)).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>> {
        let (bucket, key) = (counter.bucket.as_str(), counter.key.clone());
        async move {
            db::run(&self.pool, move |conn| {
                throttle_hits::delete_failures(conn, bucket, &key)
            })
            .await?;
            Ok(())
        }
        .boxed()
    }
}
