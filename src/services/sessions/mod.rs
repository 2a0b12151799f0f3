//! The session service: a login is a server-side row, whether its
//! credential travels in a cookie or a bearer token. Starting, validating
//! (from memory when it can be trusted: [`cache`], kept honest by
//! [`listener`]), listing and ending sessions all happen here, and every
//! change that ends one tells the cache.

pub mod activity;
pub mod cache;
pub mod listener;
mod live;
mod packed;
mod reads;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{PgConnection, QueryResult};

use crate::clock::Clock;
use crate::configuration::Period;
use crate::db::notifications::Invalidation;
use crate::db::sessions::{self, Session, SessionRecord};
use crate::db::users;
use crate::db::{self, DbError, PgPool};
use crate::domain::{AuthMethod, Client, CsrfToken, SessionId, SessionToken, UserId};
use crate::services::audit::{Event, Record};
use crate::services::sessions::activity::Activity;
use crate::services::sessions::cache::{Lookup, Refresh, SessionCache};
use crate::services::sessions::reads::Reads;

/// `last_seen_at` is written at most this often per session, so that
/// activity tracking costs a write a minute, not one per request...
const TOUCH_AT_MOST_EVERY: TimeDelta = TimeDelta::seconds(60);

pub use live::LiveSession;

/// Which sessions a logout ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The sessions the request presents.
    #[default]
    Local,
    /// Every other session of their user.
    Others,
    /// Every session of their user.
    Global,
}

impl Scope {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "local" => Some(Self::Local),
            "others" => Some(Self::Others),
            "global" => Some(Self::Global),
            _ => None,
        }
    }

    /// Whether the sessions the request presents end too.
    pub fn ends_presented(self) -> bool {
        self != Self::Others
    }
}

/// How long sessions live, by kind.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub session: Period,
    pub remember: Period,
    /// Inactivity that ends a non-remembered session.
    pub idle: Period,
}

impl Lifetimes {
    /// ...and at least every quarter of the idle timeout, so that a session
    /// in use is never taken for idle, however short the timeout.
    pub fn touch_every(&self) -> TimeDelta {
        TOUCH_AT_MOST_EVERY.min(self.idle.delta() / 4)
    }

    pub fn for_login(&self, remember: bool) -> Period {
        if remember {
            self.remember
        } else {
            self.session
        }
    }
}

#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    lifetimes: Lifetimes,
    cache: Arc<SessionCache>,
    reads: Arc<Reads>,
    activity: Arc<Activity>,
    clock: Clock,
}

impl Sessions {
    /// Sessions in `pool`, up to `cache_capacity` of them validated from
    /// memory.
    pub fn new(pool: PgPool, lifetimes: Lifetimes, cache_capacity: usize, clock: Clock) -> Self {
        Self {
            reads: Reads::new(pool.clone(), clock.clone(), lifetimes.idle.delta()),
            pool,
            lifetimes,
            cache: Arc::new(SessionCache::new(cache_capacity)),
            activity: Arc::default(),
            clock,
        }
    }

    /// The cache that [`Listener`](listener::Listener) keeps honest.
    pub fn cache(&self) -> Arc<SessionCache> {
        self.cache.clone()
    }

    /// Forgets what this instance holds of the user's sessions, at once:
    /// every change that can end one calls this (the notification to the
    /// other instances comes from the database).
    pub fn forget_user(&self, user_id: UserId) {
        self.cache.forget(Invalidation::User(user_id));
    }

    /// After `count` of the user's sessions ended here: forgets them at
    /// once (other instances hear of it from the database) and counts them.
    pub fn revoked(&self, user_id: UserId, count: usize) {
        self.forget_user(user_id);
        metrics::counter!("authd_sessions_revoked_total").increment(count as u64);
    }

    /// Writes the activity noted since the last flush.
    pub async fn flush_activity(&self) {
        self.activity.flush(&self.pool, self.lifetimes.idle).await;
    }

    /// How often activity should be flushed for the database never to be a
    /// whole touch interval behind: at most a second.
    pub fn activity_flush_interval(&self) -> Duration {
        (self.lifetimes.touch_every() / 2)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Starts a fresh session for `user_id` (never reusing an id: no session
    /// fixation), records the login time, and stores `event` with it, if
    /// `admit` agrees, in the same transaction: it is where a login checks
    /// that what it verified still holds at the moment the session is made
    /// (see [`Login`](crate::services::login::Login)). Its refusal comes back
    /// as `Ok(Err(..))`, with nothing written.
    #[tracing::instrument(skip(self, client, event, admit), fields(user_id = %user_id))]
    pub async fn start<R: Send + 'static>(
        &self,
        user_id: UserId,
        remember: bool,
        client: Client,
        methods: &[AuthMethod],
        event: Record,
        admit: impl FnOnce(&mut PgConnection) -> QueryResult<Result<(), R>> + Send + 'static,
    ) -> Result<Result<Session, R>, DbError> {
        let now = self.clock.now();
        let session = Session {
            token: SessionToken::generate(),
            user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.lifetimes.for_login(remember).delta(),
            remember,
            csrf_token: CsrfToken::generate(),
            id: SessionId::generate(),
            amr: methods
                .iter()
                .map(|method| Some(method.as_str().to_owned()))
                .collect(),
        };
        let row = SessionRecord {
            session,
            user_agent: client.user_agent,
            ip: client.ip.map(Into::into),
        };
        let (started, event) = db::run(&self.pool, move |conn| {
            let start = |conn: &mut PgConnection| {
                if let Err(refused) = admit(conn)? {
                    return Ok(Err(refused));
                }
                sessions::insert(conn, &row)?;
                users::record_login(conn, user_id, now)?;
                Ok(Ok(row.session))
            };
            event.with(conn, start, Result::is_ok)
        })
        .await?;
        let Ok(session) = started else {
            return Ok(started);
        };
        event.iter().for_each(Record::log);
        metrics::counter!("authd_sessions_created_total").increment(1);
        // The login changed the user (last_login_at) of any cached session.
        self.forget_user(user_id);
        Ok(Ok(session))
    }

    /// The live session this credential names, and its user, or `None`
    /// when it is unknown, revoked, expired, idle too long, or its user is
    /// inactive. From memory when it can be trusted (see [`SessionCache`]),
    /// else from the database. Notes the activity, at most once per
    /// [`Lifetimes::touch_every`], in a batch written off the request path.
    pub async fn validate(&self, token: SessionToken) -> Result<Option<Arc<LiveSession>>, DbError> {
        let now = self.clock.now();
        let idle_since = now - self.lifetimes.idle.delta();
        let (cached, refresh) = match self.cache.get(&token) {
            Lookup::Hit(live) => (Some(live), None),
            Lookup::Due(live, refresh) => (Some(live), Some(refresh)),
            Lookup::Miss => (None, None),
        };
        if let Some(live) = cached
            && live.session.expires_at > now
            && (live.session.remember || live.session.last_seen_at > idle_since)
        {
            metrics::counter!("authd_session_cache_total", "result" => "hit").increment(1);
            if let Some(refresh) = refresh {
                self.refresh(token, refresh);
            }
            return Ok(Some(self.touched(live, now)));
        }
        metrics::counter!("authd_session_cache_total", "result" => "miss").increment(1);
        let (generation, found) = self.read_live(token).await?;
        Ok(found.map(|live| {
            self.cache.insert(generation, &live);
            self.touched(live, now)
        }))
    }

    /// The live session from the database, with the cache's generation
    /// from before the read (for [`SessionCache::insert`]).
    async fn read_live(
        &self,
        token: SessionToken,
    ) -> Result<(u64, Option<Arc<LiveSession>>), DbError> {
        let generation = self.cache.generation();
        let found = self.reads.live(token).await?;
        let live = found.map(|(session, user)| Arc::new(LiveSession { session, user }));
        Ok((generation, live))
    }

    /// Reads a cached session again, in a task of its own, and hands what
    /// it found to the cache; a failure is retried by the session's next
    /// use (see [`Lookup::Due`]).
    fn refresh(&self, token: SessionToken, refresh: Refresh) {
        let service = self.clone();
        tokio::spawn(async move {
            match service.read_live(token).await {
                Ok((generation, found)) => {
                    service.cache.refreshed(refresh, generation, found.as_ref());
                }
                Err(error) => tracing::debug!(%error, "could not refresh a cached session"),
            }
        });
    }

    /// Notes activity on a live session if its last note is old enough.
    fn touched(&self, mut live: Arc<LiveSession>, now: DateTime<Utc>) -> Arc<LiveSession> {
        if now - live.session.last_seen_at < self.lifetimes.touch_every() {
            return live;
        }
        self.activity.note(&live.session.token, now);
        self.cache.touch(&live.session.token, now);
        // Each lookup makes its own copy, so this copies nothing.
        Arc::make_mut(&mut live).session.last_seen_at = now;
        live
    }

    /// A user's live sessions, newest first.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<SessionRecord>, DbError> {
        let now = self.clock.now();
        let idle_since = now - self.lifetimes.idle.delta();
        db::run(&self.pool, move |conn| {
            sessions::list_live(conn, user_id, now, idle_since)
        })
        .await
    }

    /// Logs out: revokes the session, so its cookie or token is dead even
    /// if a client keeps a copy, and records it.
    #[tracing::instrument(skip(self, session, client), fields(user_id = %session.user_id))]
    pub async fn log_out(&self, session: &Session, client: &Client) -> Result<(), DbError> {
        let token = session.token.clone();
        let event = Record::new(Event::Logout, Some(session.user_id), None, client);
        // A session revoked meanwhile (a second tab) was logged out then.
        let now = self.clock.now();
        let (revoked, event) = db::run(&self.pool, move |conn| {
            event.with(
                conn,
                |conn| sessions::revoke(conn, &token, now),
                |revoked| *revoked,
            )
        })
        .await?;
        self.revoked(session.user_id, usize::from(revoked));
        event.iter().for_each(Record::log);
        Ok(())
    }

    /// Logs out the sessions a request presents (their credentials may name
    /// more than one), in `scope`.
    pub async fn log_out_scoped(
        &self,
        presented: &[Session],
        scope: Scope,
        client: &Client,
    ) -> Result<(), DbError> {
        if scope.ends_presented() {
            for session in presented {
                self.log_out(session, client).await?;
            }
        }
        if scope != Scope::Local {
            let keep: Vec<SessionToken> = presented
                .iter()
                .map(|session| session.token.clone())
                .collect();
            let mut users: Vec<UserId> = presented.iter().map(|session| session.user_id).collect();
            users.sort_unstable();
            users.dedup();
            for user_id in users {
                self.end_all(user_id, keep.clone(), client).await?;
            }
        }
        Ok(())
    }

    /// Ends one of the user's sessions by its public id; `None` when the
    /// user has no such live session (another user's is no different).
    #[tracing::instrument(skip(self, client), fields(user_id = %user_id, session = %id))]
    pub async fn end(
        &self,
        user_id: UserId,
        id: SessionId,
        client: &Client,
    ) -> Result<Option<Session>, DbError> {
        let event = Record::new(Event::SessionRevoked, Some(user_id), None, client);
        let now = self.clock.now();
        let (ended, event) = db::run(&self.pool, move |conn| {
            let end = |conn: &mut PgConnection| sessions::revoke_public(conn, user_id, &id, now);
            event.with(conn, end, Option::is_some)
        })
        .await?;
        self.revoked(user_id, usize::from(ended.is_some()));
        event.iter().for_each(Record::log);
        Ok(ended)
    }

    /// Ends every session of the user but the ones whose ids are in `keep`;
    /// how many it ended.
    #[tracing::instrument(skip(self, keep, client), fields(user_id = %user_id))]
    pub async fn end_all(
        &self,
        user_id: UserId,
        keep: Vec<SessionToken>,
        client: &Client,
    ) -> Result<usize, DbError> {
        let event = Record::new(Event::SessionRevoked, Some(user_id), None, client);
        let now = self.clock.now();
        let (ended, event) = db::run(&self.pool, move |conn| {
            let end = |conn: &mut PgConnection| sessions::revoke_all_of(conn, user_id, &keep, now);
            event.with(conn, end, |ended| *ended > 0)
        })
        .await?;
        self.revoked(user_id, ended);
        event.iter().for_each(Record::log);
        Ok(ended)
    }
}
