//! Who is calling: the client's IP address and user agent.
//!
//! The IP comes from the socket unless the direct peer is a trusted proxy
//! (`TRUSTED_PROXIES`); only then are `Forwarded` / `X-Forwarded-For`
//! believed, walked from the nearest hop outwards past every trusted proxy.
//! A client that is not behind a trusted proxy cannot spoof its address.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{FORWARDED, USER_AGENT, X_FORWARDED_FOR};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::domain::Client;
use crate::http::error::ApiError;

/// A long User-Agent is kept, cut to this many characters.
const USER_AGENT_MAX_CHARS: usize = 512;

/// The proxies whose forwarding headers are believed (`TRUSTED_PROXIES`),
/// registered as app data for the [`Client`] extractor.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// The calling client as this request shows it.
    pub fn client(&self, request: &HttpRequest) -> Client {
        let headers = request.headers();
        let values = |name| -> Vec<&str> {
            headers
                .get_all(name)
                .filter_map(|value| value.to_str().ok())
                .collect()
        };
        let (forwarded, forwarded_for) = (values(FORWARDED), values(X_FORWARDED_FOR));
        Client {
            user_agent: headers
                .get(USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(|agent| agent.chars().take(USER_AGENT_MAX_CHARS).collect()),
            ip: request
                .peer_addr()
                .map(|peer| client_ip(peer.ip(), &forwarded, &forwarded_for, &self.0)),
        }
    }
}

/// Handlers take the client as an argument, read through the trusted proxies.
impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            request
                .app_data::<web::Data<TrustedProxies>>()
                .map(|proxies| proxies.client(request))
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("TrustedProxies is not registered"))
                }),
        )
    }
}

/// The client's address given the socket peer and the forwarding headers.
pub fn client_ip(
    peer: IpAddr,
    forwarded: &[&str],
    forwarded_for: &[&str],
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // RFC 7239 wins over the older de facto header when a proxy sends both.
    let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_hop(value.trim().trim_matches('"')))
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            // A hop we cannot read ends the walk: trust goes no further.
            None => break,
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
        }
    }
    client
}

/// `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1` or `[2001:db8::1]:8080`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    fn nets(values: &[&str]) -> Vec<IpNet> {
        values.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let got = client_ip(ip("203.0.113.9"), &["for=1.2.3.4"], &["1.2.3.4"], &[]);
        assert_eq!(got, ip("203.0.113.9"));
        let got = client_ip(ip("203.0.113.9"), &[], &["1.2.3.4"], &nets(&["10.0.0.0/8"]));
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_nearest_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client may prepend anything; only what our proxies appended counts.
        let got = client_ip(
            ip("10.0.0.2"),
            &[],
            &["6.6.6.6, 198.51.100.7, 10.0.0.1"],
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
        let got = client_ip(
            ip("10.0.0.2"),
            &[],
            &["6.6.6.6", "198.51.100.7:4711"],
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_is_understood_and_preferred() {
        let trusted = nets(&["10.0.0.0/8"]);
        let forwarded = ["for=6.6.6.6, for=\"[2001:db8::17]:4711\";proto=https;by=10.0.0.1"];
        let got = client_ip(ip("10.0.0.2"), &forwarded, &["198.51.100.7"], &trusted);
        assert_eq!(got, ip("2001:db8::17"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_forwarding_headers_never_panic_nor_fool_an_untrusted_peer(
            forwarded in "\\PC{0,100}",
            forwarded_for in "\\PC{0,100}",
        ) {
            let peer = ip("203.0.113.9");
            let got = client_ip(peer, &[&forwarded], &[&forwarded_for], &nets(&["10.0.0.0/8"]));
            proptest::prop_assert_eq!(got, peer);
            let _ = client_ip(ip("10.0.0.2"), &[&forwarded], &[&forwarded_for], &nets(&["10.0.0.0/8"]));
        }
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[], &["unknown"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["for=_hidden"], &[], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[], &[], &trusted),
            ip("10.0.0.2")
        );
    }
}
