//! `authd session …`: a user's login sessions, and the purge.

use clap::Subcommand;

use crate::cli::user::{find, print_table};
use crate::cli::{Failure, Outcome, operator};
use crate::domain::SessionId;
use crate::startup::Services;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List a user's live sessions, newest first
    List { username: String },
    /// End one of a user's sessions (by the id `session list` shows), or all
    #[command(
        group(clap::ArgGroup::new("which").required(true).args(["all", "session_id"])),
        override_usage = "authd session revoke <USERNAME> <SESSION_ID>\n       \
                          authd session revoke --all <USERNAME>",
        after_help = "Options come first, then `--` when a username begins with `-`: \
                      authd session revoke --all -- -olduser"
    )]
    Revoke {
        /// The account, as `user list` shows it
        username: String,
        /// The session's id, as `session list` shows it
        session_id: Option<String>,
        /// End every session of the user
        #[arg(long)]
        all: bool,
    },
    /// Delete sessions that ended, and audit events, older than
    /// AUDIT_RETENTION, and throttle counts no window can see
    Purge,
}

impl SessionCommand {
    pub async fn run(self, services: &Services) -> Outcome {
        match self {
            Self::List { username } => {
                let user = find(services, username).await?;
                let sessions = services.sessions.list(user.id).await?;
                print_table(
                    &[
                        "ID",
                        "CREATED",
                        "LAST SEEN",
                        "EXPIRES",
                        "REMEMBER",
                        "IP",
                        "USER AGENT",
                    ],
                    sessions.iter().map(|record| {
                        let session = &record.session;
                        vec![
                            session.id.to_string(),
                            session.created_at.to_rfc3339(),
                            session.last_seen_at.to_rfc3339(),
                            session.expires_at.to_rfc3339(),
                            if session.remember { "yes" } else { "no" }.into(),
                            record.ip.map_or("-".into(), |ip| ip.addr().to_string()),
                            record.user_agent.clone().unwrap_or_else(|| "-".into()),
                        ]
                    }),
                );
                Ok(())
            }
            Self::Revoke {
                username,
                session_id,
                all,
            } => {
                let user = find(services, username).await?;
                if all {
                    let ended = services
                        .sessions
                        .end_all(user.id, Vec::new(), &operator())
                        .await?;
                    println!("ended {ended} session(s) of {}", user.username);
                    return Ok(());
                }
                let typed = session_id.unwrap_or_default();
                let no_such =
                    || Failure::Refused(format!("{} has no live session {typed}", user.username));
                let id = SessionId::parse(&typed).ok_or_else(no_such)?;
                services
                    .sessions
                    .end(user.id, id, &operator())
                    .await?
                    .ok_or_else(no_such)?;
                let id = typed;
                println!("ended session {id} of {}", user.username);
                Ok(())
            }
            Self::Purge => {
                let purged = services.retention.purge().await?.ok_or_else(|| {
                    Failure::Refused(
                        "another instance is purging right now; try again later".into(),
                    )
                })?;
                println!(
                    "deleted {} session(s), {} audit event(s), {} throttle count(s)",
                    purged.sessions, purged.auth_events, purged.throttle_hits
                );
                Ok(())
            }
        }
    }
}
