//! Start-up preparation: create the database if it is missing, then apply
//! the migrations embedded in the binary and the data migrations below,
//! once, however many instances start together.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::configuration::database_name;
use crate::db::connection_url;
use crate::db::locks::{self, Job};
use crate::db::users;
use crate::schema::data_migrations;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Changes to existing rows that SQL cannot make, each applied once, in
/// this order, after the schema migrations. Never reorder or rename one.
const DATA_MIGRATIONS: &[(&str, DataMigration)] =
    &[("normalise_emails_v1", users::normalise_emails)];

type DataMigration = fn(&mut PgConnection) -> QueryResult<()>;

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("DATABASE_URL is not a valid postgres:// URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to Postgres at {url}")]
    Connect {
        url: String,
        source: ConnectionError,
    },
    #[error("cannot create database {name}")]
    Create { name: String, source: DieselError },
    #[error("cannot apply migrations: {0}")]
    Migrate(String),
}

/// Creates the database named in `database_url` if it is missing, then
/// applies pending migrations. Safe to run from several instances at once.
pub fn prepare(database_url: &str) -> Result<(), PrepareError> {
    create_database_if_missing(database_url)?;
    let mut connection = connect(database_url)?;
    migrate(&mut connection)
}

fn connect(url: &str) -> Result<PgConnection, PrepareError> {
    PgConnection::establish(&connection_url(url)).map_err(|source| PrepareError::Connect {
        url: redact(url),
        source,
    })
}

fn create_database_if_missing(database_url: &str) -> Result<(), PrepareError> {
    let url = url::Url::parse(database_url).map_err(|e| PrepareError::BadUrl(e.to_string()))?;
    let name = database_name(&url).map_err(PrepareError::BadUrl)?;
    if PgConnection::establish(&connection_url(database_url)).is_ok() {
        return Ok(());
    }
    let mut maintenance_url = url.clone();
    maintenance_url.set_path("/postgres");
    let mut connection = connect(maintenance_url.as_str())?;
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(statement).execute(&mut connection) {
        Ok(_) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another instance won the race: the database exists, which is all we want.
        Err(DieselError::DatabaseError(_, info)) if info.message().contains("already exists") => {
            Ok(())
        }
        Err(source) => Err(PrepareError::Create { name, source }),
    }
}

/// Migrations run under an advisory lock so that instances starting together
/// apply each one exactly once.
pub fn migrate(connection: &mut PgConnection) -> Result<(), PrepareError> {
    let locked = |result: QueryResult<()>| result.map_err(|e| PrepareError::Migrate(e.to_string()));
    locked(locks::lock(connection, Job::Migrate))?;
    let applied = apply(connection);
    locked(locks::unlock(connection, Job::Migrate))?;
    let applied = applied?;
    if applied > 0 {
        tracing::info!(applied, "applied migrations");
    }
    Ok(())
}

fn apply(connection: &mut PgConnection) -> Result<usize, PrepareError> {
    let mut applied = connection
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.len())
        .map_err(|e| PrepareError::Migrate(e.to_string()))?;
    for (name, change) in DATA_MIGRATIONS {
        let done = connection
            .transaction(|conn| {
                let done: bool =
                    diesel::select(diesel::dsl::exists(data_migrations::table.find(name)))
                        .get_result(conn)?;
                if !done {
                    change(conn)?;
                    diesel::insert_into(data_migrations::table)
                        .values(data_migrations::name.eq(name))
                        .execute(conn)?;
                }
                Ok::<_, DieselError>(!done)
            })
            .map_err(|e| PrepareError::Migrate(format!("{name}: {e}")))?;
        applied += usize::from(done);
    }
    Ok(applied)
}

/// The URL without its password or its query (which may carry
/// `password=` or other secrets), fit for logs and error messages.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "<unparseable DATABASE_URL>".into(),
    }
}
