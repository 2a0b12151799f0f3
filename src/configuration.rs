//! Typed configuration, read once from the environment (and `.env`) and
//! checked before anything starts, so a bad value stops the process with a
//! message that names the variable instead of failing on the first request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::TimeDelta;
use ipnet::IpNet;
use lettre::message::Mailbox;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// The smallest `SECRET_KEY` we accept: every derived key gets at least this
/// much input keying material.
pub const MIN_SECRET_KEY_BYTES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The one forwarding header believed from a trusted proxy: the one it
/// writes. The other is ignored, since a proxy passes it through untouched
/// from whoever sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientIpHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Key material for every signature and encryption key the service uses.
/// Its `Debug` never prints the bytes.
#[derive(Clone, Debug)]
pub struct SecretKey(SecretSlice<u8>);

impl SecretKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_SECRET_KEY_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_KEY_BYTES} bytes long (got {}); \
                 generate one with `openssl rand -base64 64`",
                bytes.len()
            ));
        }
        Ok(Self(bytes.into()))
    }

    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_SECRET_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// A span of time from the configuration: longer than zero and at most ten
/// years, so it fits a timestamp, a cookie `Max-Age` and a [`TimeDelta`].
/// Checked once here, it converts without failing wherever it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(Duration);

impl Period {
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

    pub fn new(duration: Duration) -> Result<Self, String> {
        if duration.is_zero() {
            Err("must be longer than zero".into())
        } else if duration > Self::MAX {
            Err("must be at most ten years".into())
        } else {
            Ok(Self(duration))
        }
    }

    pub fn from_secs(seconds: u32) -> Result<Self, String> {
        Self::new(Duration::from_secs(seconds.into()))
    }

    pub fn std(self) -> Duration {
        self.0
    }

    pub fn delta(self) -> TimeDelta {
        // At most ten years: far inside TimeDelta's range.
        TimeDelta::from_std(self.0).unwrap_or(TimeDelta::MAX)
    }

    /// Whole seconds, for `Max-Age` and `Retry-After`.
    pub fn seconds(self) -> i64 {
        self.delta().num_seconds()
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    pub database_url: String,
    /// A connection straight to Postgres, when `database_url` goes through a
    /// transaction-pooling PgBouncer: migrations (a session lock) and the
    /// invalidation listener (`LISTEN`) need one.
    pub database_direct_url: Option<String>,
    /// How long one statement may run before Postgres cancels it.
    pub db_statement_timeout: Period,
    pub bind: SocketAddr,
    /// Where `/metrics` is served; nowhere when unset.
    pub metrics_bind: Option<SocketAddr>,
    pub secret_key: SecretKey,
    /// True when `SECRET_KEY` was not set and a random one was made up.
    pub secret_key_generated: bool,
    pub bcrypt_cost: u32,
    /// Threads that hash passwords: more than the cores cannot go faster.
    pub hash_threads: usize,
    pub session_ttl: Period,
    pub remember_ttl: Period,
    pub cookie_secure: bool,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before giving up
    /// with 503: the bound on how long the service "hangs" when Postgres is gone.
    pub db_timeout: Period,
    pub log_format: LogFormat,
    /// The key being rotated out: cookies and tokens signed with it are
    /// still accepted, new ones are signed with `secret_key`.
    pub secret_key_previous: Option<SecretKey>,
    /// Inactivity after which a non-remembered session ends.
    pub session_idle_ttl: Period,
    /// Peers whose forwarding header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Which forwarding header that is.
    pub client_ip_header: ClientIpHeader,
    /// How long a client may take to send a request's head and body.
    pub client_timeout: Period,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Period,
    /// Send `Clear-Site-Data: "cookies"` on logout (clears every cookie of
    /// the site, other apps' on the same domain included).
    pub clear_site_data: bool,
    /// How long ended sessions and audit events are kept.
    pub audit_retention: Period,
    /// How often one instance purges what is past keeping.
    pub purge_interval: Period,
    /// Origins (`https://app.example.com`) allowed credentialed CORS.
    pub cors_origins: Vec<String>,
    /// The origin clients reach the API at, when it differs from what the
    /// Host header says (a proxy that rewrites it).
    pub public_origin: Option<String>,
    /// Where throttling counts live when set; Postgres otherwise.
    pub redis_url: Option<String>,
    /// What every Redis key authd writes starts with.
    pub redis_prefix: String,
    pub throttle: ThrottleSettings,
    pub recovery: RecoverySettings,
}

/// Account recovery by e-mail: where mail goes, where its links point, how
/// long they last.
#[derive(Clone, Debug)]
pub struct RecoverySettings {
    /// Off: no mail is queued, and the recovery routes answer 404.
    pub enabled: bool,
    /// The mail server, in lettre's URL form; in development, when unset,
    /// mails are written to the log instead. It may hold a password.
    pub smtp_url: Option<SecretString>,
    pub mail_from: Mailbox,
    /// The client application links open, without a trailing slash:
    /// `https://app.example.com` or `https://example.com/app`.
    pub app_url: String,
    /// The client's page for each purpose, under `app_url`.
    pub reset_path: String,
    pub verify_path: String,
    pub reset_ttl: Period,
    pub verify_ttl: Period,
    /// Refuse to log in an account whose address is not verified.
    pub require_verified_email: bool,
    /// Settings production should give but did not, with the development
    /// default used instead: start-up warns about each.
    pub unset_in_production: Vec<(&'static str, String)>,
}

impl RecoverySettings {
    /// The host plain SMTP goes to when it is not this machine: anyone on
    /// the way reads the links. `None` for TLS or loopback.
    pub fn plain_smtp_host(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.as_ref()?.expose_secret()).ok()?;
        let required = url
            .query_pairs()
            .any(|(key, value)| key == "tls" && value == "required");
        // smtp:// is not a special scheme to the URL parser: its host is
        // text, an address included.
        let host = url.host_str()?;
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        (url.scheme() == "smtp" && !required && !loopback).then(|| host.to_owned())
    }

    /// `host:port` of the mail server, for messages: never its password.
    pub fn smtp_server(&self) -> Option<String> {
        let url = url::Url::parse(self.smtp_url.as_ref()?.expose_secret()).ok()?;
        let port = url
            .port()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        Some(format!("{}://{}{port}", url.scheme(), url.host_str()?))
    }
}

/// Sliding-window limits against password guessing and sign-up abuse.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleSettings {
    /// Failed logins allowed per (login identifier, client IP) in `login_window`.
    pub login_per_identifier: u32,
    /// Failed logins allowed per client IP in `login_window`.
    pub login_per_ip: u32,
    pub login_window: Period,
    /// Registration attempts allowed per client IP in `register_window`.
    pub register_per_ip: u32,
    pub register_window: Period,
    /// Recovery mails (password resets, new verification links) asked for
    /// per address in `recovery_window`, whether or not it has an account.
    pub recovery_per_address: u32,
    /// Recovery mails asked for per client IP in `recovery_window`.
    pub recovery_per_ip: u32,
    pub recovery_window: Period,
}

impl ThrottleSettings {
    /// The longest of the windows: hits older than it count for nothing.
    pub fn longest_window(&self) -> Period {
        self.login_window
            .max(self.register_window)
            .max(self.recovery_window)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Settings {
    /// Where migrations and `LISTEN` connect: straight to Postgres.
    pub fn direct_database_url(&self) -> &str {
        self.database_direct_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }

    /// Whether `database_url` goes through a transaction pooler (because a
    /// direct URL is given): then its connections keep no session state.
    pub fn pooled(&self) -> bool {
        self.database_direct_url.is_some()
    }

    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigError {
                variable: ".env",
                message: error.to_string(),
            });
        }
        Self::from_vars(&std::env::vars().collect())
    }

    /// The pure half of [`Settings::from_env`], so tests can feed it a map.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(vars);
        let environment = env.parse("AUTHD_ENV", Environment::Development, |v| match v {
            "development" => Ok(Environment::Development),
            "production" => Ok(Environment::Production),
            _ => Err("must be `development` or `production`".into()),
        })?;
        let (secret_key, secret_key_generated) = match env.get("SECRET_KEY") {
            Some(value) => (
                SecretKey::new(value.as_bytes().to_vec()).map_err(|message| ConfigError {
                    variable: "SECRET_KEY",
                    message,
                })?,
                false,
            ),
            None if environment == Environment::Production => {
                return Err(ConfigError {
                    variable: "SECRET_KEY",
                    message: "is required when AUTHD_ENV=production".into(),
                });
            }
            None => (SecretKey::generate(), true),
        };
        let session_ttl = env.period("SESSION_TTL", seconds(24 * HOUR))?;
        let remember_ttl = env.period("REMEMBER_TTL", seconds(30 * DAY))?;
        if remember_ttl < session_ttl {
            return Err(ConfigError {
                variable: "REMEMBER_TTL",
                message: "must not be shorter than SESSION_TTL".into(),
            });
        }
        let recovery = recovery_settings(&env, environment)?;
        Ok(Self {
            environment,
            database_url: env.parse(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/authd".to_owned(),
                postgres_url,
            )?,
            database_direct_url: env
                .parse("DATABASE_DIRECT_URL", None, |v| postgres_url(v).map(Some))?,
            db_statement_timeout: env.period("DB_STATEMENT_TIMEOUT", seconds(5))?,
            bind: env.parse("BIND", SocketAddr::from(([127, 0, 0, 1], 8080)), |v| {
                v.parse()
                    .map_err(|_| "must be an address and port such as 127.0.0.1:8080".into())
            })?,
            metrics_bind: env.parse("METRICS_BIND", None, |v| {
                v.parse()
                    .map(Some)
                    .map_err(|_| "must be an address and port such as 127.0.0.1:9090".into())
            })?,
            secret_key,
            secret_key_generated,
            bcrypt_cost: env.parse("BCRYPT_COST", 12, |v| match v.parse::<u32>() {
                Ok(cost @ 4..=31) => Ok(cost),
                _ => Err("must be a whole number from 4 to 31".into()),
            })?,
            hash_threads: env.parse(
                "HASH_THREADS",
                std::thread::available_parallelism().map_or(1, usize::from),
                |v| match v.parse::<usize>() {
                    Ok(threads @ 1..=256) => Ok(threads),
                    _ => Err("must be a whole number from 1 to 256".into()),
                },
            )?,
            session_ttl,
            remember_ttl,
            cookie_secure: env.parse("COOKIE_SECURE", true, parse_bool)?,
            db_pool_size: env.parse("DB_POOL_SIZE", 10, |v| match v.parse::<u32>() {
                Ok(size @ 1..=1000) => Ok(size),
                _ => Err("must be a whole number from 1 to 1000".into()),
            })?,
            db_timeout: env.period("DB_TIMEOUT", seconds(3))?,
            log_format: env.parse("LOG_FORMAT", LogFormat::Pretty, |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be `pretty` or `json`".into()),
            })?,
            secret_key_previous: env.parse("SECRET_KEY_PREVIOUS", None, |v| {
                SecretKey::new(v.as_bytes().to_vec()).map(Some)
            })?,
            session_idle_ttl: env.parse("SESSION_IDLE_TTL", seconds(2 * HOUR), |value| {
                let period = parse_period(value)?;
                // Activity is written every quarter of it; below a second,
                // clocks and request latency decide instead of activity.
                if period.std() < Duration::from_secs(1) {
                    return Err("must be at least 1s".into());
                }
                Ok(period)
            })?,
            trusted_proxies: env.parse("TRUSTED_PROXIES", Vec::new(), parse_networks)?,
            client_ip_header: env.parse(
                "CLIENT_IP_HEADER",
                ClientIpHeader::default(),
                |v| match v.to_ascii_lowercase().as_str() {
                    "x-forwarded-for" => Ok(ClientIpHeader::XForwardedFor),
                    "forwarded" => Ok(ClientIpHeader::Forwarded),
                    _ => Err("must be `x-forwarded-for` or `forwarded`".into()),
                },
            )?,
            client_timeout: env.period("CLIENT_TIMEOUT", seconds(10))?,
            shutdown_timeout: env.period("SHUTDOWN_TIMEOUT", seconds(10))?,
            clear_site_data: env.parse("CLEAR_SITE_DATA", false, parse_bool)?,
            audit_retention: env.period("AUDIT_RETENTION", seconds(90 * DAY))?,
            purge_interval: env.period("PURGE_INTERVAL", seconds(HOUR))?,
            cors_origins: env.parse("CORS_ORIGINS", Vec::new(), parse_origins)?,
            public_origin: env.parse("PUBLIC_URL", None, |v| {
                match parse_origins(v)?.as_slice() {
                    [origin] => Ok(Some(origin.clone())),
                    _ => Err("must be one origin such as https://auth.example.com".into()),
                }
            })?,
            redis_url: env.parse("REDIS_URL", None, |v| match url::Url::parse(v) {
                Ok(url) if matches!(url.scheme(), "redis" | "rediss") => Ok(Some(v.to_owned())),
                _ => Err("must be a redis:// or rediss:// URL".into()),
            })?,
            redis_prefix: env.parse("REDIS_PREFIX", "authd:".to_owned(), |v| {
                if v.chars().all(|c| c.is_ascii_graphic()) {
                    Ok(v.to_owned())
                } else {
                    Err("must be printable ASCII without spaces".into())
                }
            })?,
            throttle: ThrottleSettings {
                login_per_identifier: env.parse(
                    "LOGIN_FAILURES_PER_IDENTIFIER",
                    10,
                    parse_limit,
                )?,
                login_per_ip: env.parse("LOGIN_FAILURES_PER_IP", 100, parse_limit)?,
                login_window: env.period("LOGIN_FAILURE_WINDOW", seconds(15 * MINUTE))?,
                register_per_ip: env.parse("REGISTRATIONS_PER_IP", 20, parse_limit)?,
                register_window: env.period("REGISTRATION_WINDOW", seconds(HOUR))?,
                recovery_per_address: env.parse("RECOVERY_MAILS_PER_ADDRESS", 5, parse_limit)?,
                recovery_per_ip: env.parse("RECOVERY_MAILS_PER_IP", 20, parse_limit)?,
                recovery_window: env.period("RECOVERY_WINDOW", seconds(HOUR))?,
            },
            recovery,
        })
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

/// Recovery's settings. In production, with recovery on, the mail server
/// must be given, or the start fails naming it; a sender or client URL left
/// at development's default is warned about.
fn recovery_settings(
    env: &Env<'_>,
    environment: Environment,
) -> Result<RecoverySettings, ConfigError> {
    let enabled = env.parse("ACCOUNT_RECOVERY", true, parse_bool)?;
    let production = environment == Environment::Production;
    let required = |variable: &'static str| -> Result<(), ConfigError> {
        if enabled && production && env.get(variable).is_none() {
            return Err(ConfigError {
                variable,
                message: "is required when AUTHD_ENV=production and ACCOUNT_RECOVERY is on \
                          (set ACCOUNT_RECOVERY=false to run without account recovery)"
                    .into(),
            });
        }
        Ok(())
    };
    required("SMTP_URL")?;
    let require_verified_email = env.parse("REQUIRE_VERIFIED_EMAIL", false, parse_bool)?;
    if require_verified_email && !enabled {
        return Err(ConfigError {
            variable: "REQUIRE_VERIFIED_EMAIL",
            message: "needs ACCOUNT_RECOVERY on: without mail, no address could be verified".into(),
        });
    }
    let mut recovery = RecoverySettings {
        enabled,
        smtp_url: env.parse("SMTP_URL", None, |v| parse_smtp_url(v).map(Some))?,
        mail_from: env.parse(
            "MAIL_FROM",
            // Development's sender: a constant, valid address.
            Mailbox::new(
                Some("authd".into()),
                lettre::Address::new_dangerous("authd", "localhost"),
            ),
            |v| {
                v.parse::<Mailbox>().map_err(|_| {
                    "must be an address such as `noreply@example.com` or `Example <noreply@example.com>`".into()
                })
            },
        )?,
        app_url: env.parse("PUBLIC_APP_URL", "http://localhost:3000".to_owned(), parse_app_url)?,
        reset_path: env.parse("RESET_PATH", "/reset-password".to_owned(), parse_app_path)?,
        verify_path: env.parse("VERIFY_PATH", "/verify-email".to_owned(), parse_app_path)?,
        reset_ttl: env.period("RESET_TTL", seconds(HOUR))?,
        verify_ttl: env.period("VERIFY_TTL", seconds(48 * HOUR))?,
        require_verified_email,
        unset_in_production: Vec::new(),
    };
    // Without these, production still starts, on development's defaults,
    // and start-up says so: wrong links are visible at once and fixable.
    if enabled && production {
        let defaults = [
            ("MAIL_FROM", recovery.mail_from.to_string()),
            ("PUBLIC_APP_URL", recovery.app_url.clone()),
        ];
        recovery.unset_in_production = defaults
            .into_iter()
            .filter(|(variable, _)| env.get(variable).is_none())
            .collect();
    }
    Ok(recovery)
}

/// lettre's URL form: `smtps://user:pass@host:465`,
/// `smtp://user:pass@host:587?tls=required`, or plain `smtp://host:port`.
fn parse_smtp_url(value: &str) -> Result<SecretString, String> {
    let bad = |why: &str| {
        format!(
            "{why}: write smtps://user:pass@host:465, smtp://user:pass@host:587?tls=required, \
             or smtp://host:port for a local relay"
        )
    };
    let url = url::Url::parse(value).map_err(|_| bad("not a URL"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    let tls: Vec<_> = url
        .query_pairs()
        .filter(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned())
        .collect();
    match (url.scheme(), tls.as_slice()) {
        ("smtp" | "smtps", []) => Ok(value.into()),
        ("smtp", [mode]) if mode == "required" || mode == "opportunistic" => Ok(value.into()),
        ("smtp", _) => Err(bad("`tls` must be `required` or `opportunistic`")),
        ("smtps", _) => Err(bad("smtps is TLS already; leave `tls` out")),
        _ => Err(bad("the scheme must be smtp or smtps")),
    }
}

/// The client application's URL: http(s), no query or fragment; a path is
/// kept (without its trailing slash) for apps that live under one.
fn parse_app_url(value: &str) -> Result<String, String> {
    let bad = || format!("`{value}` is not a URL such as https://app.example.com");
    let url = url::Url::parse(value).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A page of the client application: a path that starts with `/`.
fn parse_app_path(value: &str) -> Result<String, String> {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#' | '\\'));
    if value.starts_with('/') && !value.starts_with("//") && plain {
        Ok(value.to_owned())
    } else {
        Err("must be a path such as /reset-password (no query, no fragment)".into())
    }
}

const fn seconds(seconds: u64) -> Period {
    Period(Duration::from_secs(seconds))
}
const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    /// An empty value counts as unset, as `.env` templates often leave them.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn parse<T>(
        &self,
        variable: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(variable) {
            None => Ok(default),
            Some(value) => parse(value.trim()).map_err(|message| ConfigError { variable, message }),
        }
    }

    fn period(&self, variable: &'static str, default: Period) -> Result<Period, ConfigError> {
        self.parse(variable, default, parse_period)
    }
}

/// Parses a duration in humantime's notation: `90s`, `15m`, `24h`, `30d`,
/// `1.5h`, or combined, `1h 30m`.
pub fn parse_period(value: &str) -> Result<Period, String> {
    let duration = humantime::parse_duration(value).map_err(|error| {
        format!("{error}: write a number and a unit, such as 90s, 15m, 24h or 30d")
    })?;
    Period::new(duration)
}

fn parse_limit(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(limit @ 1..) => Ok(limit),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

/// Comma-separated addresses and CIDR ranges: `10.0.0.1, 192.168.0.0/16`.
fn parse_networks(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{item}` is not an IP address or CIDR range"))
        })
        .collect()
}

/// Comma-separated origins, normalised to `scheme://host[:port]`. A
/// wildcard is refused: it cannot be combined with credentials.
fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let bad = || format!("`{item}` is not an origin such as https://app.example.com (no path, no wildcard)");
            let url = url::Url::parse(item).map_err(|_| bad())?;
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
                return Err(bad());
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be `true` or `false`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_with_an_empty_environment() {
        let settings = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.bcrypt_cost, 12);
        assert_eq!(settings.session_ttl.std(), Duration::from_secs(86_400));
        assert_eq!(
            settings.remember_ttl.std(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(settings.cookie_secure);
        assert!(settings.secret_key_generated);
        assert_eq!(settings.client_ip_header, ClientIpHeader::XForwardedFor);
        assert_eq!(settings.client_timeout.std(), Duration::from_secs(10));
        assert!(!settings.clear_site_data);
        assert_eq!(
            settings.audit_retention.std(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(settings.purge_interval.std(), Duration::from_secs(3600));
        assert_eq!(
            settings.database_url,
            "postgres://postgres@127.0.0.1:5432/authd"
        );
        assert_eq!(settings.database_direct_url, None);
        assert_eq!(settings.db_statement_timeout.std(), Duration::from_secs(5));
        assert_eq!(settings.shutdown_timeout.std(), Duration::from_secs(10));
        assert_eq!(settings.metrics_bind, None);
        assert_eq!(settings.log_format, LogFormat::Pretty);
        let recovery = &settings.recovery;
        assert!(recovery.enabled);
        assert!(recovery.smtp_url.is_none());
        assert_eq!(recovery.reset_ttl.std(), Duration::from_secs(3600));
        assert_eq!(recovery.verify_ttl.std(), Duration::from_secs(48 * 3600));
        assert!(!recovery.require_verified_email);
    }

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
    fn durations_take_a_number_and_a_unit() {
        let seconds = |value| parse_period(value).map(|period| period.std().as_secs());
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("15m"), Ok(900));
        assert_eq!(seconds("24h"), Ok(86_400));
        assert_eq!(seconds("30d"), Ok(2_592_000));
        assert_eq!(seconds("1h 30m"), Ok(5_400));
        assert_eq!(seconds("1.5h"), Ok(5_400));
        assert_eq!(seconds("2 days"), Ok(172_800));
        for bad in [
            "",
            "10",
            "h",
            "-1h",
            "0s",
            "1 fortnight",
            "11y",
            "99999999999999999999d",
        ] {
            assert!(parse_period(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("BCRYPT_COST", "3"),
            ("BCRYPT_COST", "twelve"),
            ("SESSION_TTL", "one day"),
            ("COOKIE_SECURE", "yes"),
            ("BIND", "localhost"),
            ("DB_POOL_SIZE", "0"),
            ("SECRET_KEY", "too-short"),
            ("AUTHD_ENV", "staging"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
            ("CORS_ORIGINS", "*"),
            ("CORS_ORIGINS", "https://app.example.com/path"),
            ("REDIS_URL", "http://localhost"),
            ("LOGIN_FAILURES_PER_IP", "0"),
            ("SECRET_KEY_PREVIOUS", "short"),
            ("PUBLIC_URL", "https://a.example, https://b.example"),
            ("CLIENT_IP_HEADER", "x-real-ip"),
            ("CLIENT_TIMEOUT", "0s"),
            ("CLEAR_SITE_DATA", "1"),
            ("SESSION_IDLE_TTL", "500ms"),
            ("SMTP_URL", "http://mail.example.com"),
            ("SMTP_URL", "smtp://mail.example.com?tls=sometimes"),
            ("SMTP_URL", "smtps://mail.example.com?tls=required"),
            ("SMTP_URL", "smtp://"),
            ("MAIL_FROM", "not an address"),
            ("PUBLIC_APP_URL", "app.example.com"),
            ("PUBLIC_APP_URL", "https://app.example.com/?next=1"),
            ("PUBLIC_APP_URL", "javascript:alert(1)"),
            ("RESET_PATH", "reset"),
            ("VERIFY_PATH", "//evil.example/verify"),
            ("VERIFY_PATH", "/verify#x"),
            ("RESET_TTL", "0s"),
            ("ACCOUNT_RECOVERY", "yes"),
            ("RECOVERY_MAILS_PER_ADDRESS", "0"),
        ] {
            let error = Settings::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(error.variable, name);
            assert!(error.to_string().contains(name));
        }
    }

    #[test]
    fn lists_are_parsed_and_normalised() {
        let settings = Settings::from_vars(&vars(&[
            ("TRUSTED_PROXIES", " 10.0.0.0/8, 127.0.0.1 ,::1"),
            (
                "CORS_ORIGINS",
                "https://app.example.com, http://localhost:5173/",
            ),
        ]))
        .unwrap();
        let proxies: Vec<String> = settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        assert_eq!(
            settings.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert!(
            Settings::from_vars(&HashMap::new())
                .unwrap()
                .cors_origins
                .is_empty()
        );
    }

    #[test]
    fn production_requires_a_secret_key() {
        let error = Settings::from_vars(&vars(&[("AUTHD_ENV", "production")])).unwrap_err();
        assert_eq!(error.variable, "SECRET_KEY");
        let key = "k".repeat(64);
        let settings = Settings::from_vars(&vars(&[
            ("AUTHD_ENV", "production"),
            ("SECRET_KEY", &key),
            ("ACCOUNT_RECOVERY", "false"),
        ]))
        .unwrap();
        assert!(!settings.secret_key_generated);
        assert!(!format!("{settings:?}").contains(&key));
    }

    #[test]
    fn production_recovery_needs_a_mail_server_and_warns_without_sender_or_app() {
        let key = "k".repeat(64);
        let mut given = vec![("AUTHD_ENV", "production"), ("SECRET_KEY", key.as_str())];
        let error = Settings::from_vars(&vars(&given)).unwrap_err();
        assert_eq!(error.variable, "SMTP_URL");
        assert!(error.message.contains("ACCOUNT_RECOVERY=false"));
        given.push(("SMTP_URL", "smtps://user:secret@mail.example.com"));
        let settings = Settings::from_vars(&vars(&given)).unwrap();
        let unset: Vec<_> = settings
            .recovery
            .unset_in_production
            .iter()
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(unset, ["MAIL_FROM", "PUBLIC_APP_URL"]);
        given.push(("MAIL_FROM", "Example <noreply@example.com>"));
        given.push(("PUBLIC_APP_URL", "https://app.example.com/"));
        let settings = Settings::from_vars(&vars(&given)).unwrap();
        let recovery = &settings.recovery;
        assert!(recovery.unset_in_production.is_empty());
        assert_eq!(recovery.app_url, "https://app.example.com");
        assert_eq!(recovery.smtp_server().unwrap(), "smtps://mail.example.com");
        assert!(!format!("{settings:?}").contains("secret@"));
        assert_eq!(recovery.plain_smtp_host(), None);
    }

    #[test]
    fn plain_smtp_is_noticed_only_off_this_machine() {
        let host = |url: &str| {
            Settings::from_vars(&vars(&[("SMTP_URL", url)]))
                .unwrap()
                .recovery
                .plain_smtp_host()
        };
        assert_eq!(
            host("smtp://mail.example.com:25"),
            Some("mail.example.com".into())
        );
        assert_eq!(
            host("smtp://mail.example.com:587?tls=opportunistic"),
            Some("mail.example.com".into())
        );
        assert_eq!(host("smtp://mail.example.com:587?tls=required"), None);
        assert_eq!(host("smtps://mail.example.com"), None);
        assert_eq!(host("smtp://127.0.0.1:2525"), None);
        assert_eq!(host("smtp://localhost:25"), None);
        assert_eq!(host("smtp://[::1]:25"), None);
    }

    #[test]
    fn verified_addresses_cannot_be_required_without_recovery() {
        let error = Settings::from_vars(&vars(&[
            ("ACCOUNT_RECOVERY", "false"),
            ("REQUIRE_VERIFIED_EMAIL", "true"),
        ]))
        .unwrap_err();
        assert_eq!(error.variable, "REQUIRE_VERIFIED_EMAIL");
    }

    #[test]
    fn remember_ttl_cannot_be_shorter_than_session_ttl() {
        let error = Settings::from_vars(&vars(&[("SESSION_TTL", "2d"), ("REMEMBER_TTL", "1d")]))
            .unwrap_err();
        assert_eq!(error.variable, "REMEMBER_TTL");
    }
}
