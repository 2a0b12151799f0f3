//! Who is calling: the client's IP address and user agent.
//!
//! The IP comes from the socket unless the direct peer is a trusted proxy
//! (`TRUSTED_PROXIES`); only then is the forwarding header the proxy writes
//! (`CLIENT_IP_HEADER`: `X-Forwarded-For` or `Forwarded`) believed, walked
//! from the nearest hop outwards past every trusted proxy. The other header
//! is ignored: a proxy passes it through from the client untouched. A client
//! that is not behind a trusted proxy cannot spoof its address.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::{FORWARDED, USER_AGENT, X_FORWARDED_FOR};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::configuration::ClientIpHeader;
use crate::domain::Client;
use crate::http::error::ApiError;

/// A long User-Agent is kept, cut to this many characters.
const USER_AGENT_MAX_CHARS: usize = 512;

/// The proxies whose forwarding header is believed (`TRUSTED_PROXIES`), and
/// which header that is; registered as app data for the [`Client`]
/// extractor and the request span.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    pub networks: Vec<IpNet>,
    pub header: ClientIpHeader,
}

impl TrustedProxies {
    /// The calling client as this request shows it.
    pub fn client(&self, request: &HttpRequest) -> Client {
        let headers = request.headers();
        let name = match self.header {
            ClientIpHeader::XForwardedFor => X_FORWARDED_FOR,
            ClientIpHeader::Forwarded => FORWARDED,
        };
        let values: Vec<&str> = headers
            .get_all(name)
            .filter_map(|value| value.to_str().ok())
            .collect();
        Client {
            user_agent: headers
                .get(USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(|agent| agent.chars().take(USER_AGENT_MAX_CHARS).collect()),
            ip: request
                .peer_addr()
                .map(|peer| client_ip(peer.ip(), &values, self.header, &self.networks)),
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

/// The client's address given the socket peer and the values of the one
/// forwarding header believed.
pub fn client_ip(
    peer: IpAddr,
    values: &[&str],
    header: ClientIpHeader,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = values
        .iter()
        .flat_map(|value| value.split(','))
        .map(|hop| match header {
            ClientIpHeader::XForwardedFor => parse_hop(hop.trim()),
            // RFC 7239: `for=` among `;`-separated pairs, maybe quoted.
            ClientIpHeader::Forwarded => hop
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_hop(value.trim().trim_matches('"'))),
        });
    let hops: Vec<Option<IpAddr>> = hops.collect();
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
    use ClientIpHeader::{Forwarded, XForwardedFor};

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    fn nets(values: &[&str]) -> Vec<IpNet> {
        values.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        for header in [XForwardedFor, Forwarded] {
            let got = client_ip(ip("203.0.113.9"), &["for=1.2.3.4", "1.2.3.4"], header, &[]);
            assert_eq!(got, ip("203.0.113.9"));
            let got = client_ip(
                ip("203.0.113.9"),
                &["1.2.3.4"],
                header,
                &nets(&["10.0.0.0/8"]),
            );
            assert_eq!(got, ip("203.0.113.9"));
        }
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_nearest_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client may prepend anything; only what our proxies appended counts.
        let got = client_ip(
            ip("10.0.0.2"),
            &["6.6.6.6, 198.51.100.7, 10.0.0.1"],
            XForwardedFor,
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
        let got = client_ip(
            ip("10.0.0.2"),
            &["6.6.6.6", "198.51.100.7:4711"],
            XForwardedFor,
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_is_understood_when_configured() {
        let trusted = nets(&["10.0.0.0/8"]);
        let forwarded = ["for=6.6.6.6, for=\"[2001:db8::17]:4711\";proto=https;by=10.0.0.1"];
        let got = client_ip(ip("10.0.0.2"), &forwarded, Forwarded, &trusted);
        assert_eq!(got, ip("2001:db8::17"));
        // Read as X-Forwarded-For, a Forwarded value names nobody.
        let got = client_ip(ip("10.0.0.2"), &forwarded, XForwardedFor, &trusted);
        assert_eq!(got, ip("10.0.0.2"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_forwarding_headers_never_panic_nor_fool_an_untrusted_peer(
            value in "\\PC{0,100}",
            forwarded in proptest::bool::ANY,
        ) {
            let header = if forwarded { Forwarded } else { XForwardedFor };
            let peer = ip("203.0.113.9");
            let got = client_ip(peer, &[&value], header, &nets(&["10.0.0.0/8"]));
            proptest::prop_assert_eq!(got, peer);
            let _ = client_ip(ip("10.0.0.2"), &[&value], header, &nets(&["10.0.0.0/8"]));
        }
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["unknown"], XForwardedFor, &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["for=_hidden"], Forwarded, &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &[], Forwarded, &trusted),
            ip("10.0.0.2")
        );
    }
}
