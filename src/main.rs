//! The `authd` binary: the command line, whose default command serves.

use std::process::ExitCode;

use clap::Parser;

#[actix_web::main]
async fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0 here, before anything
    // reads the configuration or opens a port.
    authd::cli::Cli::parse().run().await
}
