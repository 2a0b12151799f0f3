//! The operator's secret: what every signature and encryption key is
//! derived from, and the one being rotated out.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};

use crate::configuration::env::Env;
use crate::configuration::{ConfigError, Environment};

/// The smallest `SECRET_KEY` we accept: every derived key gets at least this
/// much input keying material.
pub const MIN_SECRET_KEY_BYTES: usize = 64;

/// Key material for every signature and encryption key the service uses.
/// Its `Debug` never prints the bytes.
#[derive(Clone, Debug)]
pub struct SecretKey(SecretSlice<u8>);

impl SecretKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_SECRET_KEY_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_KEY_BYTES} bytes long (got {}); \
                 generate one with `openssl rand -base64 64`",
                bytes.len()
            ));
        }
        Ok(Self(bytes.into()))
    }

    pub fn generate() -> Self {
        let mut bytes = vec![0u8; MIN_SECRET_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

#[derive(Clone, Debug)]
pub struct SecretSettings {
    pub key: SecretKey,
    /// True when `SECRET_KEY` was not set and a random one was made up.
    pub key_generated: bool,
    /// The key being rotated out: cookies and tokens signed with it are
    /// still accepted, new ones are signed with `key`.
    pub previous: Option<SecretKey>,
}

impl SecretSettings {
    pub(crate) fn read(env: &Env<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let (key, key_generated) = match env.get("SECRET_KEY") {
            Some(value) => (
                SecretKey::new(value.as_bytes().to_vec()).map_err(|message| ConfigError {
                    variable: "SECRET_KEY",
                    message,
                })?,
                false,
            ),
            None if environment == Environment::Production => {
                return Err(ConfigError {
                    variable: "SECRET_KEY",
                    message: "is required when AUTHD_ENV=production".into(),
                });
            }
            None => (SecretKey::generate(), true),
        };
        Ok(Self {
            key,
            key_generated,
            previous: env.parse("SECRET_KEY_PREVIOUS", None, |v| {
                SecretKey::new(v.as_bytes().to_vec()).map(Some)
            })?,
        })
    }
}
