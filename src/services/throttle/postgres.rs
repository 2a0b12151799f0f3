//! The throttle's counts as rows of `throttle_hits`, checked and added
//! under a per-counter advisory lock.

use chrono::{DateTime, Utc};
use diesel::Connection;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Blocked, Counter, Hit, Store, ThrottleError, blocked_until};
use crate::db::{self, PgPool, throttle_hits};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Store for PostgresStore {
    fn reserve<'a>(
        &'a self,
        counters: &'a [Counter],
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Result<Vec<Hit>, Blocked>, ThrottleError>> {
        let counters = counters.to_vec();
        async move {
            let reserved = db::run(&self.pool, move |conn| {
                conn.transaction(|conn| {
                    // Locks are taken in the callers' fixed counter order.
                    let mut longest: Option<Blocked> = None;
                    for counter in &counters {
                        throttle_hits::lock(conn, counter.bucket, &counter.key)?;
                        let since = now - counter.window.delta();
                        let limit_th_newest = throttle_hits::nth_newest_since(
                            conn,
                            counter.bucket,
                            &counter.key,
                            since,
                            counter.limit,
                        )?;
                        longest = longest.max(blocked_until(limit_th_newest, counter.window, now));
                    }
                    if let Some(blocked) = longest {
                        return Ok(Err(blocked));
                    }
                    let mut hits = Vec::with_capacity(counters.len());
                    for counter in &counters {
                        // Expired rows of this kind go as new ones come, so
                        // the table holds what the windows can still see.
                        throttle_hits::delete_older(
                            conn,
                            counter.bucket,
                            now - counter.window.delta(),
                        )?;
                        let id = throttle_hits::insert(conn, counter.bucket, &counter.key, now)?;
                        hits.push(Hit {
                            bucket: counter.bucket,
                            key: counter.key.clone(),
                            id: id.to_string(),
                        });
                    }
                    Ok(Ok(hits))
                })
            })
            .await?;
            Ok(reserved)
        }
        .boxed()
    }

    fn release<'a>(&'a self, hit: &'a Hit) -> BoxFuture<'a, Result<(), ThrottleError>> {
        async move {
            // Ids are ours; anything else names no row.
            if let Ok(id) = hit.id.parse::<i64>() {
                db::run(&self.pool, move |conn| throttle_hits::delete(conn, id)).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn clear<'a>(&'a self, counter: &'a Counter) -> BoxFuture<'a, Result<(), ThrottleError>> {
        let (bucket, key) = (counter.bucket, counter.key.clone());
        async move {
            db::run(&self.pool, move |conn| {
                throttle_hits::delete_key(conn, bucket, &key)
            })
            .await?;
            Ok(())
        }
        .boxed()
    }
}
