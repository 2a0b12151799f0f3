//! The `authd` binary: the command line, whose default command serves.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's allocator: with a worker thread per core
/// and a blocking pool, glibc keeps an arena per thread and holds on to
/// what a churning session cache frees in each, so resident memory grew
/// past 600 MiB at a million users where mimalloc stays near the cache's
/// size (bench/run --scale). A library user picks their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0 here, before anything
    // reads the configuration or opens a port.
    authd::cli::Cli::parse().run().await
}
