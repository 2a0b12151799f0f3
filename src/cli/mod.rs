//! The `authd` command line: `authd serve` (the default) runs the server;
//! the other commands do an operator's job against the database and exit,
//! never binding a port.
//!
//! Exit codes scripts can rely on: 0 done, 1 refused or not found, 2 usage
//! or configuration (including a database that cannot be reached).

mod mail;
mod session;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::configuration::Settings;
use crate::domain::Client;
use crate::startup::{Application, Services};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "authd",
    version,
    about = "User accounts and login sessions as a JSON API",
    long_about = "User accounts and login sessions as a JSON API.\n\n\
        Without a command, runs the server. Configuration comes from the \
        environment (and a .env file); see the README.\n\n\
        Exit codes: 0 done, 1 refused or not found, 2 usage or configuration.\n\n\
        A username that begins with `-` (accounts made before authd refused \
        them) goes after `--`, as in `authd user show -- -olduser`."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default)
    Serve,
    /// Create the database if it is missing and apply pending migrations
    Migrate,
    /// Manage user accounts
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage login sessions
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Check the mail settings
    #[command(subcommand)]
    Mail(mail::MailCommand),
}

/// Why a command did not do its job, and so its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Refused or not found: exit 1.
    Refused(String),
    /// Configuration, or the database out of reach: exit 2.
    Setup(String),
}

impl Failure {
    fn exit(self) -> ExitCode {
        let (message, code) = match self {
            Self::Refused(message) => (message, 1),
            Self::Setup(message) => (message, 2),
        };
        eprintln!("authd: {message}");
        ExitCode::from(code)
    }
}

impl From<crate::db::DbError> for Failure {
    fn from(error: crate::db::DbError) -> Self {
        Self::Setup(format!("database: {error}"))
    }
}

type Outcome = Result<(), Failure>;

/// Who the audit trail says acted, for commands.
fn operator() -> Client {
    Client {
        ip: None,
        user_agent: Some("authd command line".into()),
    }
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        let settings = match Settings::from_env() {
            Ok(settings) => settings,
            Err(error) => return Failure::Setup(error.to_string()).exit(),
        };
        let Some(command) = self
            .command
            .filter(|command| !matches!(command, Command::Serve))
        else {
            return serve(settings).await;
        };
        // Commands keep stdout for their answer; logs go to stderr.
        let _logging = telemetry::init_for_commands(settings.log_format);
        let outcome = match command {
            Command::Serve => unreachable!("handled above"),
            Command::Migrate => migrate(&settings).await,
            Command::User(command) => {
                with_services(&settings, async |s| command.run(s).await).await
            }
            Command::Session(command) => {
                with_services(&settings, async |s| command.run(s).await).await
            }
            Command::Mail(command) => command.run(&settings).await,
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => failure.exit(),
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let _logging = telemetry::init(settings.log_format);
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("cannot start: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = application.stop_on_signals() {
        tracing::error!("cannot handle signals: {error}");
        return ExitCode::FAILURE;
    }
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command with the services, then closes them: no connection is
/// being opened when the process exits.
async fn with_services(
    settings: &Settings,
    command: impl AsyncFnOnce(&Services) -> Outcome,
) -> Outcome {
    // No connection kept warm: a command uses one or two, then exits.
    let services = Services::start(settings, 0)
        .await
        .map_err(|error| Failure::Setup(format!("{error:#}")))?;
    let outcome = command(&services).await;
    services.close(settings.database.timeout.std()).await;
    outcome
}

async fn migrate(settings: &Settings) -> Outcome {
    let url = settings.database.direct_url().to_owned();
    tokio::task::spawn_blocking(move || crate::db::migrations::prepare(&url))
        .await
        .map_err(|_| Failure::Setup("migration was cancelled".into()))?
        .map_err(|error| Failure::Setup(format!("{:#}", anyhow::Error::from(error))))?;
    println!("database is up to date");
    Ok(())
}
