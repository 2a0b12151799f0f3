//! Postgres: where it is, and how authd uses its connections.

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, Period, parse_within, seconds};

#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    /// A connection straight to Postgres, when `url` goes through a
    /// transaction-pooling PgBouncer: migrations (a session lock) and the
    /// invalidation listener (`LISTEN`) need one.
    pub direct_url: Option<String>,
    pub pool_size: u32,
    /// How long a request waits for a database connection before giving up
    /// with 503: the bound on how long the service "hangs" when Postgres is
    /// gone.
    pub timeout: Period,
    /// How long one statement may run before Postgres cancels it.
    pub statement_timeout: Period,
}

/// The URLs without their passwords: settings are printed whole in
/// debugging, and a database password must never reach a log.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &without_password(&self.url))
            .field(
                "direct_url",
                &self.direct_url.as_deref().map(without_password),
            )
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// `url` with any password replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only a URL that cannot have a password refuses one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable>".to_owned(),
    }
}

impl DatabaseSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.parse(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/authd".to_owned(),
                postgres_url,
            )?,
            direct_url: env.parse("DATABASE_DIRECT_URL", None, |v| postgres_url(v).map(Some))?,
            pool_size: env.parse("DB_POOL_SIZE", 10, |v| parse_within(v, 1..=1000))?,
            timeout: env.period("DB_TIMEOUT", seconds(3))?,
            statement_timeout: env.period("DB_STATEMENT_TIMEOUT", seconds(5))?,
        })
    }

    /// Where migrations and `LISTEN` connect: straight to Postgres.
    pub fn direct_url(&self) -> &str {
        self.direct_url.as_deref().unwrap_or(&self.url)
    }

    /// Whether `url` goes through a transaction pooler (because a direct URL
    /// is given): then its connections keep no session state.
    pub fn pooled(&self) -> bool {
        self.direct_url.is_some()
    }
}

/// A `postgres://` URL that names its database: checked here, so a typo is
/// a configuration error (exit 2) before anything connects.
fn postgres_url(value: &str) -> Result<String, String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {
            database_name(&url).map(|_| value.to_owned())
        }
        _ => Err("must be a postgres:// URL".into()),
    }
}

/// The database a `postgres://` URL names, percent-decoded as libpq reads
/// it: one path segment, not empty, without a NUL.
pub fn database_name(url: &url::Url) -> Result<String, String> {
    let encoded = url.path().strip_prefix('/').unwrap_or_default();
    let name = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| "names a database that is not UTF-8".to_owned())?;
    if encoded.is_empty() {
        Err("must name a database, as in postgres://user@host:5432/authd".into())
    } else if encoded.contains('/') || name.contains('\0') {
        Err("must name one database: the path is a single name, as in /authd".into())
    } else {
        Ok(name.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_read_as_libpq_reads_it() {
        let name = |url: &str| database_name(&url::Url::parse(url).unwrap());
        assert_eq!(name("postgres://h/authd"), Ok("authd".into()));
        assert_eq!(name("postgres://h/auth%20d"), Ok("auth d".into()));
        assert_eq!(
            name("postgres:///authd?host=/run/postgresql"),
            Ok("authd".into())
        );
        for bad in [
            "postgres://h",
            "postgres://h/",
            "postgres://h/a/",
            "postgres://h/a%00",
        ] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_prints_a_database_password() {
        let vars = [
            ("DATABASE_URL", "postgres://authd:s3cret-pw@db/authd"),
            (
                "DATABASE_DIRECT_URL",
                "postgres://authd:other-pw@db:5432/authd",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let settings = DatabaseSettings::read(&Env(&vars)).unwrap();
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("s3cret-pw") && !printed.contains("other-pw"),
            "{printed}"
        );
        assert!(
            printed.contains("postgres://authd:***@db/authd"),
            "{printed}"
        );
        assert_eq!(settings.url, "postgres://authd:s3cret-pw@db/authd");
    }
}
