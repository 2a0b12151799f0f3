//! The connection pool, and closing it cleanly. r2d2 opens connections on
//! threads of its own; a process that exits while one of them is inside
//! libpq's TLS or Kerberos set-up can crash in their exit handlers (a
//! SIGSEGV or SIGABRT instead of the exit code). So the pool counts the
//! connections being opened, and [`close`] waits for none before exiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, ManageConnection, Pool, PooledConnection};

/// The pool, and its count of connections being opened.
#[derive(Clone, Debug)]
pub struct PgPool {
    pool: Pool<CountingManager>,
    opening: Arc<AtomicUsize>,
}

impl PgPool {
    pub fn get(&self) -> Result<PooledConnection<CountingManager>, diesel::r2d2::PoolError> {
        self.pool.get()
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

/// A pool that connects lazily: requests wait at most `timeout` for a
/// connection, so a dead database means a quick 503 rather than a hang, and
/// the pool reconnects by itself when the database returns. `min_idle`
/// keeps that many connections warm (none for a one-off command).
pub fn pool(database_url: &str, size: u32, min_idle: u32, timeout: Duration) -> PgPool {
    let opening = Arc::<AtomicUsize>::default();
    let pool = Pool::builder()
        .max_size(size)
        .min_idle(Some(min_idle.min(size)))
        .connection_timeout(timeout)
        .build_unchecked(CountingManager {
            inner: ConnectionManager::new(connection_url(database_url)),
            opening: opening.clone(),
        });
    PgPool { pool, opening }
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
    use super::connection_url;

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
