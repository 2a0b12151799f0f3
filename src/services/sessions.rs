//! The session service: a login is a server-side row, whether its
//! credential travels in a cookie or a bearer token. Starting, validating
//! and ending a session all happen here, so later work (caching,
//! revocation fan-out, listing a user's sessions) has one place to change.

use chrono::{SubsecRound, TimeDelta, Utc};
use diesel::Connection;

use crate::configuration::Period;
use crate::crypto::random_token;
use crate::db::sessions::{self, Session};
use crate::db::users::{self, User};
use crate::db::{self, DbError, PgPool};
use crate::domain::Client;
use crate::services::audit::{Event, Record};

/// `last_seen_at` is written at most this often per session, so that
/// activity tracking costs a write a minute, not one per request...
const TOUCH_AT_MOST_EVERY: TimeDelta = TimeDelta::seconds(60);

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
}

impl Sessions {
    pub fn new(pool: PgPool, lifetimes: Lifetimes) -> Self {
        Self { pool, lifetimes }
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
        };
        let session = db::run(&self.pool, move |conn| {
            conn.transaction(|conn| {
                sessions::insert(conn, &row)?;
                users::record_login(conn, user_id, now)?;
                event.store(conn)?;
                Ok((row, event))
            })
        })
        .await?;
        session.1.log();
        Ok(session.0)
    }

    /// The live session with this id and its user, or `None` when it is
    /// unknown, revoked, expired, idle too long, or its user is inactive.
    /// Notes the activity, at most once per [`Lifetimes::touch_every`].
    #[tracing::instrument(skip_all)]
    pub async fn validate(&self, id: String) -> Result<Option<(Session, User)>, DbError> {
        let idle = self.lifetimes.idle.delta();
        let touch_every = self.lifetimes.touch_every();
        db::run(&self.pool, move |conn| {
            let now = Utc::now().trunc_subsecs(6);
            let Some((mut found, user)) =
                sessions::find_live_with_user(conn, &id, now, now - idle)?
            else {
                return Ok(None);
            };
            if now - found.last_seen_at >= touch_every {
                sessions::touch(conn, &found.id, now)?;
                found.last_seen_at = now;
            }
            Ok(Some((found, user)))
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
        let revoked = db::run(&self.pool, move |conn| {
            conn.transaction(|conn| {
                let revoked = sessions::revoke(conn, &id, Utc::now())?;
                if revoked {
                    event.store(conn)?;
                }
                Ok(revoked.then_some(event))
            })
        })
        .await?;
        if let Some(event) = revoked {
            event.log();
        }
        Ok(())
    }
}
