//! The `shared_secrets` table: secrets every instance sharing the database
//! shares, made once by a migration.

use diesel::prelude::*;

use crate::schema::shared_secrets;

pub const THROTTLE_KEY: &str = "throttle_key";

pub fn get(conn: &mut PgConnection, name: &str) -> QueryResult<Vec<u8>> {
    shared_secrets::table
        .find(name)
        .select(shared_secrets::value)
        .first(conn)
}
