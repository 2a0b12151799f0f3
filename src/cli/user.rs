//! `authd user …`: accounts, as an operator manages them.

use std::io::BufRead;

use clap::Subcommand;

use crate::cli::{Failure, Outcome, operator};
use crate::db::users::User;
use crate::domain::{Owner, Password};
use crate::services::accounts::{AccountError, NewAccount};
use crate::services::mfa::MfaError;
use crate::services::recovery::RecoveryError;
use crate::startup::Services;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account, by the same rules as registration
    Create {
        username: String,
        email: String,
        /// Read the password from standard input (one line) instead of
        /// prompting for it
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every account
    List,
    /// Show one account
    Show { username: String },
    /// Set an account's password; every session of the account ends
    SetPassword {
        username: String,
        /// Read the password from standard input (one line) instead of
        /// prompting for it
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account; its sessions end at once and it cannot log in
    Deactivate { username: String },
    /// Enable a disabled account (its old sessions stay ended)
    Activate { username: String },
    /// Print a password reset link to hand to the account's owner (it
    /// replaces any earlier reset link, and is audited)
    ResetLink { username: String },
    /// Remove an account's second factor, recovery codes and passkeys, for an owner
    /// who lost them and proved who they are some other way; every session
    /// of the account ends, and it is audited (and mailed to the owner,
    /// unless SECURITY_NOTIFICATIONS=false)
    MfaReset { username: String },
}

impl UserCommand {
    pub async fn run(self, services: &Services) -> Outcome {
        let accounts = &services.accounts;
        match self {
            Self::Create {
                username,
                email,
                password_stdin,
            } => {
                let password = read_password(password_stdin)?;
                let account = NewAccount::parse(Some(&username), Some(&email), Some(&password));
                let user = accounts
                    .create(account, &operator())
                    .await
                    .map_err(refused)?;
                println!("created user {} (id {})", user.username, user.id);
                Ok(())
            }
            Self::List => {
                let users = accounts.list().await?;
                print_table(
                    &["ID", "USERNAME", "EMAIL", "ACTIVE", "CREATED", "LAST LOGIN"],
                    users.iter().map(|user| {
                        vec![
                            user.id.to_string(),
                            user.username.clone(),
                            user.email.clone(),
                            yes_no(user.is_active),
                            user.created_at.to_rfc3339(),
                            user.last_login_at
                                .map_or("never".into(), |at| at.to_rfc3339()),
                        ]
                    }),
                );
                Ok(())
            }
            Self::Show { username } => {
                let user = find(services, username).await?;
                let live = services.sessions.list(user.id).await?.len();
                println!("id:            {}", user.id);
                println!("username:      {}", user.username);
                println!("email:         {}", user.email);
                println!(
                    "verified:      {}",
                    user.email_verified_at
                        .map_or("no".into(), |at| at.to_rfc3339())
                );
                println!("active:        {}", yes_no(user.is_active));
                println!("created:       {}", user.created_at.to_rfc3339());
                println!(
                    "last login:    {}",
                    user.last_login_at
                        .map_or("never".into(), |at| at.to_rfc3339())
                );
                println!("live sessions: {live}");
                Ok(())
            }
            Self::SetPassword {
                username,
                password_stdin,
            } => {
                let user = find(services, username).await?;
                let password = read_password(password_stdin)?;
                let owner = Owner {
                    username: Some(&user.username),
                    email: Some(&user.email),
                };
                let password = Password::parse(&password, owner)
                    .map_err(|message| Failure::Refused(format!("password: {message}")))?;
                accounts
                    .set_password(&user, password, None, &operator())
                    .await
                    .map_err(refused)?;
                println!(
                    "password set for {}; every session of theirs has ended",
                    user.username
                );
                Ok(())
            }
            Self::Deactivate { username } => {
                let user = find(services, username).await?;
                let changed = accounts
                    .set_active(&user, false, &operator())
                    .await
                    .map_err(refused)?;
                match changed {
                    true => println!(
                        "{} is deactivated; every session of theirs has ended",
                        user.username
                    ),
                    false => println!("{} was already deactivated", user.username),
                }
                Ok(())
            }
            Self::Activate { username } => {
                let user = find(services, username).await?;
                let changed = accounts
                    .set_active(&user, true, &operator())
                    .await
                    .map_err(refused)?;
                match changed {
                    true => println!(
                        "{} is active again (old sessions stay ended)",
                        user.username
                    ),
                    false => println!("{} was already active", user.username),
                }
                Ok(())
            }
            Self::ResetLink { username } => {
                services.recovery.available().map_err(|_| {
                    Failure::Setup("ACCOUNT_RECOVERY is off: the API would refuse the link".into())
                })?;
                let user = find(services, username).await?;
                if !user.is_active {
                    return Err(Failure::Refused(format!(
                        "{} is deactivated: activate the account first",
                        user.username
                    )));
                }
                let link = services
                    .recovery
                    .reset_link(&user, &operator())
                    .await
                    .map_err(|error| match error {
                        RecoveryError::Db(error) => error.into(),
                        other => Failure::Refused(other.to_string()),
                    })?;
                println!("{link}");
                Ok(())
            }
            Self::MfaReset { username } => {
                let user = find(services, username).await?;
                let reset = services
                    .mfa
                    .reset(&user, &operator())
                    .await
                    .map_err(|error| match error {
                        MfaError::Db(error) => error.into(),
                        other => Failure::Refused(other.to_string()),
                    })?;
                match reset {
                    true => println!(
                        "{}'s second factor, recovery codes and passkeys are removed, and \
                         every session of theirs has ended",
                        user.username
                    ),
                    false => println!("{} has no second factor: nothing changed", user.username),
                }
                Ok(())
            }
        }
    }
}

/// The account with this username (any case), or exit 1.
pub async fn find(services: &Services, username: String) -> Result<User, Failure> {
    services
        .accounts
        .find_by_username(username.clone())
        .await?
        .ok_or_else(|| Failure::Refused(format!("no user named {username}")))
}

fn refused(error: AccountError) -> Failure {
    match error {
        AccountError::Invalid(errors) => Failure::Refused(
            errors
                .iter()
                .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field}: {m}")))
                .collect::<Vec<_>>()
                .join("\n       "),
        ),
        AccountError::Db(error) => error.into(),
        other => Failure::Refused(other.to_string()),
    }
}

/// One line of standard input, or a password typed twice at the terminal.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|error| Failure::Setup(format!("cannot read standard input: {error}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text).map_err(|error| {
            Failure::Setup(format!(
                "cannot prompt for a password ({error}); pass it with --password-stdin"
            ))
        })
    };
    let first = prompt("Password: ")?;
    if prompt("Password again: ")? != first {
        return Err(Failure::Refused("the two passwords differ".into()));
    }
    Ok(first)
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

/// Columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(ToString::to_string).collect());
    for row in rows {
        line(row);
    }
}
