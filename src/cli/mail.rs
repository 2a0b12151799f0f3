//! `authd mail …`: checking that mail goes out.

use clap::Subcommand;

use crate::cli::{Failure, Outcome};
use crate::configuration::Settings;
use crate::domain::Email;
use crate::services::mail::transport::test_mail;
use crate::services::mail::{MailError, Mailer};

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test mail through SMTP_URL and show what the server answered
    /// (exit 1 when it refused the mail, 2 when it cannot be reached)
    Test { address: String },
}

impl MailCommand {
    /// Needs no database: only the mail settings.
    pub async fn run(self, settings: &Settings) -> Outcome {
        match self {
            Self::Test { address } => {
                let Some(server) = settings.mail.smtp_server() else {
                    return Err(Failure::Setup(
                        "SMTP_URL is not set: there is no mail server to test".into(),
                    ));
                };
                let address = Email::parse(&address)
                    .map_err(|message| Failure::Setup(format!("{address}: {message}")))?;
                let mailer = Mailer::new(&settings.mail)
                    .map_err(|error| Failure::Setup(format!("{error:#}")))?;
                let mail = test_mail(address.as_str());
                let sent = tokio::task::spawn_blocking(move || mailer.send(&mail))
                    .await
                    .map_err(|_| Failure::Setup("sending was cancelled".into()))?;
                match sent {
                    Ok(reply) => {
                        println!(
                            "sent to {} through {server}; it answered: {reply}",
                            address.as_str()
                        );
                        Ok(())
                    }
                    Err(error @ MailError::Unreachable(_)) => {
                        Err(Failure::Setup(format!("{server}: {error}")))
                    }
                    Err(error) => Err(Failure::Refused(format!("{server}: {error}"))),
                }
            }
        }
    }
}
