//! The session layer: a login is a server-side row, whether its credential
//! travels in a cookie or a bearer token. Starting, checking and ending a
//! session all happen here, so later work (caching, revocation fan-out,
//! listing a user's sessions) has one place to change.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{SubsecRound, TimeDelta, Utc};
use diesel::Connection;
use rand::RngCore;

use crate::client::Client;
use crate::db::{self, PgPool, StoreError};
use crate::models::session::{self, Session};
use crate::models::{User, user};

/// 256 random bits, base64url: session ids, CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How long sessions live, by kind.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub session: Duration,
    pub remember: Duration,
    /// Inactivity that ends a non-remembered session.
    pub idle: Duration,
    /// `last_seen_at` is written at most this often per session, so that
    /// activity tracking costs a write a minute, not one per request.
    pub touch_every: Duration,
}

impl Lifetimes {
    pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

    pub fn for_login(&self, remember: bool) -> Duration {
        if remember {
            self.remember
        } else {
            self.session
        }
    }
}

/// Starts a fresh session for `user_id` (never reusing an id: no session
/// fixation) and records the login time.
pub async fn start(
    pool: &PgPool,
    lifetimes: Lifetimes,
    user_id: i64,
    remember: bool,
    client: Client,
) -> Result<Session, StoreError> {
    // Postgres keeps microseconds: match it, so responses agree with reads.
    let now = Utc::now().trunc_subsecs(6);
    let lifetime = TimeDelta::from_std(lifetimes.for_login(remember))
        .expect("configuration caps lifetimes at ten years");
    let row = Session {
        id: random_token(),
        user_id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + lifetime,
        remember,
        user_agent: client.user_agent,
        ip: client.ip.map(Into::into),
        csrf_token: random_token(),
        revoked_at: None,
    };
    db::run(pool, move |conn| {
        conn.transaction(|conn| {
            session::insert(conn, &row)?;
            user::record_login(conn, user_id, now)?;
            Ok(row)
        })
    })
    .await
}

/// The live session with this id and its user, or `None` when it is
/// unknown, revoked, expired, idle too long, or its user is inactive.
/// Notes the activity, at most once per `touch_every`.
pub async fn find_live(
    pool: &PgPool,
    lifetimes: Lifetimes,
    id: String,
) -> Result<Option<(Session, User)>, StoreError> {
    let idle = TimeDelta::from_std(lifetimes.idle).expect("configuration caps lifetimes");
    let touch_every = TimeDelta::from_std(lifetimes.touch_every).expect("a minute fits");
    db::run(pool, move |conn| {
        let now = Utc::now().trunc_subsecs(6);
        let Some((mut found, user)) = session::find_live(conn, &id, now, now - idle)? else {
            return Ok(None);
        };
        if now - found.last_seen_at >= touch_every {
            session::touch(conn, &found.id, now)?;
            found.last_seen_at = now;
        }
        Ok(Some((found, user)))
    })
    .await
}

pub async fn revoke(pool: &PgPool, id: String) -> Result<(), StoreError> {
    db::run(pool, move |conn| {
        session::revoke(conn, &id, Utc::now()).map(drop)
    })
    .await
}
