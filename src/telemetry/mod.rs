//! Structured logging, and the metrics recorder. `RUST_LOG` filters (default `info`); `LOG_FORMAT`
//! picks human-readable or JSON lines. Colour only when writing to a
//! terminal. The server's lines are written by a thread of their own
//! ([`log_writer`]), so a request never waits for the write of its log line
//! (lines queue; past a full queue they are dropped, counted and reported,
//! rather than stop every request behind a stdout that stalled).

mod log_writer;

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use log_writer::LogWriterGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::configuration::LogFormat;

/// Keeps the log writer running; dropping it writes out what is queued
/// (waiting a few seconds at most).
#[must_use = "the log writer stops (after flushing) when this is dropped"]
pub struct Logging {
    _writer: Option<LogWriterGuard>,
}

/// actix's HTTP/1 dispatcher logs every malformed request it refuses (a
/// bad header byte, both Content-Length and Transfer-Encoding, an obsolete
/// line fold) at ERROR: anyone could write ERROR lines, and client errors
/// are not faults. Its lines are off unless `RUST_LOG` names the target
/// (`RUST_LOG=info,actix_http::h1::dispatcher=trace` shows them again).
const MALFORMED_REQUESTS: &str = "actix_http::h1::dispatcher";

/// `RUST_LOG`'s filter, or `default`, with the dispatcher's lines off
/// unless asked for.
fn filter(default: &str) -> EnvFilter {
    let given = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let quiet = format!("{default},{MALFORMED_REQUESTS}=off");
    let directives = match &given {
        Some(given) if given.contains(MALFORMED_REQUESTS) => given.clone(),
        Some(given) if !given.trim().is_empty() => format!("{given},{MALFORMED_REQUESTS}=off"),
        _ => quiet.clone(),
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(quiet))
}

/// For the server: `info` by default, on stdout.
pub fn init(format: LogFormat) -> Logging {
    let filter = filter("info");
    let colour = std::io::stdout().is_terminal();
    let report: log_writer::Report = Box::new(|dropped| {
        tracing::warn!(
            dropped,
            "log lines dropped: stdout took them slower than they came"
        );
    });
    match log_writer::spawn(std::io::stdout(), report) {
        Ok((writer, guard)) => {
            install(filter, format, colour, writer);
            Logging {
                _writer: Some(guard),
            }
        }
        Err(error) => {
            // No thread to spare: lines are written as they come.
            install(filter, format, colour, std::io::stdout);
            tracing::warn!(%error, "cannot start the log writer thread");
            Logging { _writer: None }
        }
    }
}

/// For commands other than `serve`: only warnings and errors by default,
/// and on stderr, so that stdout holds the command's answer.
pub fn init_for_commands(format: LogFormat) -> Logging {
    let filter = filter("warn");
    let colour = std::io::stderr().is_terminal();
    install(filter, format, colour, std::io::stderr);
    Logging { _writer: None }
}

/// Installs the global subscriber, writing to `writer`. A second install
/// (tests start many apps in one process) is harmless and ignored.
pub fn install<W>(filter: EnvFilter, format: LogFormat, colour: bool, writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The label values of the counters whose events happen in the services,
/// which know them: each counter is zeroed for every one at start-up.
#[derive(Clone, Copy, Debug)]
pub struct LabelValues<'a> {
    /// `authd_logins_total`'s outcomes (`services::login::LOGIN_OUTCOMES`).
    pub login_outcomes: &'a [&'static str],
    /// `authd_mails_total`'s kinds (`services::mail_kinds`).
    pub mail_kinds: &'a [&'static str],
}

/// The Prometheus recorder behind the `metrics` macros every layer uses,
/// installed once per process (by the first server that serves metrics),
/// every metric described and each counter at zero for `labels` and the
/// label values named here; a later call returns the same recorder and
/// zeroes nothing. Until then the macros record nothing, at no cost.
pub fn metrics(labels: LabelValues<'_>) -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    let mut installed = false;
    let handle = HANDLE.get_or_init(|| {
        installed = true;
        let seconds = [
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            1.0, 2.5, 5.0, 10.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets(&seconds)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may be in place; the handle still renders.
        let _ = metrics::set_global_recorder(recorder);
        describe_and_zero(labels);
        handle
    });
    if installed {
        keep_up(handle);
    }
    handle
}

/// How often histograms' samples are folded into their buckets.
pub const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// A histogram keeps each sample it records until the recorder's upkeep
/// folds it into the buckets. Only a render did that here, so memory grew
/// with every request for as long as nobody scraped (by a mebibyte a
/// second at 60,000 requests a second); a thread of its own does it too.
fn keep_up(handle: &'static PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("authd-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(METRICS_UPKEEP);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep: histograms grow until scraped");
    }
}

/// Every metric authd records, with its help text, each counter and gauge
/// present from the start at zero (for every label value it can take), so
/// that a dashboard or an alert on a rate sees it before its first event.
fn describe_and_zero(labels: LabelValues<'_>) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "authd_http_requests_total",
        "Requests answered, by method, route template and status"
    );
    describe_histogram!(
        "authd_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer a request, by method and route template"
    );
    let counters: [(&'static str, &'static str, &'static str, &[&'static str]); 3] = [
        (
            "authd_logins_total",
            "Login attempts, by outcome",
            "outcome",
            labels.login_outcomes,
        ),
        (
            "authd_registrations_total",
            "Registration attempts, by outcome",
            "outcome",
            &["created", "invalid", "throttled"],
        ),
        (
            "authd_session_cache_total",
            "Session checks answered from memory (hit) or the database (miss)",
            "result",
            &["hit", "miss"],
        ),
    ];
    for (name, help, label, values) in counters {
        describe_counter!(name, help);
        for value in values {
            metrics::counter!(name, label => *value).absolute(0);
        }
    }
    for (name, help) in [
        (
            "authd_sessions_created_total",
            "Sessions started by this instance",
        ),
        (
            "authd_sessions_revoked_total",
            "Sessions ended by this instance",
        ),
        (
            log_writer::DROPPED,
            "Log lines dropped: stdout took them slower than they came",
        ),
    ] {
        describe_counter!(name, help);
        metrics::counter!(name).absolute(0);
    }
    describe_counter!(
        "authd_mails_total",
        "Mails handled by this instance's worker, by kind and outcome"
    );
    for kind in labels.mail_kinds {
        for outcome in ["sent", "retry", "skipped", "dropped"] {
            metrics::counter!("authd_mails_total", "kind" => *kind, "outcome" => outcome)
                .absolute(0);
        }
    }
    for (name, help) in [
        (
            "authd_db_pool_max_connections",
            "The pool's size (DB_POOL_SIZE)",
        ),
        ("authd_db_pool_connections", "Database connections open"),
        (
            "authd_db_pool_idle_connections",
            "Database connections idle",
        ),
        (
            "authd_db_pool_waiting",
            "Requests waiting for a database connection",
        ),
        (
            "authd_blocking_tasks",
            "Database calls queued or running on the blocking pool",
        ),
        (
            "authd_session_activity_pending",
            "Sessions whose activity (last_seen_at) waits to be written",
        ),
        (
            "authd_hash_queue_depth",
            "Password hashes waiting for a hashing thread",
        ),
        (
            "authd_mail_outbox_depth",
            "Mails waiting in the outbox, all instances', read at each scrape",
        ),
    ] {
        describe_gauge!(name, help);
        metrics::gauge!(name).set(0.0);
    }
}
