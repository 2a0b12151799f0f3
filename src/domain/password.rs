//! New passwords and the policy they must meet. A password never prints.

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

pub const MIN_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than
/// silently truncated.
pub const MAX_BYTES: usize = 72;

/// The 10,000 most common passwords (see common_passwords.LICENSE.md).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

/// Personal details a password must not be built from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Owner<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// A new password that meets the policy (NIST SP 800-63B, OWASP ASVS V6.2):
/// 8 characters to 72 bytes, no composition rules, not one of the most
/// common passwords, and not built from the owner's username or email.
/// `Debug` never shows it, so it cannot leak through a log line or an error.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(value: &str, owner: Owner<'_>) -> Result<Self, &'static str> {
        let lowered = value.to_lowercase();
        let builds_on = |detail: &str| {
            let detail = detail.trim().to_lowercase();
            // A containment test on one or two characters would forbid half of all passwords.
            lowered == detail || (detail.chars().count() >= 3 && lowered.contains(&detail))
        };
        let email_local = owner
            .email
            .and_then(|email| email.rsplit_once('@'))
            .map(|(local, _)| local);
        if value.chars().count() < MIN_CHARS {
            Err("Password must be at least 8 characters long.")
        } else if value.len() > MAX_BYTES {
            Err(
                "Password must be at most 72 bytes long: bcrypt cannot use more, and authd never truncates a password.",
            )
        } else if COMMON.contains(lowered.as_str()) {
            Err(
                "This password is one of the most commonly used; choose one that is harder to guess, such as a few unrelated words.",
            )
        } else if owner.username.is_some_and(builds_on) {
            Err("Password must not contain your username.")
        } else if email_local.is_some_and(builds_on) {
            Err("Password must not contain your email address.")
        } else {
            Ok(Self(value.into()))
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::{Owner, Password};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_enforces_the_bounds(
            value in any::<String>(),
            username in proptest::option::of(any::<String>()),
            email in proptest::option::of(any::<String>()),
        ) {
            let owner = Owner { username: username.as_deref(), email: email.as_deref() };
            if let Ok(password) = Password::parse(&value, owner) {
                prop_assert!(password.expose().chars().count() >= 8);
                prop_assert!(password.expose().len() <= 72);
            }
        }
    }

    fn parse(value: &str) -> Result<Password, &'static str> {
        Password::parse(value, Owner::default())
    }

    #[test]
    fn length_is_counted_in_characters_and_capped_in_bytes() {
        assert!(parse("1234567").is_err());
        assert!(parse("quietly-").is_ok());
        assert!(parse("éééééééé").is_ok(), "8 characters, 16 bytes");
        assert!(parse(&"a".repeat(72)).is_ok());
        assert!(parse(&"a".repeat(73)).is_err());
        assert!(parse(&"é".repeat(37)).is_err(), "37 characters, 74 bytes");
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert_eq!(include_str!("common_passwords.txt").lines().count(), 10_000);
        for common in [
            "password",
            "12345678",
            "PASSWORD",
            "Iloveyou",
            "qwertyuiop",
            "baseball",
        ] {
            assert!(
                parse(common).unwrap_err().contains("commonly used"),
                "{common}"
            );
        }
        assert!(parse("correct horse battery staple").is_ok());
    }

    #[test]
    fn personal_details_are_refused() {
        let owner = Owner {
            username: Some("Susan_B"),
            email: Some("s.bones@example.com"),
        };
        for bad in ["susan_b", "my-susan_b-pw", "S.Bones1999", "xxS.BONESxx"] {
            assert!(Password::parse(bad, owner).is_err(), "{bad}");
        }
        assert!(Password::parse("unrelated words here", owner).is_ok());
        // A one-letter local part only forbids the exact value.
        let owner = Owner {
            username: None,
            email: Some("a@example.com"),
        };
        assert!(Password::parse("alphabet soup", owner).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let password = parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
