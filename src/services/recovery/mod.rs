//! Account recovery by e-mail, two users of [`mail`](crate::services::mail):
//! password resets for whoever reads an account's address ([`reset`]), and
//! proof that an address is its owner's ([`verification`]). As careful as
//! login: asking for a reset says nothing about whether an account exists,
//! links carry single-use tokens, and every mail is throttled.

pub mod reset;
pub mod tokens;
pub mod verification;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::{PgConnection, QueryResult};

use crate::configuration::{Bucket, RecoverySettings};
use crate::db::DbError;
use crate::db::email_tokens::{self, EmailToken, Purpose};
use crate::db::users::{self, User};
use crate::domain::Client;
use crate::services::Core;
use crate::services::credentials::account_subject;
use crate::services::mail::{Composer, Links, MailKind, Outbox};
use crate::services::passwords::HashError;
use crate::services::throttle::{Blocked, Counter, ThrottleError, client_key};

/// The mails recovery sends, named after the purpose of the link each
/// carries.
pub const RESET_MAIL: MailKind = MailKind(Purpose::Reset.as_str());
pub const VERIFY_MAIL: MailKind = MailKind(Purpose::Verify.as_str());
/// Both, as [`Recovery::composers`] makes them.
pub const MAIL_KINDS: [MailKind; 2] = [RESET_MAIL, VERIFY_MAIL];

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("account recovery is turned off")]
    Disabled,
    /// Unknown, used, expired, superseded or of the other purpose: the
    /// client is told no more than that.
    #[error("the link is not valid")]
    InvalidToken,
    #[error("too many recovery mails asked for")]
    Throttled(Blocked),
    #[error("the address is verified already")]
    AlreadyVerified,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Throttle(#[from] ThrottleError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

#[derive(Clone)]
pub struct Recovery {
    core: Core,
    outbox: Outbox,
    links: Links,
    settings: Arc<RecoverySettings>,
}

impl Recovery {
    pub fn new(core: Core, outbox: Outbox, links: Links, settings: &RecoverySettings) -> Self {
        Self {
            core,
            outbox,
            links,
            settings: Arc::new(settings.clone()),
        }
    }

    /// Refused when recovery is turned off (`ACCOUNT_RECOVERY=false`).
    pub fn available(&self) -> Result<(), RecoveryError> {
        if self.settings.enabled {
            Ok(())
        } else {
            Err(RecoveryError::Disabled)
        }
    }

    /// What the mail worker needs to make recovery's mails.
    pub fn composers(&self) -> Vec<(MailKind, Arc<dyn Composer>)> {
        vec![
            (RESET_MAIL, Arc::new(self.reset_mail()) as Arc<dyn Composer>),
            (VERIFY_MAIL, Arc::new(self.verify_mail())),
        ]
    }

    /// What a reset asked for by address counts against: mails per
    /// (address, client network), per address from everyone (a larger cap,
    /// so that others' requests alone cannot use up the owner's), and per
    /// client. The address is typed, not looked up: a limit says nothing
    /// about whether it has an account.
    fn reset_counters(&self, address: &str, client: &Client) -> [Counter; 3] {
        let (limits, address) = (&self.core.limits, self.core.throttle.text_key(address));
        let network = client.network().unwrap_or_else(|| "unknown".into());
        [
            Counter::new(
                Bucket::RecoveryAddress,
                format!("{address}|{network}"),
                limits,
            ),
            Counter::new(Bucket::RecoveryAddressTotal, address, limits),
            Counter::new(Bucket::RecoveryIp, client_key(client.ip), limits),
        ]
    }

    /// What a mail asked for by a logged-in owner counts against: mails per
    /// account, which nobody else's requests touch, and per client.
    fn owner_counters(&self, user: &User, client: &Client) -> [Counter; 2] {
        let limits = &self.core.limits;
        [
            Counter::new(Bucket::RecoveryAddress, account_subject(user), limits),
            Counter::new(Bucket::RecoveryIp, client_key(client.ip), limits),
        ]
    }
}

/// Uses a live token up, its owner's row locked first: the order every
/// account change takes (the user, then its tokens, by trigger or by
/// `set_password_hash`), so a reset racing an address change waits rather
/// than deadlocks. `None` when the token is not live, or was taken by a
/// request racing this one.
fn consume(
    conn: &mut PgConnection,
    digest: &[u8],
    purpose: Purpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<(EmailToken, User)>> {
    let Some(token) = email_tokens::find_live(conn, digest, purpose, now)? else {
        return Ok(None);
    };
    let Some(owner) = users::find_locked(conn, token.user_id)? else {
        return Ok(None);
    };
    Ok(email_tokens::consume(conn, digest, purpose, now)?.map(|token| (token, owner)))
}
