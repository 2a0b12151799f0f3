//! Reading live sessions from the database, many to a statement. What a
//! cache miss costs is mostly not Postgres's work but the trip to it: the
//! hop to a blocking thread and back, the pool's turn, a round trip, each
//! a task switch or two. Under load misses come many at a time, so they
//! share the trip:
//!
//! - A read joins the queue. If no read is under way, it starts one, in a
//!   task of its own, with everything queued; else the next read to finish
//!   takes the queue with it. So a lone miss goes at once, alone; under
//!   load, misses share the next trip instead of each taking a connection
//!   (the README's "What a miss costs" has what it gained).
//! - Before it takes the queue, a read lets the requests already ready on
//!   its worker run first (see [`Reads::gather`]), for as long as that
//!   brings more misses: under load a read then takes the misses of that
//!   moment, not only the first of them.
//! - Another read starts beside those under way only when a whole
//!   [`BATCH`] waits (a database slower than the misses come), up to a
//!   quarter of the pool's connections at once. Starting one whenever a
//!   lane was free, as before, made smaller batches, not faster answers: at
//!   a million users under Zipf traffic, one read at a time served 10 %
//!   more requests with a quarter less of Postgres's CPU, and about the
//!   same p99.
//! - Misses of the same session (a popular one, just invalidated) are read
//!   once.
//! - Each caller waits at most the pool's timeout for its answer (then
//!   503); a read whose callers are all gone is skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::TimeDelta;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::db::sessions::{self, Session};
use crate::db::users::User;
use crate::db::{self, DbError, PgPool};
use crate::domain::SessionToken;

/// The most sessions one statement reads.
const BATCH: usize = 64;
/// The most turns a read lets other tasks take before it takes the queue.
const GATHER_TURNS: usize = 8;

type Found = Option<(Session, User)>;

struct Wanted {
    token: SessionToken,
    reply: oneshot::Sender<Result<Found, DbError>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Wanted>,
    /// Reads under way.
    running: usize,
}

pub(super) struct Reads {
    pool: PgPool,
    clock: Clock,
    /// Inactivity that ends a session that is not remembered.
    idle: TimeDelta,
    queue: Mutex<Queue>,
    lanes: usize,
}

impl Reads {
    /// Reads under way at most: a quarter of the pool, so that the misses
    /// of a burst leave connections to logins and writes (see the module's
    /// documentation for when more than one runs).
    pub(super) fn new(pool: PgPool, clock: Clock, idle: TimeDelta) -> Arc<Self> {
        let lanes = usize::try_from(pool.max_size() / 4).unwrap_or(1).max(1);
        Arc::new(Self {
            pool,
            clock,
            idle,
            queue: Mutex::default(),
            lanes,
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `token` names, if it is live, with its user, if active.
    pub(super) async fn live(self: &Arc<Self>, token: SessionToken) -> Result<Found, DbError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.waiting.push(Wanted { token, reply });
            let starts =
                queue.running == 0 || (queue.waiting.len() >= BATCH && queue.running < self.lanes);
            if starts {
                queue.running += 1;
            }
            starts
        };
        if start {
            // A task of its own: the caller may be dropped (its client
            // gone), and the others waiting on this read still need it.
            tokio::spawn(self.clone().run());
        }
        match tokio::time::timeout(self.pool.timeout(), answer).await {
            Ok(Ok(found)) => found,
            Ok(Err(_)) => Err(DbError::Unavailable("the session read was dropped".into())),
            Err(_) => Err(DbError::Unavailable(
                "timed out waiting for a connection".into(),
            )),
        }
    }

    /// Reads what is queued, then whatever queued meanwhile, until nothing
    /// is left; then gives the lane back.
    async fn run(self: Arc<Self>) {
        let lane = Lane {
            reads: &self,
            held: true,
        };
        loop {
            self.gather().await;
            let batch = {
                let mut queue = self.queue();
                let batch = take(&mut queue.waiting);
                if batch.is_empty() {
                    // Given back under the lock that saw the queue empty: a read
                    // queued after it starts a lane of its own.
                    lane.give_back(&mut queue);
                    return;
                }
                batch
            };
            self.read(batch).await;
        }
    }

    /// Lets the tasks ready on this worker (the requests whose bytes have
    /// come) run before the read takes the queue, turn after turn while
    /// each brings more misses, up to [`GATHER_TURNS`] or a whole batch.
    /// At a million users under Zipf traffic, reads took 5.5 sessions each
    /// instead of 4, and a request cost 7 % less CPU (authd and Postgres
    /// together). A lone miss waits one turn of an idle worker.
    async fn gather(&self) {
        let mut seen = self.queue().waiting.len();
        for _ in 0..GATHER_TURNS {
            tokio::task::yield_now().await;
            let waiting = self.queue().waiting.len();
            if waiting == seen || waiting >= BATCH {
                return;
            }
            seen = waiting;
        }
    }

    async fn read(&self, batch: Vec<Wanted>) {
        let now = self.clock.now();
        let idle_since = now - self.idle;
        let mut tokens: Vec<SessionToken> = batch.iter().map(|w| w.token.clone()).collect();
        tokens.sort_unstable_by(|a, b| a.expose().cmp(b.expose()));
        tokens.dedup();
        let read = db::run(&self.pool, move |conn| match tokens.as_slice() {
            [token] => Ok(sessions::find_live_with_user(conn, token, now, idle_since)?
                .into_iter()
                .collect()),
            tokens => sessions::find_live_with_users(conn, tokens, now, idle_since),
        })
        .await;
        match read {
            Ok(rows) => {
                let found: HashMap<SessionToken, (Session, User)> = rows
                    .into_iter()
                    .map(|(session, user)| (session.token.clone(), (session, user)))
                    .collect();
                for wanted in batch {
                    let _ = wanted.reply.send(Ok(found.get(&wanted.token).cloned()));
                }
            }
            Err(error) => {
                for wanted in batch {
                    let _ = wanted.reply.send(Err(shared(&error)));
                }
            }
        }
    }
}

/// Up to [`BATCH`] of the reads waiting, the oldest first. Those whose
/// callers have gone (given up, or their client left) are dropped first:
/// while the database is down the queue holds no more than the callers
/// still waiting, not every miss since the outage began.
fn take(waiting: &mut Vec<Wanted>) -> Vec<Wanted> {
    waiting.retain(|wanted| !wanted.reply.is_closed());
    let count = waiting.len().min(BATCH);
    waiting.drain(..count).collect()
}

/// The failure of a read, for each of its callers: a query's error cannot
/// be cloned, so each gets one of the same kind with its message.
fn shared(error: &DbError) -> DbError {
    match error {
        DbError::Unavailable(reason) => DbError::Unavailable(reason.clone()),
        DbError::Query(query) => DbError::Query(diesel::result::Error::QueryBuilderError(
            query.to_string().into(),
        )),
    }
}

/// A lane in use. Dropped while held only if its read is (the runtime
/// shutting down, or a panic): then it is given back, and what waits is
/// taken by the next read to come.
struct Lane<'a> {
    reads: &'a Reads,
    held: bool,
}

impl Lane<'_> {
    fn give_back(mut self, queue: &mut Queue) {
        queue.running = queue.running.saturating_sub(1);
        self.held = false;
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut queue = self.reads.queue();
            queue.running = queue.running.saturating_sub(1);
        }
    }
}
