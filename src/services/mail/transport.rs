//! Sending a mail: through the SMTP server of `SMTP_URL`, or, in
//! development without one, into the log.

use std::time::Duration;

use anyhow::Context;
use lettre::Address;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{SmtpTransport, Transport as _};
use secrecy::ExposeSecret;

use crate::configuration::MailSettings;
use crate::services::mail::Mail;

/// How long one exchange with the mail server may take: a server that stops
/// answering holds up one mail (and its row lock) no longer than this.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a mail did not go.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient's address cannot be written in a mail: retrying
    /// cannot help.
    #[error("the address cannot be mailed: {0}")]
    Address(String),
    /// The server refused the recipient's mailbox (550, 551, 553):
    /// retrying will not help either.
    #[error("the mail server refused the recipient: {0}")]
    Refused(String),
    /// Any other 5xx: the sender, the credentials, a policy. Not this
    /// mail's fault: it waits until the operator fixes the settings.
    #[error("the mail server refused it: {0}")]
    Rejected(String),
    /// The server answered 4xx: try again later.
    #[error("the mail server deferred it: {0}")]
    Deferred(String),
    /// No answer: the server is out of reach, refused TLS, or timed out.
    #[error("cannot reach the mail server: {0}")]
    Unreachable(String),
}

impl MailError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Address(_) | Self::Refused(_))
    }
}

/// Whether the server refused the mailbox itself: 550 (no such mailbox),
/// 551 (not local), 553 (name not allowed).
fn recipient_refused(error: &lettre::transport::smtp::Error) -> bool {
    error
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "550" | "551" | "553"))
}

/// What `authd mail test` sends.
pub fn test_mail(to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "authd test mail".into(),
        body: "This mail was sent by `authd mail test` to check that authd can send \
               mail. Nothing needs doing.\n"
            .into(),
    }
}

/// Blocking: mail is sent from the outbox worker's own thread (or, for the
/// command line, a blocking one), never on the async executor.
#[derive(Clone)]
enum Transport {
    Smtp(SmtpTransport),
    /// Development without `SMTP_URL`: the mail goes to the log.
    Log,
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(
                SmtpTransport::from_url(url.expose_secret())
                    .context("SMTP_URL")?
                    .timeout(Some(SEND_TIMEOUT))
                    .build(),
            ),
            None => Transport::Log,
        };
        Ok(Self {
            transport,
            from: settings.from.clone(),
        })
    }

    /// Sends the mail; on success, what the server answered. Blocks.
    pub fn send(&self, mail: &Mail) -> Result<String, MailError> {
        // The recipient is built from its two parts, never parsed as a
        // header: a mailbox parser decodes what it recognises (an encoded
        // word), and the envelope must go to the address as stored.
        let (user, domain) = mail
            .to
            .rsplit_once('@')
            .ok_or_else(|| MailError::Address(format!("no @ in {}", mail.to)))?;
        let to = Address::new(user, domain)
            .map(|address| Mailbox::new(None, address))
            .map_err(|error| MailError::Address(error.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|error| MailError::Address(error.to_string()))?;
        match &self.transport {
            Transport::Smtp(transport) => match transport.send(&message) {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(error) if recipient_refused(&error) => {
                    Err(MailError::Refused(error.to_string()))
                }
                Err(error) if error.is_permanent() => Err(MailError::Rejected(error.to_string())),
                Err(error) if error.is_transient() => Err(MailError::Deferred(error.to_string())),
                Err(error) => Err(MailError::Unreachable(error.to_string())),
            },
            Transport::Log => {
                tracing::info!(
                    target: "authd::mail",
                    to = %mail.to,
                    subject = %mail.subject,
                    body = %mail.body,
                    "SMTP_URL is not set: the mail is written here instead of sent"
                );
                Ok("written to the log".into())
            }
        }
    }
}
