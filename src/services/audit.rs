//! The audit trail: every registration, login, failure, throttled attempt,
//! logout, ended session, account change, recovery step and second-factor
//! change goes to the `auth_events`
//! table and to the structured log.
//! It records who and from where, never a secret. An event that records a
//! change is stored in the change's own transaction, so neither can exist
//! without the other.

use diesel::{Connection, PgConnection, QueryResult};
use ipnet::IpNet;

use crate::db::auth_events::{self, NewAuthEvent};
use crate::db::{self, PgPool};
use crate::domain::{Client, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Register,
    RegisterThrottled,
    LoginSuccess,
    LoginFailure,
    LoginThrottled,
    Logout,
    SessionRevoked,
    PasswordChanged,
    AccountUpdated,
    AccountDeleted,
    AccountDeactivated,
    AccountActivated,
    PasswordResetRequested,
    PasswordReset,
    ResetLinkIssued,
    EmailVerified,
    RecoveryThrottled,
    MfaEnabled,
    MfaDisabled,
    MfaSuccess,
    MfaFailure,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    MfaReset,
    PasskeyAdded,
    PasskeyRemoved,
    PasskeyFailure,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::RegisterThrottled => "register_throttled",
            Self::LoginSuccess => "login_success",
            Self::LoginFailure => "login_failure",
            Self::LoginThrottled => "login_throttled",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::AccountUpdated => "account_updated",
            Self::AccountDeleted => "account_deleted",
            Self::AccountDeactivated => "account_deactivated",
            Self::AccountActivated => "account_activated",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::ResetLinkIssued => "reset_link_issued",
            Self::EmailVerified => "email_verified",
            Self::RecoveryThrottled => "recovery_throttled",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaSuccess => "mfa_success",
            Self::MfaFailure => "mfa_failure",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::MfaReset => "mfa_reset",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyFailure => "passkey_failure",
        }
    }
}

/// The identifier as typed is evidence, but bounded.
const IDENTIFIER_MAX_CHARS: usize = 254;

/// One event, ready to be stored and logged.
#[derive(Clone, Debug)]
pub struct Record {
    event: Event,
    user_id: Option<UserId>,
    identifier: Option<String>,
    ip: Option<IpNet>,
    user_agent: Option<String>,
    /// Why, for a failure whose kind alone does not say (a passkey's).
    reason: Option<&'static str>,
}

impl Record {
    pub fn new(
        event: Event,
        user_id: Option<UserId>,
        identifier: Option<&str>,
        client: &Client,
    ) -> Self {
        Self {
            event,
            user_id,
            identifier: identifier.map(|value| {
                value
                    .chars()
                    .filter(|c| *c != '\0')
                    .take(IDENTIFIER_MAX_CHARS)
                    .collect()
            }),
            ip: client.ip.map(Into::into),
            user_agent: client.user_agent.clone(),
            reason: None,
        }
    }

    /// The same event, with why it happened.
    pub fn because(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The same event about `user_id`, once the change has made it.
    pub fn about(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Stores the event, inside the caller's transaction.
    pub fn store(&self, conn: &mut PgConnection) -> QueryResult<()> {
        auth_events::insert(
            conn,
            &NewAuthEvent {
                event: self.event.as_str(),
                user_id: self.user_id,
                identifier: self.identifier.as_deref(),
                ip: self.ip,
                user_agent: self.user_agent.as_deref(),
                reason: self.reason,
            },
        )
    }

    /// Runs `change` and, if `happened` says it changed anything, stores
    /// the event in the same transaction: an event for a change that did not
    /// happen is never recorded, and a change is never made without its
    /// event. The event comes back to be logged once the caller has it.
    pub fn with<T>(
        self,
        conn: &mut PgConnection,
        change: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
        happened: impl FnOnce(&T) -> bool,
    ) -> QueryResult<(T, Option<Self>)> {
        conn.transaction(|conn| {
            let done = change(conn)?;
            if !happened(&done) {
                return Ok((done, None));
            }
            self.store(conn)?;
            Ok((done, Some(self)))
        })
    }

    /// The log line, once the transaction that stored the event committed.
    pub fn log(&self) {
        tracing::info!(
            target: "authd::audit",
            event = self.event.as_str(),
            user_id = self.user_id.map(UserId::get),
            identifier = self.identifier.as_deref(),
            ip = self.ip.map(|ip| ip.addr().to_string()),
            user_agent = self.user_agent.as_deref(),
            reason = self.reason,
            "auth event"
        );
    }
}

/// Records an event that comes with no change of its own (a failure, a
/// refusal). A failure to store it is logged, not returned: the request it
/// describes has already happened.
#[tracing::instrument(skip_all, fields(event = record.event.as_str()))]
pub async fn record(pool: &PgPool, record: Record) {
    record.log();
    let event = record.event;
    let stored = db::run(pool, move |conn| record.store(conn)).await;
    if let Err(error) = stored {
        tracing::error!(event = event.as_str(), %error, "could not store an audit event");
    }
}
