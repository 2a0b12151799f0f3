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

/// Deletes up to `batch` events recorded before `until`; returns how many.
pub fn purge_before(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    batch: i64,
) -> QueryResult<usize> {
    let old: Vec<i64> = auth_events::table
        .filter(auth_events::at.lt(until))
        .select(auth_events::id)
        .limit(batch)
        .load(conn)?;
    diesel::delete(auth_events::table.filter(auth_events::id.eq_any(&old))).execute(conn)
}
