//! The storage layer: the connection pool, [`run`] (the one way the rest of
//! the code reaches Postgres: on the blocking thread pool, never on the
//! async executor), and one module per table with its model and queries.
//! Nothing outside this module writes SQL.

pub mod auth_events;
pub mod email_tokens;
pub mod locks;
pub mod mail_outbox;
pub mod migrations;
pub mod notifications;
pub mod passkeys;
mod pool;
pub mod second_factor;
pub mod sessions;
pub mod shared_secrets;
pub mod throttle_hits;
pub mod users;

use diesel::RunQueryDsl;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use self::pool::{PgPool, PoolOptions, close, connection_url, pool};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had, or it broke: Postgres is down or
    /// overloaded. Clients get 503 and may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(DieselError),
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match &error {
            // A lost connection, a standby after failover, or a conflict a
            // retry resolves: the client may try again shortly.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction
                | DatabaseErrorKind::SerializationFailure,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            // DB_STATEMENT_TIMEOUT, or an operator cancelling a query: the
            // database is too slow right now, not the request wrong. (Diesel
            // does not pass the SQLSTATE, 57014, on; the message says it.)
            DieselError::DatabaseError(_, info)
                if info.message().starts_with("canceling statement") =>
            {
                Self::Unavailable(info.message().to_owned())
            }
            _ => Self::Query(error),
        }
    }
}

/// Runs `query` with a pooled connection on Tokio's blocking thread pool,
/// inside the caller's tracing span, once the pool gives it a turn (so a
/// queue of requests waits without holding threads).
pub async fn run<T, F>(pool: &PgPool, query: F) -> Result<T, DbError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, DieselError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    let waiting = metrics::gauge!("authd_db_pool_waiting");
    waiting.increment(1);
    let turn = pool.turn().await;
    waiting.decrement(1);
    let turn = turn
        .map_err(|pool::Busy| DbError::Unavailable("timed out waiting for a connection".into()))?;
    let blocking = metrics::gauge!("authd_blocking_tasks");
    blocking.increment(1);
    // Counted down by the task itself: it runs to the end even when the
    // request that awaits it is dropped (a client gone), so the gauge
    // cannot drift.
    let ran = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _turn = turn;
        let ran = pool
            .get()
            .map_err(|error| DbError::Unavailable(error.to_string()))
            .and_then(|mut connection| {
                let ran = query(&mut connection);
                if let Err(DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                )) = &ran
                {
                    // The pool does not ping a connection before lending it
                    // (see `pool`): one found dead here is marked broken, so
                    // that the pool drops it instead of lending it again.
                    // diesel marks most such failures itself, but not one
                    // in preparing a statement.
                    <AnsiTransactionManager as TransactionManager<PgConnection>>::transaction_manager_status_mut(&mut connection)
                        .set_in_error();
                }
                ran.map_err(DbError::from)
            });
        blocking.decrement(1);
        ran
    })
    .await;
    ran.map_err(|_| DbError::Unavailable("the blocking thread pool is shutting down".into()))?
}

/// The `statement_timeout` a pooled connection runs with (`0`: none).
pub async fn statement_timeout(pool: &PgPool) -> Result<String, DbError> {
    run(pool, |conn| {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('statement_timeout')",
        ))
        .get_result(conn)
    })
    .await
}

/// Readiness: the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    run(pool, |conn| {
        diesel::sql_query("SELECT 1").execute(conn).map(drop)
    })
    .await
}
