//! Postgres `LISTEN`/`NOTIFY` on the channel the invalidation triggers use.

use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::domain::UserId;

pub const CHANNEL: &str = "authd_invalidate";

/// What a notification asks to forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Every cached session of this user.
    User(UserId),
    /// Everything (a payload nobody understands counts as this).
    All,
}

impl Invalidation {
    fn parse(payload: &str) -> Self {
        payload
            .strip_prefix("u:")
            .and_then(|id| id.parse().ok())
            .map_or(Self::All, Self::User)
    }
}

pub fn listen(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(conn)
        .map(drop)
}

/// The notifications that have arrived, without waiting for more; an error
/// when the connection is broken.
pub fn received(conn: &mut PgConnection) -> QueryResult<Vec<Invalidation>> {
    conn.notifications_iter()
        .map(|notification| notification.map(|n| Invalidation::parse(&n.payload)))
        .collect()
}

/// A round trip: proves the connection (and so the subscription) alive.
pub fn ping(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_user_or_everything() {
        assert_eq!(
            Invalidation::parse("u:42"),
            Invalidation::User(UserId::new(42))
        );
        assert_eq!(Invalidation::parse("*"), Invalidation::All);
        assert_eq!(Invalidation::parse("u:x"), Invalidation::All);
    }
}
