//! The `auth_events` table: the audit trail's rows.

use diesel::prelude::*;
use ipnet::IpNet;

use crate::schema::auth_events;

#[derive(Debug, Insertable)]
#[diesel(table_name = auth_events, check_for_backend(diesel::pg::Pg))]
pub struct NewAuthEvent<'a> {
    pub event: &'a str,
    pub user_id: Option<i64>,
    pub identifier: Option<&'a str>,
    pub ip: Option<IpNet>,
    pub user_agent: Option<&'a str>,
}

pub fn insert(conn: &mut PgConnection, event: &NewAuthEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(auth_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}
