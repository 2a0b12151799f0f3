//! Postgres advisory locks: one instance at a time does a job, whichever
//! instances share the database. A session lock ([`lock`]) is held by its
//! connection, so it is only taken on a direct one (migrations); on pooled
//! connections only transaction locks.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

/// The jobs that take a lock, each its own key.
#[derive(Clone, Copy, Debug)]
#[repr(i64)]
pub enum Job {
    /// Applying migrations at start ("authd" in ASCII).
    Migrate = 0x6175_7468_6400,
    /// Purging what is past keeping.
    Purge = 0x6175_7468_6401,
}

/// Waits for the lock.
pub fn lock(conn: &mut PgConnection, job: Job) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(job as i64)
        .execute(conn)
        .map(drop)
}

/// Takes the lock until the current transaction ends, if it is free; false
/// when another holds it. Nothing outlives the transaction, so this is safe
/// on a connection a transaction pooler shares.
pub fn try_lock_in_transaction(conn: &mut PgConnection, job: Job) -> QueryResult<bool> {
    diesel::select(
        diesel::dsl::sql::<Bool>("pg_try_advisory_xact_lock(")
            .bind::<BigInt, _>(job as i64)
            .sql(")"),
    )
    .get_result(conn)
}

pub fn unlock(conn: &mut PgConnection, job: Job) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(job as i64)
        .execute(conn)
        .map(drop)
}
