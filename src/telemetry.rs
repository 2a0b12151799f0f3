//! Structured logging. `RUST_LOG` filters (default `info`); `LOG_FORMAT`
//! picks human-readable or JSON lines.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::configuration::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    install(filter, format, std::io::stdout);
}

/// For commands other than `serve`: only warnings and errors by default,
/// and on stderr, so that stdout holds the command's answer.
pub fn init_for_commands(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    install(filter, format, std::io::stderr);
}

/// Installs the global subscriber, writing to `writer`. A second install
/// (tests start many apps in one process) is harmless and ignored.
pub fn install<W>(filter: EnvFilter, format: LogFormat, writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
