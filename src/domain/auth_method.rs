//! How a session was made: the methods its login used, named as RFC 8176
//! names them where it does.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AuthMethod {
    #[serde(rename = "pwd")]
    Password,
    #[serde(rename = "otp")]
    Otp,
    #[serde(rename = "recovery")]
    RecoveryCode,
    /// A passkey with user verification: a factor the device holds and one
    /// the person is (or knows), so multi-factor on its own.
    #[serde(rename = "passkey")]
    Passkey,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Otp => "otp",
            Self::RecoveryCode => "recovery",
            Self::Passkey => "passkey",
        }
    }
}
