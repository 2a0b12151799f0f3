//! Password hashing: how hard, and on how many threads.

use crate::configuration::ConfigError;
use crate::configuration::env::{Env, parse_within};

#[derive(Clone, Copy, Debug)]
pub struct PasswordSettings {
    pub bcrypt_cost: u32,
    /// Threads that hash passwords: more than the cores cannot go faster.
    pub hash_threads: usize,
}

impl PasswordSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            bcrypt_cost: env.parse("BCRYPT_COST", 12, |v| parse_within(v, 4..=31))?,
            hash_threads: env.parse(
                "HASH_THREADS",
                std::thread::available_parallelism().map_or(1, usize::from),
                |v| parse_within(v, 1..=256),
            )?,
        })
    }
}
