//! A real SMTP server for the tests: aiosmtpd (Debian's python3-aiosmtpd,
//! installed by scripts/test-deps.sh) on a loopback port, storing every
//! mail it accepts in a Maildir that the tests read as a mail client would,
//! with its envelope as authd sent it (`mail_sink.py`). It can be stopped
//! and started again on the same port: a mail server outage.
//!
//! aiosmtpd stores a mail before it answers 250, so once
//! [`TestApp::deliver_pending_mail`](super::TestApp::deliver_pending_mail)
//! returns, what it sent is here to read. Only mail sent by another process
//! (the built binary) has to be waited for.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{eventually, free_port};

pub struct MailSink {
    pub port: u16,
    dir: PathBuf,
    process: Option<Child>,
}

/// One mail as the sink stored it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The `To:` header's address, as a mail client reads it.
    pub to: String,
    /// The envelope's recipients (`RCPT TO`) as sent: where the mail really
    /// went, which a header parser may read differently.
    pub envelope_to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub body: String,
}

impl ReceivedMail {
    /// The link in the body.
    pub fn link(&self) -> String {
        self.body
            .split_whitespace()
            .find(|word| word.starts_with("http"))
            .unwrap_or_else(|| panic!("no link in {:?}", self.body))
            .to_owned()
    }

    /// The token in the link's fragment.
    pub fn token(&self) -> String {
        let link = self.link();
        let (_, token) = link
            .split_once("#token=")
            .unwrap_or_else(|| panic!("no token in {link}"));
        token.to_owned()
    }
}

/// A Python with aiosmtpd: Debian's, which pyenv or a venv may shadow.
fn python() -> &'static str {
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .expect("aiosmtpd is not installed: run scripts/test-deps.sh (python3-aiosmtpd)")
}

impl MailSink {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("authd-mail-{port}-{}", std::process::id()));
        let mut sink = Self {
            port,
            dir,
            process: None,
        };
        sink.resume();
        sink
    }

    /// `SMTP_URL` for this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Takes the server down: connections are refused.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().ok();
            process.wait().ok();
        }
    }

    /// Brings it back on the same port, with the mails it had.
    pub fn resume(&mut self) {
        assert!(self.process.is_none(), "the sink is running already");
        let process = Command::new(python())
            .args(["-c", include_str!("mail_sink.py"), "127.0.0.1"])
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.dir.join(sub)).ok())
            .flatten()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort_by_key(|path| delivered_at(path));
        files
            .into_iter()
            .map(|path| parse(&std::fs::read(&path).unwrap()))
            .collect()
    }

    /// The mails with this subject to `to`, asserting there are at least
    /// `count` of them.
    #[track_caller]
    pub fn expect_mails(&self, to: &str, subject: &str, count: usize) -> Vec<ReceivedMail> {
        let mails = self.mails();
        let found: Vec<_> = mails
            .iter()
            .filter(|mail| mail.to == to && mail.subject == subject)
            .cloned()
            .collect();
        assert!(
            found.len() >= count,
            "{count} mail(s) expected; received {mails:#?}"
        );
        found
    }

    /// Waits until at least `count` mails have arrived (sent by another
    /// process); all of them.
    pub async fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        eventually(&format!("{count} mail(s) expected"), || {
            let mails = self.mails();
            if mails.len() >= count {
                Ok(mails)
            } else {
                Err(format!("received {mails:#?}"))
            }
        })
        .await
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// When a mail was stored, from its Maildir name (Python's mailbox writes
/// `<seconds>.M<microseconds>P<pid>Q<count>.<host>`, unpadded, so names do
/// not sort as text).
fn delivered_at(path: &std::path::Path) -> (u64, u64, u64) {
    let name = path.file_name().unwrap().to_string_lossy();
    let mut parts = name.split('.');
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let unique = parts.next().unwrap_or_default();
    let number = |after: char, before: char| {
        unique
            .split_once(after)
            .map(|(_, rest)| rest.split(before).next().unwrap_or_default())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0)
    };
    (seconds, number('M', 'P'), number('Q', '.'))
}

fn parse(raw: &[u8]) -> ReceivedMail {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a mail the sink stored parses");
    let address = |list: Option<&mail_parser::Address<'_>>| {
        list.and_then(|list| list.first())
            .and_then(|addr| addr.address())
            .unwrap_or_default()
            .to_owned()
    };
    // Joined with ", " (see mail_sink.py); Python may fold a long header.
    let envelope_to = message
        .header_raw("X-RcptTo")
        .unwrap_or_default()
        .replace(['\r', '\n'], "")
        .split(", ")
        .map(|recipient| recipient.trim().to_owned())
        .filter(|recipient| !recipient.is_empty())
        .collect();
    ReceivedMail {
        to: address(message.to()),
        envelope_to,
        from: address(message.from()),
        subject: message.subject().unwrap_or_default().to_owned(),
        body: message.body_text(0).unwrap_or_default().into_owned(),
    }
}
