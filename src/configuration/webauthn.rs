//! Passkeys (WebAuthn): the relying party a passkey is bound to, the pages
//! allowed to run its ceremonies, and how long a ceremony may take.

use url::{Host, Url};

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, MINUTE, Period, parse_origins, seconds};

#[derive(Clone, Debug)]
pub struct WebauthnSettings {
    /// `WEBAUTHN_RP_ID`: the domain passkeys are made for. `None` when it
    /// was left to its default and that default cannot be one (an IP
    /// address): passkeys are off, and start-up says why.
    pub rp_id: Option<String>,
    /// `WEBAUTHN_RP_NAME`: what the authenticator shows.
    pub rp_name: String,
    /// `WEBAUTHN_ORIGINS`: the pages allowed to run the ceremonies.
    pub origins: Vec<Url>,
    /// `WEBAUTHN_CHALLENGE_TTL`: how long a started ceremony stays good.
    pub challenge_ttl: Period,
    /// Default origins left out because they are not under the default RP
    /// ID: named at start-up.
    pub left_out: Vec<String>,
}

impl WebauthnSettings {
    /// Reads the settings. The defaults come from the URLs the other groups
    /// already read: the RP ID is the host of `PUBLIC_APP_URL`, and the
    /// origins are those of `PUBLIC_APP_URL`, `PUBLIC_URL` and
    /// `CORS_ORIGINS`.
    pub(crate) fn read(
        env: &Env<'_>,
        app_url: &str,
        public_origin: Option<&str>,
        cors_origins: &[String],
    ) -> Result<Self, ConfigError> {
        let given_rp_id = env.parse("WEBAUTHN_RP_ID", None, |v| parse_rp_id(v).map(Some))?;
        let given_origins = env.parse("WEBAUTHN_ORIGINS", None, |v| {
            let origins = parse_origins(v)?;
            if origins.is_empty() {
                return Err("must name at least one origin".into());
            }
            Ok(Some(origins))
        })?;
        let explicit = given_rp_id.is_some() || given_origins.is_some();
        let rp_id = given_rp_id.or_else(|| {
            Url::parse(app_url)
                .ok()
                .and_then(|url| url.domain().map(str::to_ascii_lowercase))
        });
        let origins = given_origins.unwrap_or_else(|| {
            let mut origins = Vec::new();
            let app_origin = Url::parse(app_url)
                .ok()
                .map(|url| url.origin().ascii_serialization());
            for origin in app_origin
                .into_iter()
                .chain(public_origin.map(str::to_owned))
                .chain(cors_origins.iter().cloned())
            {
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
            origins
        });
        let mut settings = Self {
            rp_id,
            rp_name: env.parse("WEBAUTHN_RP_NAME", "authd".to_owned(), parse_rp_name)?,
            origins: Vec::new(),
            challenge_ttl: env.period("WEBAUTHN_CHALLENGE_TTL", seconds(5 * MINUTE))?,
            left_out: Vec::new(),
        };
        let Some(rp_id) = settings.rp_id.clone() else {
            return Ok(settings);
        };
        for origin in origins {
            let url = Url::parse(&origin).map_err(|_| ConfigError {
                variable: "WEBAUTHN_ORIGINS",
                message: format!("`{origin}` is not an origin"),
            })?;
            if under(&url, &rp_id) {
                settings.origins.push(url);
            } else if explicit {
                return Err(ConfigError {
                    variable: "WEBAUTHN_RP_ID",
                    message: format!(
                        "`{rp_id}` is not a registrable suffix of the host of `{origin}`, one of \
                         the origins allowed to run passkey ceremonies (WEBAUTHN_ORIGINS, by \
                         default those of PUBLIC_APP_URL, PUBLIC_URL and CORS_ORIGINS): set \
                         WEBAUTHN_RP_ID to a domain every origin is under, or WEBAUTHN_ORIGINS \
                         to the pages that use passkeys"
                    ),
                });
            } else {
                settings.left_out.push(origin);
            }
        }
        if settings.origins.is_empty() {
            settings.rp_id = None;
        }
        Ok(settings)
    }

    /// The relying party, for the ceremonies; `None` when passkeys are off.
    pub fn relying_party(&self) -> Option<webauthn_rs::Webauthn> {
        let rp_id = self.rp_id.as_deref()?;
        let (first, rest) = self.origins.split_first()?;
        let mut builder = webauthn_rs::WebauthnBuilder::new(rp_id, first)
            .ok()?
            .rp_name(&self.rp_name)
            .timeout(self.challenge_ttl.std());
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        builder.build().ok()
    }
}

/// Whether the origin's host is the RP ID or under it: what WebAuthn asks
/// of every page that runs a ceremony for it.
fn under(origin: &Url, rp_id: &str) -> bool {
    match origin.domain() {
        Some(host) => {
            let host = host.to_ascii_lowercase();
            host == rp_id || host.ends_with(&format!(".{rp_id}"))
        }
        None => false,
    }
}

/// A domain name, not an IP address, a URL or a top-level domain alone
/// (WebAuthn refuses all three).
fn parse_rp_id(value: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{value}` is not a domain such as `example.com` or `localhost` (no scheme, no \
             port, no IP address)"
        )
    };
    let lowered = value.to_ascii_lowercase();
    match Host::parse(&lowered) {
        Ok(Host::Domain(domain))
            if domain == lowered
                && (domain == "localhost" || domain.contains('.'))
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains(':')
                && !domain.contains('/') =>
        {
            Ok(domain)
        }
        _ => Err(bad()),
    }
}

/// What an authenticator shows beside the account.
fn parse_rp_name(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
        Err("must be a short name such as `authd` or `Example Inc`".into())
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)], cors: &[&str]) -> Result<WebauthnSettings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cors: Vec<String> = cors.iter().map(|o| (*o).to_owned()).collect();
        WebauthnSettings::read(&Env(&vars), "https://app.example.com", None, &cors)
    }

    #[test]
    fn defaults_follow_the_app_and_leave_out_foreign_origins() {
        let settings = read(&[], &["https://admin.example.com", "http://127.0.0.1:5173"]).unwrap();
        assert_eq!(settings.rp_id.as_deref(), Some("app.example.com"));
        let origins: Vec<_> = settings.origins.iter().map(Url::as_str).collect();
        assert_eq!(origins, ["https://app.example.com/"]);
        assert_eq!(
            settings.left_out,
            ["https://admin.example.com", "http://127.0.0.1:5173"]
        );
        assert_eq!(settings.challenge_ttl.seconds(), 300);
        assert!(settings.relying_party().is_some());
    }

    #[test]
    fn a_given_rp_id_must_cover_every_origin() {
        let settings = read(
            &[("WEBAUTHN_RP_ID", "example.com")],
            &["https://admin.example.com"],
        )
        .unwrap();
        assert_eq!(settings.origins.len(), 2);
        let error = read(
            &[("WEBAUTHN_RP_ID", "example.com")],
            &["https://example.org"],
        )
        .unwrap_err();
        assert_eq!(error.variable, "WEBAUTHN_RP_ID");
        assert!(error.message.contains("https://example.org"));
        let error = read(&[("WEBAUTHN_ORIGINS", "https://evil.example.net")], &[]).unwrap_err();
        assert_eq!(error.variable, "WEBAUTHN_RP_ID");
        // A suffix of the text is not a parent domain.
        let error = read(
            &[
                ("WEBAUTHN_RP_ID", "ample.com"),
                ("WEBAUTHN_ORIGINS", "https://example.com"),
            ],
            &[],
        )
        .unwrap_err();
        assert_eq!(error.variable, "WEBAUTHN_RP_ID");
    }

    #[test]
    fn an_rp_id_is_a_domain() {
        for bad in [
            "https://example.com",
            "example.com:443",
            "127.0.0.1",
            "com",
            "[::1]",
            ".example.com",
        ] {
            let error = read(&[("WEBAUTHN_RP_ID", bad)], &[]).unwrap_err();
            assert_eq!(error.variable, "WEBAUTHN_RP_ID", "{bad}");
        }
    }

    #[test]
    fn an_ip_address_app_url_turns_passkeys_off() {
        let vars = HashMap::new();
        let settings =
            WebauthnSettings::read(&Env(&vars), "http://127.0.0.1:3000", None, &[]).unwrap();
        assert_eq!(settings.rp_id, None);
        assert!(settings.relying_party().is_none());
    }
}
