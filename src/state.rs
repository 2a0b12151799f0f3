//! What every handler shares.

use crate::auth::cookies::CookiePolicy;
use crate::auth::keys::Keys;
use crate::configuration::Settings;
use crate::db::{self, PgPool};
use crate::passwords::Passwords;
use crate::sessions::Lifetimes;

pub struct AppState {
    pub pool: PgPool,
    pub passwords: Passwords,
    pub keys: Keys,
    pub lifetimes: Lifetimes,
    pub cookies: CookiePolicy,
}

impl AppState {
    /// Derives keys and opens the (lazy) pool; `passwords` is built apart
    /// because making its dummy hash blocks.
    pub fn new(settings: &Settings, passwords: Passwords) -> Self {
        Self {
            pool: db::pool(
                &settings.database_url,
                settings.db_pool_size,
                settings.db_timeout,
            ),
            passwords,
            keys: Keys::derive(&settings.secret_key),
            lifetimes: Lifetimes {
                session: settings.session_ttl,
                remember: settings.remember_ttl,
            },
            cookies: CookiePolicy {
                secure: settings.cookie_secure,
            },
        }
    }
}
