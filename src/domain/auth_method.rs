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
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::Otp => "otp",
            Self::RecoveryCode => "recovery",
        }
    }
}
