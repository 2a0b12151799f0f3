//! Sliding-window limits against password guessing, sign-up abuse and mail
//! floods. Each limit is a [`Bucket`], which names the settings that size
//! it; the counts live in Postgres, or in Redis when `REDIS_URL` is set.

use secrecy::SecretString;

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, HOUR, MINUTE, Period, parse_limit, seconds};

/// One kind of limit: what is counted, under which name in the store, and
/// which settings (with which defaults) size it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Failed logins per (account, client address).
    LoginAccount,
    /// Failed logins per client address.
    LoginIp,
    /// Registration attempts per client address.
    Registration,
    /// Recovery mails (resets, new confirmation links) per address (or,
    /// asked for while logged in, per account) and client network, whether
    /// or not the address has an account.
    RecoveryAddress,
    /// Recovery mails per address, from every client together: a larger
    /// cap, so that others' requests cannot use up the owner's.
    RecoveryAddressTotal,
    /// Recovery mails per client address.
    RecoveryIp,
    /// Confirmation links mailed because a login was refused for an
    /// unverified address, per account.
    LoginVerificationMail,
    /// Passkey logins started with no account named, per client address:
    /// each stores a ceremony until it expires.
    PasskeyLogin,
}

impl Bucket {
    pub const ALL: [Self; 8] = [
        Self::LoginAccount,
        Self::LoginIp,
        Self::Registration,
        Self::RecoveryAddress,
        Self::RecoveryAddressTotal,
        Self::RecoveryIp,
        Self::LoginVerificationMail,
        Self::PasskeyLogin,
    ];

    /// Its name in the store: changing one forgets its counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginAccount => "login_account",
            Self::LoginIp => "login_ip",
            Self::Registration => "register_ip",
            Self::RecoveryAddress => "recovery_address_client",
            Self::RecoveryAddressTotal => "recovery_address",
            Self::RecoveryIp => "recovery_ip",
            Self::LoginVerificationMail => "login_verification_mail",
            Self::PasskeyLogin => "passkey_login_ip",
        }
    }

    /// The setting of its limit (none: a fixed policy), and the default.
    fn limit_setting(self) -> (Option<&'static str>, u32) {
        match self {
            Self::LoginAccount => (Some("LOGIN_FAILURES_PER_IDENTIFIER"), 10),
            Self::LoginIp => (Some("LOGIN_FAILURES_PER_IP"), 100),
            Self::Registration => (Some("REGISTRATIONS_PER_IP"), 20),
            Self::RecoveryAddress => (Some("RECOVERY_MAILS_PER_ADDRESS"), 5),
            Self::RecoveryAddressTotal => (Some("RECOVERY_MAILS_PER_ADDRESS_TOTAL"), 20),
            Self::RecoveryIp => (Some("RECOVERY_MAILS_PER_IP"), 20),
            Self::LoginVerificationMail => (None, 1),
            Self::PasskeyLogin => (Some("PASSKEY_LOGINS_PER_IP"), 100),
        }
    }

    /// The setting of its window (none: a fixed policy), and the default;
    /// buckets of one action share theirs.
    fn window_setting(self) -> (Option<&'static str>, Period) {
        match self {
            Self::LoginAccount | Self::LoginIp => {
                (Some("LOGIN_FAILURE_WINDOW"), seconds(15 * MINUTE))
            }
            Self::Registration => (Some("REGISTRATION_WINDOW"), seconds(HOUR)),
            Self::RecoveryAddress | Self::RecoveryAddressTotal | Self::RecoveryIp => {
                (Some("RECOVERY_WINDOW"), seconds(HOUR))
            }
            Self::LoginVerificationMail => (None, seconds(10 * MINUTE)),
            Self::PasskeyLogin => (Some("PASSKEY_LOGIN_WINDOW"), seconds(15 * MINUTE)),
        }
    }
}

/// At most `limit` in any sliding `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub limit: u32,
    pub window: Period,
}

#[derive(Clone, Debug)]
pub struct ThrottleSettings {
    /// By [`Bucket::ALL`]'s order.
    limits: [Limit; Bucket::ALL.len()],
    /// Where the counts live when set; Postgres otherwise. It may hold a
    /// password.
    pub redis_url: Option<SecretString>,
    /// What every Redis key authd writes starts with.
    pub redis_prefix: String,
    /// Password checks (logins, registrations, a current password asked
    /// again) one client may have in flight at once on an instance.
    pub login_in_flight_per_ip: u32,
}

impl ThrottleSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut limits = Bucket::ALL.map(|bucket| Limit {
            limit: bucket.limit_setting().1,
            window: bucket.window_setting().1,
        });
        for (bucket, limit) in Bucket::ALL.into_iter().zip(&mut limits) {
            if let (Some(variable), default) = bucket.limit_setting() {
                limit.limit = env.parse(variable, default, parse_limit)?;
            }
            if let (Some(variable), default) = bucket.window_setting() {
                limit.window = env.period(variable, default)?;
            }
        }
        Ok(Self {
            limits,
            login_in_flight_per_ip: env.parse("LOGIN_IN_FLIGHT_PER_IP", 4, parse_limit)?,
            redis_url: env.parse("REDIS_URL", None, |v| match url::Url::parse(v) {
                Ok(url) if matches!(url.scheme(), "redis" | "rediss") => Ok(Some(v.into())),
                _ => Err("must be a redis:// or rediss:// URL".into()),
            })?,
            redis_prefix: env.parse("REDIS_PREFIX", "authd:".to_owned(), |v| {
                if v.chars().all(|c| c.is_ascii_graphic()) {
                    Ok(v.to_owned())
                } else {
                    Err("must be printable ASCII without spaces".into())
                }
            })?,
        })
    }

    pub fn limit(&self, bucket: Bucket) -> Limit {
        self.limits[Self::index(bucket)]
    }

    /// Sets a bucket's limit, as its setting would (tests, benchmarks).
    pub fn set_limit(&mut self, bucket: Bucket, limit: u32) {
        self.limits[Self::index(bucket)].limit = limit;
    }

    /// Sets a bucket's window, as its setting would (tests, benchmarks).
    pub fn set_window(&mut self, bucket: Bucket, window: Period) {
        self.limits[Self::index(bucket)].window = window;
    }

    /// The longest of the windows: hits older than it count for nothing.
    pub fn longest_window(&self) -> Period {
        self.limits
            .iter()
            .map(|limit| limit.window)
            .max()
            .unwrap_or(seconds(HOUR))
    }

    /// [`Bucket::ALL`] lists the buckets in their declared order.
    fn index(bucket: Bucket) -> usize {
        bucket as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_has_its_own_limit() {
        for (at, bucket) in Bucket::ALL.into_iter().enumerate() {
            assert_eq!(ThrottleSettings::index(bucket), at);
        }
    }
}
