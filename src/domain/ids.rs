//! Identifiers and credentials, each a type of its own so that one cannot
//! be passed for another, and so that a credential never prints: their
//! `Debug` and `Display` show a short prefix at most.

use std::fmt;

use diesel::sql_types::{BigInt, Text};
use diesel::{AsExpression, FromSqlRow};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::crypto::{hex, random_token};

/// Stores a newtype as the SQL type of the value it wraps.
macro_rules! stored_as {
    ($name:ident, $inner:ty, $sql:ty) => {
        impl diesel::serialize::ToSql<$sql, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <$inner as diesel::serialize::ToSql<$sql, diesel::pg::Pg>>::to_sql(&self.0, out)
            }
        }

        impl diesel::deserialize::FromSql<$sql, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <$inner as diesel::deserialize::FromSql<$sql, diesel::pg::Pg>>::from_sql(value)
                    .map(Self)
            }
        }
    };
}

/// Prints a secret as its first few characters, enough to tell two apart
/// in a debugger and too few to use.
macro_rules! redacted {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let prefix: String = self.0.chars().take(4).collect();
                write!(f, "{prefix}…")
            }
        }
    };
}

/// An account's id: the `users` row's key, and `id` in the public user
/// object.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, AsExpression, FromSqlRow,
)]
#[diesel(sql_type = BigInt)]
#[serde(transparent)]
pub struct UserId(i64);
stored_as!(UserId, i64, BigInt);

impl UserId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        value.parse().map(Self)
    }
}

/// A public id: 128 random bits as 32 lower-case hex digits. It names a
/// thing to its owner and in logs; it is not a credential and opens nothing.
macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        #[serde(transparent)]
        pub struct $name(String);
        stored_as!($name, String, Text);

        impl $name {
            pub fn generate() -> Self {
                let mut bytes = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                Self(hex(&bytes))
            }

            /// Anything but the form `generate` gives names nothing, and
            /// never reaches the database (a NUL would not even be valid
            /// text there).
            pub fn parse(value: &str) -> Option<Self> {
                let shaped = value.len() == 32
                    && value
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                shaped.then(|| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

public_id!(
    /// A session's public id: how its owner lists and ends it, and how logs
    /// name it.
    SessionId
);

public_id!(
    /// A passkey's public id: how its owner renames and removes it.
    PasskeyId
);

/// A one-time token a client holds between two requests: 256 random bits,
/// stored only as a digest, good once.
macro_rules! one_time_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);
        redacted!($name);

        impl $name {
            pub fn generate() -> Self {
                Self(random_token())
            }

            pub fn presented(value: String) -> Self {
                Self(value)
            }

            /// What is stored of it.
            pub fn digest(&self) -> [u8; 32] {
                crate::crypto::sha256(self.0.as_bytes())
            }

            pub fn expose(&self) -> &str {
                &self.0
            }
        }
    };
}

one_time_token!(
    /// What a login that owes a second step holds in the meantime.
    MfaToken
);

one_time_token!(
    /// What names a passkey ceremony (`challenge_id`) between its start and
    /// its finish.
    CeremonyId
);

/// The credential a session cookie or bearer token carries: 256 random
/// bits. Whoever has it is logged in.
#[derive(Clone, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct SessionToken(String);
stored_as!(SessionToken, String, Text);
redacted!(SessionToken);

impl SessionToken {
    pub fn generate() -> Self {
        Self(random_token())
    }

    /// A token as a client presented it; whether it names a live session
    /// is the database's to say.
    pub fn presented(value: String) -> Self {
        Self(value)
    }

    /// The token itself, to put in a cookie or a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the session cache keys it by, rather than a copy of it.
    pub fn digest(&self) -> [u8; 32] {
        crate::crypto::sha256(self.0.as_bytes())
    }
}

/// The token a cookie-carried session must echo in `X-CSRF-Token` on
/// unsafe requests.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct CsrfToken(String);
stored_as!(CsrfToken, String, Text);
redacted!(CsrfToken);

impl CsrfToken {
    pub fn generate() -> Self {
        Self(random_token())
    }

    /// A session's token as it was stored, kept in memory by the session
    /// cache.
    pub fn stored(value: String) -> Self {
        Self(value)
    }

    /// Whether `sent` is this token, compared in constant time.
    pub fn matches(&self, sent: &[u8]) -> bool {
        sent.ct_eq(self.0.as_bytes()).into()
    }

    /// The token itself, for the client that owns the session.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A password's bcrypt hash, as stored. Not the password, but a head start
/// on guessing it: it never prints.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct PasswordHash(String);
stored_as!(PasswordHash, String, Text);
redacted!(PasswordHash);

impl PasswordHash {
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_print_a_short_prefix_at_most() {
        let token = SessionToken::generate();
        let csrf = CsrfToken::generate();
        let hash = PasswordHash::new(
            "$2b$12$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQ".into(),
        );
        let mfa = MfaToken::generate();
        let ceremony = CeremonyId::generate();
        for (secret, shown) in [
            (mfa.expose(), format!("{mfa:?} {mfa}")),
            (ceremony.expose(), format!("{ceremony:?} {ceremony}")),
            (token.expose(), format!("{token:?} {token}")),
            (csrf.expose(), format!("{csrf:?} {csrf}")),
            (hash.expose(), format!("{hash:?} {hash}")),
        ] {
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
    }

    #[test]
    fn only_generated_shapes_are_public_ids() {
        let id = SessionId::generate();
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
        let id = PasskeyId::generate();
        assert_eq!(PasskeyId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "0A1B2C3D4E5F60718293A4B5C6D7E8F9",
            "0a1b\0",
            &"0".repeat(33),
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_match_only_themselves() {
        let csrf = CsrfToken::generate();
        assert!(csrf.matches(csrf.expose().as_bytes()));
        assert!(!csrf.matches(b""));
        assert!(!csrf.matches(CsrfToken::generate().expose().as_bytes()));
    }
}
