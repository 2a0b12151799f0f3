//! Usernames: a small ASCII alphabet, unique regardless of case.

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 32;

/// 3 to 32 ASCII letters, digits, `_`, `.` or `-`. Case is kept as typed;
/// uniqueness ignores it (see the `users_username_lower_key` index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        // A leading '-' reads as an option on a command line (`authd user
        // deactivate --help`), and a leading '.' as a hidden name.
        let plain_start = !value.starts_with(['-', '.']);
        if (MIN_LEN..=MAX_LEN).contains(&value.len()) && value.chars().all(allowed) && plain_start {
            Ok(Self(value.to_owned()))
        } else {
            Err(
                "Username must be 3 to 32 characters long, use only letters, digits, '_', '.' and '-', and not begin with '-' or '.'.",
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Username;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepts_only_the_alphabet(value in any::<String>()) {
            if let Ok(username) = Username::parse(&value) {
                prop_assert!((3..=32).contains(&username.as_str().len()));
                prop_assert!(username.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
            }
        }
    }

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        for good in [
            "abc",
            "susan",
            "Susan_01",
            "a.b-c",
            "_x-",
            "9.9",
            &"x".repeat(32),
        ] {
            assert_eq!(Username::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "ab",
            "--help",
            "-rf",
            ".hidden",
            &"x".repeat(33),
            "su san",
            "süsan",
            "a/b",
            "a@b",
            " abc",
            "abc\n",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
