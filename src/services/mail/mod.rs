//! Mail: messages to people, queued in the database in the transaction of
//! the change that needs them ([`outbox`]), made and sent by a worker in
//! every instance, through the mail server of `SMTP_URL` or, in
//! development, the log ([`transport`]). Links in mails open the client
//! application's pages ([`links`]).
//!
//! Mail knows nothing of what it carries: each user of it (password
//! resets, address confirmation) names its [`MailKind`] and gives the
//! worker a [`Composer`](outbox::Composer) that makes that kind's mail when
//! it is due.

pub mod links;
pub mod outbox;
pub mod transport;

use std::time::Duration;

pub use links::Links;
pub use outbox::{Composer, Outbox, RunningWorker, Worker};
pub use transport::{MailError, Mailer};

/// A kind of mail: its name in the outbox, the logs and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailKind(pub &'static str);

/// One mail, plain text, to the address as stored.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A lifetime as a reader says it: "1 hour", "2 days", "90 minutes"; an
/// odd one in humantime's notation.
pub fn spoken(lifetime: Duration) -> String {
    let seconds = lifetime.as_secs();
    let unit = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| seconds >= *size && seconds.is_multiple_of(*size));
    match unit {
        Some((size, name)) => {
            let count = seconds / size;
            format!("{count} {name}{}", if count == 1 { "" } else { "s" })
        }
        None => humantime::format_duration(lifetime).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn lifetimes_read_as_people_say_them() {
        let spoken = |seconds| super::spoken(Duration::from_secs(seconds));
        assert_eq!(spoken(3_600), "1 hour");
        assert_eq!(spoken(48 * 3_600), "2 days");
        assert_eq!(spoken(90 * 60), "90 minutes");
        assert_eq!(spoken(30), "30s");
    }
}
