//! The test harness. Each test gets its own Postgres database (cloned from
//! a migrated template, then dropped: [`database`]), the real application
//! on a random port started through the same code as `main` ([`app`]), and
//! actors that talk to it over HTTP, an anonymous client, browsers and apps
//! with a bearer token, through one request path that checks every response
//! against openapi.yaml ([`actors`], [`response`], [`contract`]). Mail is
//! delivered when a test says so, to a real SMTP server ([`mail_sink`]);
//! time moves when a test says so. The built binary runs as a child process
//! where a test needs one ([`process`]), and a real nginx in front of it
//! where the test is of forward auth ([`nginx`]).

mod actors;
mod app;
pub mod contract;
mod database;
pub mod mail_sink;
pub mod nginx;
mod process;
mod response;

use std::time::{Duration, Instant};

use authd::configuration::Period;

pub use actors::{Actor, Request, Server};
pub use app::{TestApp, start, test_settings, use_redis};
pub use database::TestDatabase;
pub use process::{Process, example};
pub use response::{Login, TestResponse};

/// The password of every user the harness makes.
pub const PASSWORD: &str = "correct-horse-battery";

/// A configured span of `seconds`.
pub fn secs(seconds: u32) -> Period {
    Period::from_secs(seconds).expect("a valid period")
}

/// A number from this process's `/proc/self/status` (`Threads`, or
/// `VmRSS` in KiB, say).
pub fn own_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    value.trim().trim_end_matches(" kB").parse().unwrap()
}

/// A loopback port nothing listens on, for a server the test starts later
/// (nginx, a child authd, a mail sink).
///
/// Drawn from below the kernel's ephemeral range: a port the OS picked for
/// `bind(0)` and released at once could be handed to the next `bind(0)` of
/// any test (each spawned `TestApp` makes one) before the server meant for it
/// binds it, and the test would then talk to a stranger.
pub fn free_port() -> u16 {
    use rand::Rng;
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768u16);
    assert!(
        ephemeral_from > 11_000,
        "the ephemeral port range starts at {ephemeral_from}, leaving no room below it"
    );
    loop {
        let port = rand::rng().random_range(10_000..ephemeral_from);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `check` every 50 ms until it gives a value, for at most 15
/// seconds; then fails, saying what was awaited and what `check` last saw.
/// For what a test cannot bring about itself: another process's log or
/// mail, a server healing.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "{what}: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 24 random hex digits: names no other test or run will pick.
fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
