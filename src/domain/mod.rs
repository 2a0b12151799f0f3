//! Values parsed once at the edge. Holding a `Username`, `Email`,
//! `Password` or `NextPath` means the rules have already been checked.

mod auth_method;
mod client;
mod email;
mod ids;
mod login_name;
mod next_path;
mod password;
mod username;

use std::collections::BTreeMap;

pub use auth_method::AuthMethod;
pub use client::Client;
pub use email::{Email, is_invisible};
pub use ids::{
    CeremonyId, CsrfToken, MfaToken, PasskeyId, PasswordHash, SessionId, SessionToken, UserId,
};
pub use login_name::LoginName;
pub use next_path::NextPath;
pub use password::{MAX_BYTES as PASSWORD_MAX_BYTES, Owner, Password};
pub use username::Username;

/// Field name to every message about it, in a stable order: what a form
/// shows next to each field.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// What every route says of a field that is missing or empty.
pub const REQUIRED: &str = "This field is required.";

/// Notes `message` against `field`.
pub fn add_error(errors: &mut FieldErrors, field: &str, message: &str) {
    errors
        .entry(field.to_owned())
        .or_default()
        .push(message.to_owned());
}

/// Parses a field that was given into its domain type, noting the message
/// against `field` if it fails; `None` for a field not given (reporting it
/// missing is the caller's call).
pub fn parse_field<T>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Option<T> {
    match parse(value?) {
        Ok(parsed) => Some(parsed),
        Err(message) => {
            add_error(errors, field, message);
            None
        }
    }
}
