//! Security notices (ASVS 6.3.6): a mail to an account's owner after each
//! change to how the account is logged in to, the third user of
//! [`mail`](crate::services::mail). Queued in the change's own transaction,
//! so a change never goes untold and a change that rolled back is never
//! told. A notice says what happened and when, and what to do if it was not
//! the owner; it never carries a secret or a link that does anything.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{PgConnection, QueryResult};

use crate::clock::Clock;
use crate::db::mail_outbox::{self, QueuedMail};
use crate::db::users;
use crate::domain::UserId;
use crate::services::mail::{Composer, Links, Mail, MailKind};

/// How long a notice may wait for the mail server: news older than that
/// helps nobody.
const NOTICE_TTL: TimeDelta = TimeDelta::days(3);

/// A change the owner is told of; each is a mail kind of its own, named
/// like the audit event it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    PasswordChanged,
    PasswordReset,
    /// To the address the account had before.
    EmailChanged,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    /// An operator removed the account's second factor.
    MfaReset,
    PasskeyAdded,
    PasskeyRemoved,
}

impl Notice {
    /// Every notice, each a kind of mail ([`Notice::kind`]).
    pub const ALL: [Self; 10] = [
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::EmailChanged,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
        Self::MfaReset,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
    ];

    pub const fn kind(self) -> MailKind {
        MailKind(match self {
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::EmailChanged => "email_changed",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::MfaReset => "mfa_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
        })
    }

    fn subject(self) -> &'static str {
        match self {
            Self::PasswordChanged => "Your password was changed",
            Self::PasswordReset => "Your password was reset",
            Self::EmailChanged => "Your account's address was changed",
            Self::MfaEnabled => "Two-step login was turned on",
            Self::MfaDisabled => "Two-step login was turned off",
            Self::RecoveryCodesRegenerated => "New recovery codes were made",
            Self::RecoveryCodeUsed => "A recovery code was used",
            Self::MfaReset => "Your second factor was removed by an administrator",
            Self::PasskeyAdded => "A passkey was added to your account",
            Self::PasskeyRemoved => "A passkey was removed from your account",
        }
    }

    /// What happened, as one sentence that a time follows.
    fn what(self) -> &'static str {
        match self {
            Self::PasswordChanged => "The password of your account was changed",
            Self::PasswordReset => {
                "The password of your account was reset with a link \
                                    mailed to its address, and every device was logged out"
            }
            Self::EmailChanged => {
                "The address of your account was changed from this one \
                                   to another; mail about the account now goes there"
            }
            Self::MfaEnabled => {
                "An authenticator app was set up as a second factor for \
                                 your account, with a new set of recovery codes"
            }
            Self::MfaDisabled => {
                "The second factor of your account (the authenticator app \
                                  and its recovery codes) was turned off"
            }
            Self::RecoveryCodesRegenerated => {
                "A new set of recovery codes was made for your \
                                               account; the old ones no longer work"
            }
            Self::RecoveryCodeUsed => {
                "One of your account's recovery codes was used, and \
                                       cannot be used again (make a new set before they run out)"
            }
            Self::MfaReset => {
                "An administrator removed the second factor of your account \
                               (authenticator app, recovery codes and passkeys), and every \
                               device was logged out"
            }
            Self::PasskeyAdded => {
                "A passkey was added to your account: it logs in without \
                                   the password, and stands for the second factor"
            }
            Self::PasskeyRemoved => {
                "A passkey was removed from your account, and no longer \
                                     logs in"
            }
        }
    }
}

/// Queuing notices, for the services that change accounts.
#[derive(Clone, Debug)]
pub struct Notices {
    /// `SECURITY_NOTIFICATIONS`.
    enabled: bool,
    clock: Clock,
}

impl Notices {
    pub fn new(enabled: bool, clock: Clock) -> Self {
        Self { enabled, clock }
    }

    /// Queues `notice` to the account's address, in the caller's
    /// transaction (nothing when notices are off).
    pub fn queue(
        &self,
        conn: &mut PgConnection,
        notice: Notice,
        user_id: UserId,
    ) -> QueryResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let expires_at = self.clock.now() + NOTICE_TTL;
        mail_outbox::enqueue_to_account(conn, notice.kind().0, user_id, expires_at)
    }

    /// Queues `notice` to `address`, one the account had: an address
    /// change is told to the address it left.
    pub fn queue_to(
        &self,
        conn: &mut PgConnection,
        notice: Notice,
        user_id: UserId,
        address: &str,
    ) -> QueryResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let expires_at = self.clock.now() + NOTICE_TTL;
        mail_outbox::enqueue(
            conn,
            notice.kind().0,
            Some(user_id),
            address,
            None,
            expires_at,
        )
    }

    /// What the mail worker needs to make notices: every kind, even with
    /// notices off, so that those queued before still go.
    pub fn composers(links: &Links) -> Vec<(MailKind, Arc<dyn Composer>)> {
        Notice::ALL
            .into_iter()
            .map(|notice| {
                let composer = NoticeMail {
                    notice,
                    app_url: links.home().to_owned(),
                };
                (notice.kind(), Arc::new(composer) as Arc<dyn Composer>)
            })
            .collect()
    }
}

/// Makes a queued notice: to the address it was queued for, if the account
/// still exists.
struct NoticeMail {
    notice: Notice,
    app_url: String,
}

impl Composer for NoticeMail {
    fn compose(
        &self,
        conn: &mut PgConnection,
        queued: &QueuedMail,
        _now: DateTime<Utc>,
    ) -> QueryResult<Option<Mail>> {
        let Some(user_id) = queued.user_id else {
            return Ok(None);
        };
        let Some(user) = users::find(conn, user_id)? else {
            return Ok(None);
        };
        Ok(Some(Mail {
            to: queued.address.clone(),
            subject: self.notice.subject().into(),
            body: self.body(&user, queued.created_at),
        }))
    }
}

impl NoticeMail {
    fn body(&self, user: &users::User, at: DateTime<Utc>) -> String {
        let when = at.format("%Y-%m-%d at %H:%M UTC");
        let advice = match self.notice {
            // A lost factor is a reason to reset it: the owner knows.
            Notice::MfaReset => "If you did not ask for this, someone may have talked an \
                                 administrator into it: reset your password at once and \
                                 tell the administrators."
                .to_owned(),
            _ => format!(
                "If this was not you, someone else may be able to log in as you: reset \
                 your password at once (\"Forgot your password?\" at {}), which logs every \
                 device out, and tell the administrators.",
                self.app_url
            ),
        };
        format!(
            "Hello {},\n\n{} on {when}.\n\nIf this was you, there is nothing more to do.\n\n\
             {advice}\n",
            user.username,
            self.notice.what(),
        )
    }
}
