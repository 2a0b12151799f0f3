//! The `sessions` table: one row per login, whatever carries it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ipnet::IpNet;

use crate::db::users::User;
use crate::schema::{sessions, users};

/// A row of `sessions`: one login, wherever its credential travels.
#[derive(Clone, Debug, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub remember: bool,
    pub user_agent: Option<String>,
    pub ip: Option<IpNet>,
    pub csrf_token: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub fn insert(conn: &mut PgConnection, session: &Session) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

/// The session and its user, if the session is live: not revoked, not
/// expired, not idle since before `idle_since` (unless remembered), and its
/// user still active.
pub fn find_live_with_user(
    conn: &mut PgConnection,
    id: &str,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> QueryResult<Option<(Session, User)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::remember.or(sessions::last_seen_at.gt(idle_since)))
        .filter(users::is_active)
        .select((Session::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Marks the session revoked; revoking twice keeps the first time.
pub fn revoke(conn: &mut PgConnection, id: &str, now: DateTime<Utc>) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)
    .map(|rows| rows > 0)
}

pub fn touch(conn: &mut PgConnection, id: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(sessions::table.find(id))
        .set(sessions::last_seen_at.eq(now))
        .execute(conn)
        .map(drop)
}
