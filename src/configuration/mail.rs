//! Mail: the server mails go through, who sends them, and the client
//! application whose pages their links open. Used by account recovery
//! (resets, address confirmation) and whatever else mails people.

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};

use crate::configuration::ConfigError;
use crate::configuration::env::Env;

#[derive(Clone, Debug)]
pub struct MailSettings {
    /// The mail server, in lettre's URL form; in development, when unset,
    /// mails are written to the log instead. It may hold a password.
    pub smtp_url: Option<SecretString>,
    pub from: Mailbox,
    /// The client application links open, without a trailing slash:
    /// `https://app.example.com` or `https://example.com/app`.
    pub app_url: String,
    /// `SECURITY_NOTIFICATIONS`: mail the owner about each change to how
    /// their account is logged in to.
    pub security_notifications: bool,
    /// Settings production should give but did not, with the development
    /// default used instead: start-up warns about each.
    pub unset_in_production: Vec<(&'static str, String)>,
}

impl MailSettings {
    /// In production, when something needs mail (`needed`), the mail
    /// server must be given, or the start fails naming it (and `why` says
    /// what needs it); a sender or client URL left at development's default
    /// is warned about.
    pub(crate) fn read(
        env: &Env<'_>,
        production: bool,
        needed: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let security_notifications = env.boolean("SECURITY_NOTIFICATIONS", true)?;
        let needed = needed.or(security_notifications.then_some(
            "SECURITY_NOTIFICATIONS is on (set SECURITY_NOTIFICATIONS=false to run without \
             mail about account changes)",
        ));
        if let Some(why) = needed
            && production
            && env.get("SMTP_URL").is_none()
        {
            return Err(ConfigError {
                variable: "SMTP_URL",
                message: format!("is required when AUTHD_ENV=production and {why}"),
            });
        }
        let mut mail = Self {
            smtp_url: env.parse("SMTP_URL", None, |v| parse_smtp_url(v).map(Some))?,
            from: env.parse(
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
            app_url: env.parse(
                "PUBLIC_APP_URL",
                "http://localhost:3000".to_owned(),
                parse_app_url,
            )?,
            security_notifications,
            unset_in_production: Vec::new(),
        };
        // Without these, production still starts, on development's defaults,
        // and start-up says so: wrong links are visible at once and fixable.
        if needed.is_some() && production {
            let defaults = [
                ("MAIL_FROM", mail.from.to_string()),
                ("PUBLIC_APP_URL", mail.app_url.clone()),
            ];
            mail.unset_in_production = defaults
                .into_iter()
                .filter(|(variable, _)| env.get(variable).is_none())
                .collect();
        }
        Ok(mail)
    }

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
