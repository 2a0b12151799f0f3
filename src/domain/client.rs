//! Who is calling, as far as the audit trail and the throttle care.

use std::net::IpAddr;

/// The client's address (already resolved through trusted proxies) and
/// user agent (already cut to a sane length).
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}
