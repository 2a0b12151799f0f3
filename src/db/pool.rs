//! The connection pool, and closing it cleanly. r2d2 opens connections on
//! threads of its own; a process that exits while one of them is inside
//! libpq's TLS or Kerberos set-up can crash in their exit handlers (a
//! SIGSEGV or SIGABRT instead of the exit code). So the pool counts the
//! connections being opened, and [`close`] waits for none before exiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Connection};
use diesel::pg::PgConnection;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, ManageConnection, Pool, PooledConnection,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pool, its count of connections being opened, and its turns.
#[derive(Clone, Debug)]
pub struct PgPool {
    pool: Pool<CountingManager>,
    opening: Arc<AtomicUsize>,
    /// One per connection: [`run`](super::run) waits for a turn before it
    /// takes a blocking thread, so that the threads number the connections,
    /// not the requests waiting for one. (Each waiting request held a
    /// thread, and at a million users under load their count reached a
    /// hundred, each keeping memory of its own.)
    turns: Arc<Semaphore>,
    timeout: Duration,
}

/// No turn with a connection came within the pool's timeout.
#[derive(Debug)]
pub struct Busy;

impl PgPool {
    /// Waits for a turn with one of the connections, at most the pool's
    /// timeout; the turn ends when the permit is dropped.
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match tokio::time::timeout(self.timeout, self.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(Busy),
        }
    }

    pub fn get(&self) -> Result<PooledConnection<CountingManager>, diesel::r2d2::PoolError> {
        self.pool.get()
    }

    /// How long a request waits for a connection (`DB_TIMEOUT`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The most connections it opens (`DB_POOL_SIZE`).
    pub fn max_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// How many connections it holds, and how many of them are idle.
    pub fn state(&self) -> diesel::r2d2::State {
        self.pool.state()
    }
}

/// Diesel's connection manager, counting the connections being opened.
#[derive(Debug)]
pub struct CountingManager {
    inner: ConnectionManager<PgConnection>,
    opening: Arc<AtomicUsize>,
}

impl ManageConnection for CountingManager {
    type Connection = PgConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PgConnection, Self::Error> {
        self.opening.fetch_add(1, Ordering::SeqCst);
        let connected = self.inner.connect();
        self.opening.fetch_sub(1, Ordering::SeqCst);
        connected
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), Self::Error> {
        self.inner.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        self.inner.has_broken(conn)
    }
}

/// How the pool's connections behave.
#[derive(Clone, Copy, Debug)]
pub struct PoolOptions {
    pub size: u32,
    /// Connections kept warm (none for a one-off command).
    pub min_idle: u32,
    /// How long a request waits for a connection before giving up (503).
    pub timeout: Duration,
    /// How long one statement may run before Postgres cancels it; set at
    /// connection start-up, unless `pooled`.
    pub statement_timeout: Duration,
    /// Behind a transaction-pooling PgBouncer: no session state at all, so
    /// no prepared-statement cache and no start-up options (set
    /// `statement_timeout` on the role instead).
    pub pooled: bool,
}

/// A pool that connects lazily: requests wait at most `timeout` for a
/// connection, so a dead database means a quick 503 rather than a hang, and
/// the pool reconnects by itself when the database returns.
pub fn pool(database_url: &str, options: PoolOptions) -> PgPool {
    let opening = Arc::<AtomicUsize>::default();
    let mut url = connection_url(database_url);
    if !options.pooled {
        url = with_statement_timeout(&url, options.statement_timeout);
    }
    let pool = Pool::builder()
        .max_size(options.size)
        .min_idle(Some(options.min_idle.min(options.size)))
        .connection_timeout(options.timeout)
        // r2d2 would run `SELECT 1` before lending each connection: a
        // second round trip for every call, a fifth of what a one-row read
        // costs here. A connection the server has closed (a restart, a
        // failover, `pg_terminate_backend`) instead fails the one call that
        // finds it (a 503), and is dropped (see `db::run`).
        .test_on_check_out(false)
        .connection_customizer(Box::new(NoStatementCache(options.pooled)))
        .build_unchecked(CountingManager {
            inner: ConnectionManager::new(url),
            opening: opening.clone(),
        });
    PgPool {
        pool,
        opening,
        turns: Arc::new(Semaphore::new(options.size as usize)),
        timeout: options.timeout,
    }
}

/// Turns diesel's prepared-statement cache off behind a pooler: a named
/// statement prepared on one server connection may be executed on another.
/// Without it diesel sends each query with its parameters in one message.
#[derive(Debug)]
struct NoStatementCache(bool);

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for NoStatementCache {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        if self.0 {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        Ok(())
    }
}

/// Postgres cancels any statement of the connection that runs longer.
fn with_statement_timeout(url: &str, timeout: Duration) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(key, _)| key == "options") => {
            // libpq decodes %20 but not `+` (form encoding) as a space.
            let option = format!("options=-c%20statement_timeout%3D{}", timeout.as_millis());
            let query = match parsed.query() {
                Some(query) if !query.is_empty() => format!("{query}&{option}"),
                _ => option,
            };
            parsed.set_query(Some(&query));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Waits (at most `timeout`) until no connection of the pool is being
/// opened, then lets it go: the process may exit after this.
pub fn close(pool: PgPool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pool.opening.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The URL libpq is given: GSSAPI encryption is off unless the URL asks
/// for it, sparing every connection a Kerberos probe (and its exit-time
/// hazards) that a password or trust login never uses.
pub fn connection_url(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if !url.query_pairs().any(|(key, _)| key == "gssencmode") => {
            url.query_pairs_mut().append_pair("gssencmode", "disable");
            url.to_string()
        }
        _ => database_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{connection_url, with_statement_timeout};

    #[test]
    fn the_statement_timeout_is_a_start_up_option() {
        assert_eq!(
            with_statement_timeout("postgres://u@h/db?sslmode=disable", Duration::from_secs(5)),
            "postgres://u@h/db?sslmode=disable&options=-c%20statement_timeout%3D5000"
        );
        assert_eq!(
            with_statement_timeout(
                "postgres://u@h/db?options=-c%20x%3D1",
                Duration::from_secs(5)
            ),
            "postgres://u@h/db?options=-c%20x%3D1",
            "an operator's own options are kept"
        );
    }

    #[test]
    fn gssapi_is_off_unless_asked_for() {
        assert_eq!(
            connection_url("postgres://u@h/db"),
            "postgres://u@h/db?gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require&gssencmode=disable"
        );
        assert_eq!(
            connection_url("postgres://u@h/db?gssencmode=require"),
            "postgres://u@h/db?gssencmode=require"
        );
    }
}
