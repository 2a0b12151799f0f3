//! What a login form's `username` field names: a username or an address.

use crate::domain::Email;

/// A login identifier as typed, read the way accounts are stored: a
/// username in any case, or an e-mail address in any spelling that
/// normalises to the same [`Email`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName {
    /// Trimmed and lower-cased: how usernames are compared.
    lowered: String,
    email: Option<Email>,
}

impl LoginName {
    pub fn parse(typed: &str) -> Self {
        Self {
            lowered: typed.trim().to_lowercase(),
            email: Email::parse(typed).ok(),
        }
    }

    /// The username it names, if it names one by username.
    pub fn lowered(&self) -> &str {
        &self.lowered
    }

    /// One spelling per account name: the normal form of an address, or
    /// the lowered text.
    pub fn canonical(&self) -> &str {
        self.email.as_ref().map_or(&self.lowered, Email::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::LoginName;

    #[test]
    fn spellings_of_one_name_are_one_login_name() {
        let canonical = |typed| LoginName::parse(typed).canonical().to_owned();
        assert_eq!(canonical(" Susan "), "susan");
        assert_eq!(canonical("SUSAN@EXAMPLE.COM"), "susan@example.com");
        assert_eq!(canonical("susan@example\u{3002}com"), "susan@example.com");
        assert_eq!(
            canonical("susan@b\u{FC}cher.example"),
            "susan@xn--bcher-kva.example"
        );
    }
}
