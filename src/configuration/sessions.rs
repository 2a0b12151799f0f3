//! How long sessions live, and what keeps the audit trail and old sessions
//! from piling up.

use std::time::Duration;

use crate::configuration::ConfigError;
use crate::configuration::env::{DAY, Env, HOUR, Period, parse_period, parse_within, seconds};

#[derive(Clone, Copy, Debug)]
pub struct SessionSettings {
    /// A plain login's lifetime.
    pub ttl: Period,
    /// A remember-me login's lifetime.
    pub remember_ttl: Period,
    /// Inactivity after which a non-remembered session ends.
    pub idle_ttl: Period,
    /// `SESSION_CACHE_CAPACITY`: how many validated sessions each instance
    /// keeps in memory (0: none).
    pub cache_capacity: usize,
}

impl SessionSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let ttl = env.period("SESSION_TTL", seconds(24 * HOUR))?;
        let remember_ttl = env.period("REMEMBER_TTL", seconds(30 * DAY))?;
        if remember_ttl < ttl {
            return Err(ConfigError {
                variable: "REMEMBER_TTL",
                message: "must not be shorter than SESSION_TTL".into(),
            });
        }
        Ok(Self {
            ttl,
            remember_ttl,
            idle_ttl: env.parse("SESSION_IDLE_TTL", seconds(2 * HOUR), |value| {
                let period = parse_period(value)?;
                // Activity is written every quarter of it; below a second,
                // clocks and request latency decide instead of activity.
                if period.std() < Duration::from_secs(1) {
                    return Err("must be at least 1s".into());
                }
                Ok(period)
            })?,
            cache_capacity: env.parse("SESSION_CACHE_CAPACITY", 250_000, |value| {
                parse_within(value, 0..=10_000_000)
            })?,
        })
    }
}

/// What is kept, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct RetentionSettings {
    /// How long ended sessions and audit events are kept.
    pub audit_retention: Period,
    /// How often one instance purges what is past keeping.
    pub purge_interval: Period,
}

impl RetentionSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            audit_retention: env.period("AUDIT_RETENTION", seconds(90 * DAY))?,
            purge_interval: env.period("PURGE_INTERVAL", seconds(HOUR))?,
        })
    }
}
