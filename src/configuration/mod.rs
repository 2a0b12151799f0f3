//! Typed configuration, read once from the environment (and `.env`) and
//! checked before anything starts, so a bad value stops the process with a
//! message that names the variable instead of failing on the first request.
//! One group of settings per concern, each reading its own variables.

mod database;
mod env;
mod http;
mod mail;
mod mfa;
mod passwords;
mod recovery;
mod secrets;
mod sessions;
pub mod throttle;
mod webauthn;

use std::collections::HashMap;

pub use database::{DatabaseSettings, database_name};
pub use env::{Period, parse_period};
pub use http::{ClientIpHeader, HttpSettings};
pub use mail::MailSettings;
pub use mfa::MfaSettings;
pub use passwords::PasswordSettings;
pub use recovery::RecoverySettings;
pub use secrets::{MIN_SECRET_KEY_BYTES, SecretKey, SecretSettings};
pub use sessions::{RetentionSettings, SessionSettings};
pub use throttle::{Bucket, Limit, ThrottleSettings};
pub use webauthn::WebauthnSettings;

use env::Env;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    pub log_format: LogFormat,
    pub secrets: SecretSettings,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub sessions: SessionSettings,
    pub passwords: PasswordSettings,
    pub throttle: ThrottleSettings,
    pub retention: RetentionSettings,
    pub mail: MailSettings,
    pub recovery: RecoverySettings,
    pub mfa: MfaSettings,
    pub webauthn: WebauthnSettings,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl Settings {
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
        let secrets = SecretSettings::read(&env, environment)?;
        let sessions = SessionSettings::read(&env)?;
        let recovery = RecoverySettings::read(&env)?;
        let mail = MailSettings::read(
            &env,
            environment == Environment::Production,
            recovery.enabled.then_some(
                "ACCOUNT_RECOVERY is on (set ACCOUNT_RECOVERY=false to run without account \
                 recovery)",
            ),
        )?;
        let http = HttpSettings::read(&env)?;
        let webauthn = WebauthnSettings::read(
            &env,
            &mail.app_url,
            http.public_origin.as_deref(),
            &http.cors_origins,
        )?;
        Ok(Self {
            environment,
            log_format: env.parse("LOG_FORMAT", LogFormat::Pretty, |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be `pretty` or `json`".into()),
            })?,
            secrets,
            database: DatabaseSettings::read(&env)?,
            http,
            sessions,
            passwords: PasswordSettings::read(&env)?,
            throttle: ThrottleSettings::read(&env)?,
            retention: RetentionSettings::read(&env)?,
            mail,
            recovery,
            mfa: MfaSettings::read(&env)?,
            webauthn,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        assert_eq!(settings.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.passwords.bcrypt_cost, 12);
        assert_eq!(settings.sessions.ttl.std(), Duration::from_secs(86_400));
        assert_eq!(
            settings.sessions.remember_ttl.std(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(settings.http.cookie_secure);
        assert!(settings.secrets.key_generated);
        assert_eq!(
            settings.http.client_ip_header,
            ClientIpHeader::XForwardedFor
        );
        assert_eq!(settings.http.client_timeout.std(), Duration::from_secs(10));
        assert!(!settings.http.clear_site_data);
        assert_eq!(
            settings.retention.audit_retention.std(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            settings.retention.purge_interval.std(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            settings.database.url,
            "postgres://postgres@127.0.0.1:5432/authd"
        );
        assert_eq!(settings.database.direct_url, None);
        assert_eq!(
            settings.database.statement_timeout.std(),
            Duration::from_secs(5)
        );
        assert_eq!(
            settings.http.shutdown_timeout.std(),
            Duration::from_secs(10)
        );
        assert_eq!(settings.http.metrics_bind, None);
        assert_eq!(settings.log_format, LogFormat::Pretty);
        assert_eq!(
            settings.throttle.limit(Bucket::LoginAccount),
            Limit {
                limit: 10,
                window: Period::from_secs(900).unwrap()
            }
        );
        let recovery = &settings.recovery;
        assert!(recovery.enabled);
        assert!(settings.mail.smtp_url.is_none());
        assert_eq!(recovery.reset_ttl.std(), Duration::from_secs(3600));
        assert_eq!(recovery.verify_ttl.std(), Duration::from_secs(48 * 3600));
        assert!(!recovery.require_verified_email);
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
            .http
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        assert_eq!(
            settings.http.cors_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert!(
            Settings::from_vars(&HashMap::new())
                .unwrap()
                .http
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
            ("SECURITY_NOTIFICATIONS", "false"),
        ]))
        .unwrap();
        assert!(!settings.secrets.key_generated);
        assert!(!format!("{settings:?}").contains(&key));
    }

    #[test]
    fn production_recovery_needs_a_mail_server_and_warns_without_sender_or_app() {
        let key = "k".repeat(64);
        let mut given = vec![("AUTHD_ENV", "production"), ("SECRET_KEY", key.as_str())];
        let error = Settings::from_vars(&vars(&given)).unwrap_err();
        assert_eq!(error.variable, "SMTP_URL");
        assert!(error.message.contains("ACCOUNT_RECOVERY=false"));
        // Notices need mail too, and say so once recovery is off.
        given.push(("ACCOUNT_RECOVERY", "false"));
        let error = Settings::from_vars(&vars(&given)).unwrap_err();
        assert_eq!(error.variable, "SMTP_URL");
        assert!(error.message.contains("SECURITY_NOTIFICATIONS=false"));
        given.pop();
        given.push(("SMTP_URL", "smtps://user:secret@mail.example.com"));
        let settings = Settings::from_vars(&vars(&given)).unwrap();
        let unset: Vec<_> = settings
            .mail
            .unset_in_production
            .iter()
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(unset, ["MAIL_FROM", "PUBLIC_APP_URL"]);
        given.push(("MAIL_FROM", "Example <noreply@example.com>"));
        given.push(("PUBLIC_APP_URL", "https://app.example.com/"));
        let settings = Settings::from_vars(&vars(&given)).unwrap();
        let mail = &settings.mail;
        assert!(mail.unset_in_production.is_empty());
        assert_eq!(mail.app_url, "https://app.example.com");
        assert_eq!(mail.smtp_server().unwrap(), "smtps://mail.example.com");
        assert!(!format!("{settings:?}").contains("secret@"));
        assert_eq!(mail.plain_smtp_host(), None);
    }

    #[test]
    fn plain_smtp_is_noticed_only_off_this_machine() {
        let host = |url: &str| {
            Settings::from_vars(&vars(&[("SMTP_URL", url)]))
                .unwrap()
                .mail
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
