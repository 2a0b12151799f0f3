//! The `auth_events` table: the audit trail's rows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ipnet::IpNet;

use crate::domain::UserId;
use crate::schema::auth_events;

#[derive(Debug, Insertable)]
#[diesel(table_name = auth_events, check_for_backend(diesel::pg::Pg))]
pub struct NewAuthEvent<'a> {
    pub event: &'a str,
    pub user_id: Option<UserId>,
    pub identifier: Option<&'a str>,
    pub ip: Option<IpNet>,
    pub user_agent: Option<&'a str>,
    pub reason: Option<&'a str>,
}

pub fn insert(conn: &mut PgConnection, event: &NewAuthEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(auth_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}

/// Deletes up to `batch` events recorded before `until`, oldest first,
/// reading the index from `resume` on (and moving it past what it
/// deleted); returns how many.
///
/// The index keeps a deleted row's entry until vacuum: a batch that read
/// the range from its start would step over every entry the batches
/// before it left, more at each batch (a million-row backlog took a second
/// a batch).
pub fn purge_before(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    resume: &mut Option<DateTime<Utc>>,
    batch: i64,
) -> QueryResult<usize> {
    let mut old = auth_events::table
        .filter(auth_events::at.lt(until))
        .into_boxed();
    if let Some(from) = *resume {
        old = old.filter(auth_events::at.ge(from));
    }
    let old: Vec<(i64, DateTime<Utc>)> = old
        .order(auth_events::at)
        .select((auth_events::id, auth_events::at))
        .limit(batch)
        .load(conn)?;
    if let Some((_, at)) = old.last() {
        *resume = Some(*at);
    }
    let ids: Vec<i64> = old.into_iter().map(|(id, _)| id).collect();
    diesel::delete(auth_events::table.filter(auth_events::id.eq_any(&ids))).execute(conn)
}
