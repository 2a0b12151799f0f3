//! What every handler shares.

use crate::auth::cookies::CookiePolicy;
use crate::auth::keys::Keys;
use crate::db::PgPool;
use crate::passwords::Passwords;
use crate::sessions::Lifetimes;

pub struct AppState {
    pub pool: PgPool,
    pub passwords: Passwords,
    pub keys: Keys,
    pub lifetimes: Lifetimes,
    pub cookies: CookiePolicy,
}
