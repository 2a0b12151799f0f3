//! The services: what authd does, free of HTTP. Each takes the storage and
//! helpers it needs when it is built, and is called by the handlers and the
//! command line alike.

pub mod accounts;
pub mod audit;
pub mod credentials;
pub mod factors;
pub mod hash_pool;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod notices;
pub mod passkeys;
pub mod passwords;
pub mod recovery;
pub mod retention;
pub mod sessions;
pub mod throttle;

use std::sync::Arc;

use crate::clock::Clock;
use crate::configuration::ThrottleSettings;
use crate::db::PgPool;
use crate::services::factors::Factors;
use crate::services::mail::MailKind;
use crate::services::notices::{Notice, Notices};
use crate::services::passwords::PasswordHasher;
use crate::services::sessions::Sessions;
use crate::services::throttle::Throttle;
use crate::services::throttle::in_flight::InFlight;

/// What the services that act on accounts share: the database, password
/// hashing, the throttle and its limits, the sessions, the second factor's
/// checks, security notices, and the time.
#[derive(Clone)]
pub struct Core {
    pub pool: PgPool,
    pub hasher: PasswordHasher,
    pub throttle: Throttle,
    pub sessions: Sessions,
    pub limits: ThrottleSettings,
    /// The cap on each client's password checks in flight.
    pub in_flight: Arc<InFlight>,
    pub factors: Factors,
    /// Mail to an account's owner about each change to how they log in.
    pub notices: Notices,
    pub clock: Clock,
}

/// Every kind of mail authd sends: recovery's two, then one per security
/// notice. The mail worker is given a composer for each (start-up checks
/// it, in debug builds), and `/metrics` counts each from zero.
pub fn mail_kinds() -> Vec<MailKind> {
    recovery::MAIL_KINDS
        .into_iter()
        .chain(Notice::ALL.map(Notice::kind))
        .collect()
}
