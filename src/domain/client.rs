//! Who is calling, as far as the audit trail and the throttle care.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The client's address (already resolved through trusted proxies) and
/// user agent (already cut to a sane length).
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Client {
    /// The network the client is in, as far as telling one client's
    /// requests from another's goes: its IPv4 /24 (an IPv4-mapped IPv6
    /// address counts as IPv4) or its IPv6 /64, the block one subscriber
    /// usually holds. `None` without an address (the command line).
    pub fn network(&self) -> Option<String> {
        let net: IpNet = match self.ip? {
            IpAddr::V4(v4) => Ipv4Net::new(v4, 24).ok()?.trunc().into(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Ipv4Net::new(v4, 24).ok()?.trunc().into(),
                None => Ipv6Net::new(v6, 64).ok()?.trunc().into(),
            },
        };
        Some(net.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_grouped_by_ipv4_24_or_ipv6_64() {
        let network = |ip: &str| {
            Client {
                ip: Some(ip.parse().unwrap()),
                user_agent: None,
            }
            .network()
            .unwrap()
        };
        assert_eq!(network("192.0.2.7"), "192.0.2.0/24");
        assert_eq!(network("::ffff:192.0.2.7"), "192.0.2.0/24");
        assert_eq!(network("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(Client::default().network(), None);
    }
}
