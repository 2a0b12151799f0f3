//! The HTTP side: where authd listens, whom it believes about client
//! addresses, which origins it trusts, and how it treats slow clients.

use std::net::SocketAddr;

use ipnet::IpNet;

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, Period, parse_networks, parse_origins, seconds};

/// The one forwarding header believed from a trusted proxy: the one it
/// writes. The other is ignored, since a proxy passes it through untouched
/// from whoever sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientIpHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    /// Where `/metrics` is served; nowhere when unset.
    pub metrics_bind: Option<SocketAddr>,
    pub cookie_secure: bool,
    /// Send `Clear-Site-Data: "cookies"` on logout (clears every cookie of
    /// the site, other apps' on the same domain included).
    pub clear_site_data: bool,
    /// Peers whose forwarding header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Which forwarding header that is.
    pub client_ip_header: ClientIpHeader,
    /// Origins (`https://app.example.com`) allowed credentialed CORS.
    pub cors_origins: Vec<String>,
    /// The origin clients reach the API at, when it differs from what the
    /// Host header says (a proxy that rewrites it).
    pub public_origin: Option<String>,
    /// How long a client may take to send a request's head and body.
    pub client_timeout: Period,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Period,
}

impl HttpSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: env.parse("BIND", SocketAddr::from(([127, 0, 0, 1], 8080)), |v| {
                v.parse()
                    .map_err(|_| "must be an address and port such as 127.0.0.1:8080".into())
            })?,
            metrics_bind: env.parse("METRICS_BIND", None, |v| {
                v.parse()
                    .map(Some)
                    .map_err(|_| "must be an address and port such as 127.0.0.1:9090".into())
            })?,
            cookie_secure: env.boolean("COOKIE_SECURE", true)?,
            clear_site_data: env.boolean("CLEAR_SITE_DATA", false)?,
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
            cors_origins: env.parse("CORS_ORIGINS", Vec::new(), parse_origins)?,
            public_origin: env.parse("PUBLIC_URL", None, |v| {
                match parse_origins(v)?.as_slice() {
                    [origin] => Ok(Some(origin.clone())),
                    _ => Err("must be one origin such as https://auth.example.com".into()),
                }
            })?,
            client_timeout: env.period("CLIENT_TIMEOUT", seconds(10))?,
            shutdown_timeout: env.period("SHUTDOWN_TIMEOUT", seconds(10))?,
        })
    }
}
