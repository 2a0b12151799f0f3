//! The invalidation listener: a thread of its own with a connection of its
//! own, `LISTEN`ing for the notifications the database's triggers send
//! whenever a session can end, and telling the cache what to forget. It
//! proves its connection alive every [`HEARTBEAT`]; the cache is trusted only
//! while it does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection};

use crate::db::{self, notifications};
use crate::services::sessions::cache::SessionCache;

/// The listener proves itself alive at least this often.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// How often the listener looks for notifications.
const POLL: Duration = Duration::from_millis(10);

/// The thread that listens for invalidations; stopped (and joined) by
/// [`Listener::stop`].
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on its own connection to `database_url`.
    pub fn start(database_url: &str, cache: Arc<SessionCache>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let url = listener_url(database_url);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("authd-listener".into())
            .spawn(move || listen(&url, &cache, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening and waits for the thread, so that no connection is
    /// being opened when the process exits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The listener's connection: named, so an operator (or a test) can find
/// it, and quick to give up connecting, so stopping is quick.
fn listener_url(database_url: &str) -> String {
    match url::Url::parse(&db::connection_url(database_url)) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("application_name", "authd-listener")
                .append_pair("connect_timeout", "2");
            url.to_string()
        }
        Err(_) => database_url.to_owned(),
    }
}

fn listen(url: &str, cache: &SessionCache, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        match PgConnection::establish(url)
            .map_err(|error| error.to_string())
            .and_then(|mut conn| {
                notifications::listen(&mut conn).map_err(|error| error.to_string())?;
                Ok(conn)
            }) {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                cache.subscribed();
                tracing::debug!("listening for session invalidations");
                let error = relay(&mut conn, cache, stop);
                cache.unsubscribed();
                if let Some(error) = error {
                    tracing::warn!(%error, "lost the invalidation listener; sessions are read from the database until it is back");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for invalidations; sessions are read from the database");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Passes notifications on until the connection fails (the error) or the
/// listener is stopped (`None`).
fn relay(conn: &mut PgConnection, cache: &SessionCache, stop: &AtomicBool) -> Option<String> {
    let mut last_ping = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if let Err(error) = apply(conn, cache) {
            return Some(error.to_string());
        }
        if last_ping.elapsed() >= HEARTBEAT {
            // What arrived while the ping waited (a stalled connection that
            // resumed delivers it now) is applied before the beat vouches
            // for the cache again.
            if let Err(error) = notifications::ping(conn).and_then(|()| apply(conn, cache)) {
                return Some(error.to_string());
            }
            last_ping = Instant::now();
            cache.beat();
        }
        std::thread::sleep(POLL);
    }
    None
}

/// Forgets what the notifications received so far name.
fn apply(conn: &mut PgConnection, cache: &SessionCache) -> diesel::QueryResult<()> {
    notifications::received(conn)?
        .into_iter()
        .for_each(|invalidation| cache.forget(invalidation));
    Ok(())
}
