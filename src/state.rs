//! What every handler shares.

use ipnet::IpNet;

use crate::auth::cookies::CookiePolicy;
use crate::auth::keys::Keys;
use crate::configuration::Settings;
use crate::db::PgPool;
use crate::passwords::Passwords;
use crate::sessions::Lifetimes;
use crate::throttle::Throttle;

pub struct AppState {
    pub pool: PgPool,
    pub passwords: Passwords,
    pub keys: Keys,
    pub lifetimes: Lifetimes,
    pub cookies: CookiePolicy,
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed credentialed CORS, and so cookie-authenticated writes.
    pub cors_origins: Vec<String>,
    pub public_origin: Option<String>,
    pub throttle: Throttle,
}

impl AppState {
    /// Copies what handlers need from the settings; the parts that take I/O,
    /// blocking work or key derivation to make are made by the caller.
    pub fn new(
        settings: &Settings,
        keys: Keys,
        pool: PgPool,
        passwords: Passwords,
        throttle: Throttle,
    ) -> Self {
        Self {
            pool,
            passwords,
            keys,
            lifetimes: Lifetimes {
                session: settings.session_ttl,
                remember: settings.remember_ttl,
                idle: settings.session_idle_ttl,
                touch_every: Lifetimes::TOUCH_EVERY,
            },
            cookies: CookiePolicy {
                secure: settings.cookie_secure,
            },
            trusted_proxies: settings.trusted_proxies.clone(),
            cors_origins: settings.cors_origins.clone(),
            public_origin: settings.public_origin.clone(),
            throttle,
        }
    }
}
