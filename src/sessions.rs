//! The session layer: a login is a server-side row, whether its credential
//! travels in a cookie or a bearer token. Starting, checking and ending a
//! session all happen here, so later work (caching, revocation fan-out,
//! listing a user's sessions) has one place to change.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{SubsecRound, TimeDelta, Utc};
use diesel::Connection;
use rand::RngCore;

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
}

impl Lifetimes {
    pub fn for_login(&self, remember: bool) -> Duration {
        if remember {
            self.remember
        } else {
            self.session
        }
    }
}

/// What we record about the client that logged in.
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
}

/// A long User-Agent is kept, cut to this many characters.
const USER_AGENT_MAX_CHARS: usize = 512;

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
        user_agent: client
            .user_agent
            .map(|agent| agent.chars().take(USER_AGENT_MAX_CHARS).collect()),
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
/// unknown, revoked, expired, or its user is inactive.
pub async fn find_live(pool: &PgPool, id: String) -> Result<Option<(Session, User)>, StoreError> {
    db::run(pool, move |conn| session::find_live(conn, &id, Utc::now())).await
}

pub async fn revoke(pool: &PgPool, id: String) -> Result<(), StoreError> {
    db::run(pool, move |conn| {
        session::revoke(conn, &id, Utc::now()).map(drop)
    })
    .await
}
