//! The audit trail: every registration, login, failure, throttled attempt,
//! and logout (which revokes its session) goes to the `auth_events` table
//! and to the structured log. It records who and from where, never a secret.

use crate::db::auth_events::{self, NewAuthEvent};
use crate::db::{self, PgPool};
use crate::domain::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Register,
    RegisterThrottled,
    LoginSuccess,
    LoginFailure,
    LoginThrottled,
    Logout,
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
        }
    }
}

/// The identifier as typed is evidence, but bounded.
const IDENTIFIER_MAX_CHARS: usize = 254;

/// Records the event. A failure to store it is logged, not returned: the
/// request it describes has already happened.
#[tracing::instrument(skip(pool, identifier, client))]
pub async fn record(
    pool: &PgPool,
    event: Event,
    user_id: Option<i64>,
    identifier: Option<&str>,
    client: &Client,
) {
    let identifier: Option<String> = identifier.map(|value| {
        value
            .chars()
            .filter(|c| *c != '\0')
            .take(IDENTIFIER_MAX_CHARS)
            .collect()
    });
    tracing::info!(
        target: "authd::audit",
        event = event.as_str(),
        user_id,
        identifier = identifier.as_deref(),
        ip = client.ip.map(|ip| ip.to_string()),
        user_agent = client.user_agent.as_deref(),
        "auth event"
    );
    let client = client.clone();
    let stored = db::run(pool, move |conn| {
        auth_events::insert(
            conn,
            &NewAuthEvent {
                event: event.as_str(),
                user_id,
                identifier: identifier.as_deref(),
                ip: client.ip.map(Into::into),
                user_agent: client.user_agent.as_deref(),
            },
        )
    })
    .await;
    if let Err(error) = stored {
        tracing::error!(event = event.as_str(), %error, "could not store an audit event");
    }
}
