//! Email addresses: trimmed, lower-cased, syntactically valid.

use validator::ValidateEmail;

pub const MAX_LEN: usize = 254;

/// A syntactically valid address, trimmed and lower-cased, at most 254
/// characters (the SMTP path limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let normalised = value.trim().to_lowercase();
        if normalised.chars().count() > MAX_LEN {
            Err("Email address must be at most 254 characters long.")
        } else if !normalised.validate_email() {
            Err("Invalid email address.")
        } else {
            Ok(Self(normalised))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Email;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_normalises(value in any::<String>()) {
            if let Ok(email) = Email::parse(&value) {
                prop_assert!(email.as_str().chars().count() <= 254);
                prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
                prop_assert!(email.as_str().contains('@'));
            }
        }
    }

    #[test]
    fn normalises_case_and_surrounding_space() {
        assert_eq!(
            Email::parse("  Susan@Example.COM ").unwrap().as_str(),
            "susan@example.com"
        );
    }

    #[test]
    fn rejects_invalid_and_overlong_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "susan",
            "susan@",
            "@example.com",
            "a b@example.com",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
