//! The session service: a login is a server-side row, whether its
//! credential travels in a cookie or a bearer token. Starting, validating
//! and ending a session all happen here, so later work (caching,
//! revocation fan-out, listing a user's sessions) has one place to change.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use diesel::PgConnection;

use crate::configuration::Period;
use crate::crypto::{hex, random_token};
use crate::db::notifications::Invalidation;
use crate::db::sessions::{self, Session};
use crate::db::users;
use crate::db::{self, DbError, PgPool};
use crate::domain::Client;
use crate::services::audit::{Event, Record};
use crate::services::session_cache::{Live, SessionCache, Touches};

/// `last_seen_at` is written at most this often per session, so that
/// activity tracking costs a write a minute, not one per request...
const TOUCH_AT_MOST_EVERY: TimeDelta = TimeDelta::seconds(60);

/// 128 random bits, hex: a session's public handle.
fn public_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex(&bytes)
}

/// Whether `id` has the form [`public_id`] gives: 32 lower-case hex digits.
fn is_public_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

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
    touches: Arc<Touches>,
}

impl Sessions {
    pub fn new(pool: PgPool, lifetimes: Lifetimes) -> Self {
        Self {
            pool,
            lifetimes,
            cache: Arc::default(),
            touches: Arc::default(),
        }
    }

    /// The cache that [`Listener`](crate::services::session_cache::Listener)
    /// keeps honest.
    pub fn cache(&self) -> Arc<SessionCache> {
        self.cache.clone()
    }

    /// Forgets what this instance holds of the user's sessions, at once:
    /// every change that can end one calls this (the notification to the
    /// other instances comes from the database).
    pub fn forget_user(&self, user_id: i64) {
        self.cache.forget(Invalidation::User(user_id));
    }

    /// After `count` of the user's sessions ended here: forgets them at
    /// once (other instances hear of it from the database) and counts them.
    pub fn revoked(&self, user_id: i64, count: usize) {
        self.forget_user(user_id);
        metrics::counter!("authd_sessions_revoked_total").increment(count as u64);
    }

    /// Writes the activity noted since the last flush.
    pub async fn flush_touches(&self) {
        self.touches.flush(&self.pool).await;
    }

    /// Flushes activity in the background, often enough that the database
    /// is never a whole touch interval behind (at most a second).
    pub fn flush_touches_regularly(&self) {
        let every = (self.lifetimes.touch_every() / 2)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let sessions = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                sessions.flush_touches().await;
            }
        });
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Starts a fresh session for `user_id` (never reusing an id: no session
    /// fixation), records the login time, and stores `event` with it.
    #[tracing::instrument(skip(self, client, event))]
    pub async fn start(
        &self,
        user_id: i64,
        remember: bool,
        client: Client,
        event: Record,
    ) -> Result<Session, DbError> {
        // Postgres keeps microseconds: match it, so responses agree with reads.
        let now = Utc::now().trunc_subsecs(6);
        let row = Session {
            id: random_token(),
            user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.lifetimes.for_login(remember).delta(),
            remember,
            user_agent: client.user_agent,
            ip: client.ip.map(Into::into),
            csrf_token: random_token(),
            revoked_at: None,
            public_id: public_id(),
        };
        let (session, event) = db::run(&self.pool, move |conn| {
            let start = |conn: &mut PgConnection| {
                sessions::insert(conn, &row)?;
                users::record_login(conn, user_id, now)?;
                Ok(row)
            };
            event.with(conn, start, |_| true)
        })
        .await?;
        event.iter().for_each(Record::log);
        metrics::counter!("authd_sessions_created_total").increment(1);
        // The login changed the user (last_login_at) of any cached session.
        self.forget_user(user_id);
        Ok(session)
    }

    /// The live session with this id and its user, or `None` when it is
    /// unknown, revoked, expired, idle too long, or its user is inactive.
    /// From memory when it can be trusted (see [`SessionCache`]), else from
    /// the database. Notes the activity, at most once per
    /// [`Lifetimes::touch_every`], in a batch written off the request path.
    pub async fn validate(&self, id: String) -> Result<Option<Arc<Live>>, DbError> {
        let now = Utc::now().trunc_subsecs(6);
        let idle_since = now - self.lifetimes.idle.delta();
        if let Some(live) = self.cache.get(&id)
            && live.session.expires_at > now
            && (live.session.remember || live.session.last_seen_at > idle_since)
        {
            metrics::counter!("authd_session_cache_total", "result" => "hit").increment(1);
            return Ok(Some(self.touched(live, now)));
        }
        metrics::counter!("authd_session_cache_total", "result" => "miss").increment(1);
        let generation = self.cache.generation();
        let found = db::run(&self.pool, move |conn| {
            sessions::find_live_with_user(conn, &id, now, idle_since)
        })
        .await?;
        Ok(found.map(|(session, user)| {
            let live = Arc::new(Live { session, user });
            self.cache.insert(generation, &live);
            self.touched(live, now)
        }))
    }

    /// Notes activity on a live session if its last note is old enough.
    fn touched(&self, live: Arc<Live>, now: DateTime<Utc>) -> Arc<Live> {
        if now - live.session.last_seen_at < self.lifetimes.touch_every() {
            return live;
        }
        let mut session = live.session.clone();
        session.last_seen_at = now;
        self.touches.note(&session.id, now);
        let touched = Arc::new(Live {
            session,
            user: live.user.clone(),
        });
        self.cache.touch(&touched);
        touched
    }

    /// A user's live sessions, newest first.
    pub async fn list(&self, user_id: i64) -> Result<Vec<Session>, DbError> {
        let idle = self.lifetimes.idle.delta();
        db::run(&self.pool, move |conn| {
            let now = Utc::now();
            sessions::list_live(conn, user_id, now, now - idle)
        })
        .await
    }

    /// Logs out: revokes the session, so its cookie or token is dead even
    /// if a client keeps a copy, and records it.
    #[tracing::instrument(skip(self, session, client), fields(user_id = session.user_id))]
    pub async fn log_out(&self, session: &Session, client: &Client) -> Result<(), DbError> {
        let id = session.id.clone();
        let event = Record::new(Event::Logout, Some(session.user_id), None, client);
        // A session revoked meanwhile (a second tab) was logged out then.
        let (revoked, event) = db::run(&self.pool, move |conn| {
            event.with(
                conn,
                |conn| sessions::revoke(conn, &id, Utc::now()),
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
            let keep: Vec<String> = presented.iter().map(|session| session.id.clone()).collect();
            let mut users: Vec<i64> = presented.iter().map(|session| session.user_id).collect();
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
    #[tracing::instrument(skip(self, public_id, client))]
    pub async fn end(
        &self,
        user_id: i64,
        public_id: String,
        client: &Client,
    ) -> Result<Option<Session>, DbError> {
        // Anything else names no session; and text Postgres refuses (a NUL)
        // must not reach it.
        if !is_public_id(&public_id) {
            return Ok(None);
        }
        let event = Record::new(Event::SessionRevoked, Some(user_id), None, client);
        let (ended, event) = db::run(&self.pool, move |conn| {
            let end = |conn: &mut PgConnection| {
                sessions::revoke_public(conn, user_id, &public_id, Utc::now())
            };
            event.with(conn, end, Option::is_some)
        })
        .await?;
        self.revoked(user_id, usize::from(ended.is_some()));
        event.iter().for_each(Record::log);
        Ok(ended)
    }

    /// Ends every session of the user but the ones whose ids are in `keep`;
    /// how many it ended.
    #[tracing::instrument(skip(self, keep, client))]
    pub async fn end_all(
        &self,
        user_id: i64,
        keep: Vec<String>,
        client: &Client,
    ) -> Result<usize, DbError> {
        let event = Record::new(Event::SessionRevoked, Some(user_id), None, client);
        let (ended, event) = db::run(&self.pool, move |conn| {
            let end =
                |conn: &mut PgConnection| sessions::revoke_all_of(conn, user_id, &keep, Utc::now());
            event.with(conn, end, |ended| *ended > 0)
        })
        .await?;
        self.revoked(user_id, ended);
        event.iter().for_each(Record::log);
        Ok(ended)
    }
}
