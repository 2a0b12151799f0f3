//! The `throttle_hits` table: one row per counted attempt, for the
//! throttle's Postgres store. Keys are digests, never what a client typed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::schema::throttle_hits;

/// Serialises every transaction that counts against `(bucket, key)` until
/// the current transaction ends.
pub fn lock(conn: &mut PgConnection, bucket: &str, key: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 7400))")
        .bind::<Text, _>(bucket)
        .bind::<Text, _>(key)
        .execute(conn)
        .map(drop)
}

/// The time of the `n`-th newest failure (1-based) after `since`, if there
/// are that many. A pending hit from before `stale_before` counts as a
/// failure: its attempt never reported back.
pub fn nth_newest_failure(
    conn: &mut PgConnection,
    bucket: &str,
    key: &str,
    since: DateTime<Utc>,
    stale_before: DateTime<Utc>,
    n: u32,
) -> QueryResult<Option<DateTime<Utc>>> {
    throttle_hits::table
        .filter(throttle_hits::bucket.eq(bucket))
        .filter(throttle_hits::key.eq(key))
        .filter(throttle_hits::at.gt(since))
        .filter(
            throttle_hits::pending
                .eq(false)
                .or(throttle_hits::at.le(stale_before)),
        )
        .order(throttle_hits::at.desc())
        .offset(i64::from(n.max(1)) - 1)
        .select(throttle_hits::at)
        .first(conn)
        .optional()
}

/// How many attempts are still pending (newer than `stale_before`).
pub fn count_pending(
    conn: &mut PgConnection,
    bucket: &str,
    key: &str,
    stale_before: DateTime<Utc>,
) -> QueryResult<i64> {
    throttle_hits::table
        .filter(throttle_hits::bucket.eq(bucket))
        .filter(throttle_hits::key.eq(key))
        .filter(throttle_hits::pending)
        .filter(throttle_hits::at.gt(stale_before))
        .count()
        .get_result(conn)
}

pub fn insert(
    conn: &mut PgConnection,
    bucket: &str,
    key: &str,
    at: DateTime<Utc>,
    pending: bool,
) -> QueryResult<i64> {
    diesel::insert_into(throttle_hits::table)
        .values((
            throttle_hits::bucket.eq(bucket),
            throttle_hits::key.eq(key),
            throttle_hits::at.eq(at),
            throttle_hits::pending.eq(pending),
        ))
        .returning(throttle_hits::id)
        .get_result(conn)
}

/// A pending attempt failed: from now on it is a failure.
pub fn confirm_failure(conn: &mut PgConnection, id: i64, at: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(throttle_hits::table.find(id))
        .set((throttle_hits::pending.eq(false), throttle_hits::at.eq(at)))
        .execute(conn)
        .map(drop)
}

/// Drops a bucket's hits at or before `until`: what no window can see.
pub fn delete_older(
    conn: &mut PgConnection,
    bucket: &str,
    until: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::delete(
        throttle_hits::table
            .filter(throttle_hits::bucket.eq(bucket))
            .filter(throttle_hits::at.le(until)),
    )
    .execute(conn)
    .map(drop)
}

pub fn delete(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    diesel::delete(throttle_hits::table.find(id))
        .execute(conn)
        .map(drop)
}

/// Forgets the key's failures (attempts still pending stay).
pub fn delete_failures(conn: &mut PgConnection, bucket: &str, key: &str) -> QueryResult<()> {
    diesel::delete(
        throttle_hits::table
            .filter(throttle_hits::bucket.eq(bucket))
            .filter(throttle_hits::key.eq(key))
            .filter(throttle_hits::pending.eq(false)),
    )
    .execute(conn)
    .map(drop)
}

/// Deletes up to `batch` hits of any bucket made before `until`; returns
/// how many.
pub fn purge_before(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let old: Vec<i64> = throttle_hits::table
        .filter(throttle_hits::at.lt(until))
        .select(throttle_hits::id)
        .limit(batch)
        .load(conn)?;
    diesel::delete(throttle_hits::table.filter(throttle_hits::id.eq_any(&old))).execute(conn)
}
