//! The `sessions` table: one row per login, whatever carries it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ipnet::IpNet;

use crate::db::users::User;
use crate::domain::{CsrfToken, SessionId, SessionToken, UserId};
use crate::schema::{sessions, users};

/// A login, wherever its credential travels: what checking it and
/// answering for it needs, which is all that each instance keeps of it in
/// memory (so nothing else: see `SessionRecord`). Its `Debug` prints
/// neither credential (their types do not).
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    /// The credential the cookie or bearer token carries (the `id` column).
    #[diesel(column_name = id)]
    pub token: SessionToken,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub remember: bool,
    pub csrf_token: CsrfToken,
    /// The handle the owner sees and ends it by (the `public_id` column).
    #[diesel(column_name = public_id)]
    pub id: SessionId,
    /// How it was made: the methods its login used (RFC 8176 names). A
    /// check keeps NULLs out; Postgres arrays can hold them, so the type
    /// says they might.
    pub amr: Vec<Option<String>>,
}

/// A row of `sessions` whole (but for `revoked_at`, which a live one has
/// not): the login, and the client it was made from, as its owner sees it
/// in a list of their sessions.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct SessionRecord {
    #[diesel(embed)]
    pub session: Session,
    pub user_agent: Option<String>,
    pub ip: Option<IpNet>,
}

impl Session {
    /// The methods its login used.
    pub fn methods(&self) -> Vec<&str> {
        self.amr.iter().flatten().map(String::as_str).collect()
    }
}

#[cfg(test)]
impl Session {
    /// A plain session of `user_id` with this credential, made now and live
    /// for an hour: for unit tests.
    pub(crate) fn sample(user_id: UserId, token: SessionToken) -> Self {
        let now = Utc::now();
        Self {
            token,
            user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::TimeDelta::hours(1),
            remember: false,
            csrf_token: CsrfToken::generate(),
            id: SessionId::generate(),
            amr: vec![Some("pwd".into())],
        }
    }
}

pub fn insert(conn: &mut PgConnection, session: &SessionRecord) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

/// Live: not revoked, not expired, and not idle since before `idle_since`
/// (unless remembered).
#[diesel::dsl::auto_type]
fn live(now: DateTime<Utc>, idle_since: DateTime<Utc>) -> _ {
    sessions::revoked_at
        .is_null()
        .and(sessions::expires_at.gt(now))
        .and(sessions::remember.or(sessions::last_seen_at.gt(idle_since)))
}

/// Live sessions joined to their users, where the user is active. Typed,
/// not boxed, so that diesel keeps each reader's prepared statement.
#[diesel::dsl::auto_type(no_type_alias)]
fn live_with_users(now: DateTime<Utc>, idle_since: DateTime<Utc>) -> _ {
    let live: live = live(now, idle_since);
    sessions::table
        .inner_join(users::table)
        .filter(live)
        .filter(users::is_active)
}

/// The session and its user, if the session is live and its user active.
pub fn find_live_with_user(
    conn: &mut PgConnection,
    token: &SessionToken,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> QueryResult<Option<(Session, User)>> {
    live_with_users(now, idle_since)
        .filter(sessions::id.eq(token))
        .select((Session::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Ids an array passed to [`find_live_with_users`] holds at least.
const PLANNED_IDS: usize = 16;

/// [`find_live_with_user`] for many sessions, in one statement (`id =
/// ANY($1)`, by the primary key).
///
/// The array is padded with repeats to [`PLANNED_IDS`] ids, which costs
/// nothing to run (the index scan drops repeated keys) and saves planning
/// every read. Postgres reuses a generic plan (made once, with the array's
/// length unknown, costed as ten ids) only while it costs no more than the
/// plans made for the actual arguments; for the few ids a read usually has,
/// those cost less, so it planned every read anew: a fifth of a millisecond
/// of Postgres's time, as much as the read itself. Still not for one id,
/// whose form keeps its plan by itself.
pub fn find_live_with_users(
    conn: &mut PgConnection,
    tokens: &[SessionToken],
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> QueryResult<Vec<(Session, User)>> {
    let ids: Vec<&str> = tokens
        .iter()
        .map(SessionToken::expose)
        .cycle()
        .take(tokens.len().max(PLANNED_IDS))
        .collect();
    live_with_users(now, idle_since)
        .filter(sessions::id.eq_any(ids))
        .select((Session::as_select(), User::as_select()))
        .load(conn)
}

/// A user's live sessions, newest first.
pub fn list_live(
    conn: &mut PgConnection,
    user_id: UserId,
    now: DateTime<Utc>,
    idle_since: DateTime<Utc>,
) -> QueryResult<Vec<SessionRecord>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(live(now, idle_since))
        .order((sessions::created_at.desc(), sessions::public_id))
        .select(SessionRecord::as_select())
        .load(conn)
}

/// Revokes the user's session with this public id; `None` when the user
/// has no such session still unrevoked.
pub fn revoke_public(
    conn: &mut PgConnection,
    user_id: UserId,
    public_id: &SessionId,
    now: DateTime<Utc>,
) -> QueryResult<Option<Session>> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::public_id.eq(public_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .returning(Session::as_returning())
    .get_result(conn)
    .optional()
}

/// Revokes every unrevoked session of the user but those in `keep`;
/// returns how many.
pub fn revoke_all_of(
    conn: &mut PgConnection,
    user_id: UserId,
    keep: &[SessionToken],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::id.ne_all(keep)),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)
}

/// Where a purge of ended sessions goes on reading each index: past what
/// its earlier batches deleted (see
/// [`auth_events::purge_before`](crate::db::auth_events::purge_before)).
#[derive(Debug, Default)]
pub struct PurgeResume {
    expired: Option<DateTime<Utc>>,
    revoked: Option<DateTime<Utc>>,
}

/// Deletes up to `batch` sessions that ended (expired or revoked) before
/// `until`, oldest first from `resume` on; returns how many.
pub fn purge_ended(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    resume: &mut PurgeResume,
    batch: i64,
) -> QueryResult<usize> {
    // One index range each, not one scan for either: with an OR the planner
    // reads the table, to its end once the backlog is gone.
    let mut expired = sessions::table
        .filter(sessions::expires_at.lt(until))
        .into_boxed();
    if let Some(from) = resume.expired {
        expired = expired.filter(sessions::expires_at.ge(from));
    }
    let expired: Vec<(SessionToken, DateTime<Utc>)> = expired
        .order(sessions::expires_at)
        .select((sessions::id, sessions::expires_at))
        .limit(batch)
        .load(conn)?;
    if let Some((_, at)) = expired.last() {
        resume.expired = Some(*at);
    }
    let mut ended: Vec<SessionToken> = expired.into_iter().map(|(id, _)| id).collect();
    let room = batch - i64::try_from(ended.len()).unwrap_or(batch);
    if room > 0 {
        let mut revoked = sessions::table
            .filter(sessions::revoked_at.lt(until))
            .filter(sessions::expires_at.ge(until))
            .into_boxed();
        if let Some(from) = resume.revoked {
            revoked = revoked.filter(sessions::revoked_at.ge(from));
        }
        let revoked: Vec<(SessionToken, Option<DateTime<Utc>>)> = revoked
            .order(sessions::revoked_at)
            .select((sessions::id, sessions::revoked_at))
            .limit(room)
            .load(conn)?;
        if let Some((_, Some(at))) = revoked.last() {
            resume.revoked = Some(*at);
        }
        ended.extend(revoked.into_iter().map(|(id, _)| id));
    }
    diesel::delete(sessions::table.filter(sessions::id.eq_any(&ended))).execute(conn)
}

/// Marks the session revoked; revoking twice keeps the first time.
pub fn revoke(
    conn: &mut PgConnection,
    token: &SessionToken,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .find(token)
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)
    .map(|rows| rows > 0)
}

/// Notes activity for many sessions in one statement; a session already
/// seen later keeps its time. A plain session that had been idle for
/// `idle` before the activity was noted (the database ended it meanwhile,
/// whatever an instance's cache thought) is not brought back.
pub fn touch_many(
    conn: &mut PgConnection,
    seen: &[(SessionToken, DateTime<Utc>)],
    idle: std::time::Duration,
) -> QueryResult<usize> {
    let (ids, times): (Vec<&str>, Vec<DateTime<Utc>>) =
        seen.iter().map(|(token, at)| (token.expose(), *at)).unzip();
    diesel::sql_query(
        "UPDATE sessions SET last_seen_at = seen.at \
         FROM unnest($1::text[], $2::timestamptz[]) AS seen(id, at) \
         WHERE sessions.id = seen.id AND sessions.last_seen_at < seen.at \
         AND (sessions.remember OR sessions.last_seen_at > seen.at - make_interval(secs => $3))",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Timestamptz>, _>(times)
    .bind::<diesel::sql_types::Double, _>(idle.as_secs_f64())
    .execute(conn)
}
