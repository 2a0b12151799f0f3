use std::fmt;

pub const MIN_CHARS: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused rather than
/// silently truncated.
pub const MAX_BYTES: usize = 72;

/// A new password that meets the policy. `Debug` never shows it, so it
/// cannot leak through a log line or an error.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.chars().count() < MIN_CHARS {
            Err("Password must be at least 8 characters long.")
        } else if value.len() > MAX_BYTES {
            Err(
                "Password must be at most 72 bytes long: bcrypt cannot use more, and authd never truncates a password.",
            )
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn length_is_counted_in_characters_and_capped_in_bytes() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(
            Password::parse("éééééééé").is_ok(),
            "8 characters, 16 bytes"
        );
        assert!(Password::parse(&"a".repeat(72)).is_ok());
        assert!(Password::parse(&"a".repeat(73)).is_err());
        assert!(
            Password::parse(&"é".repeat(37)).is_err(),
            "37 characters, 74 bytes"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let password = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
