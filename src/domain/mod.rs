//! Values parsed once at the edge. Holding a `Username`, `Email`,
//! `Password` or `NextPath` means the rules have already been checked.

mod email;
mod next_path;
mod password;
mod username;

pub use email::Email;
pub use next_path::NextPath;
pub use password::{MAX_BYTES as PASSWORD_MAX_BYTES, Owner, Password};
pub use username::Username;
