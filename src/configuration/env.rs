//! Reading the environment: one variable at a time, each parse failure a
//! [`ConfigError`] that names its variable; and the value types and parsers
//! the settings groups share.

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use ipnet::IpNet;

use crate::configuration::ConfigError;

/// A span of time from the configuration: longer than zero and at most ten
/// years, so it fits a timestamp, a cookie `Max-Age` and a [`TimeDelta`].
/// Checked once here, it converts without failing wherever it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(Duration);

impl Period {
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

    pub fn new(duration: Duration) -> Result<Self, String> {
        if duration.is_zero() {
            Err("must be longer than zero".into())
        } else if duration > Self::MAX {
            Err("must be at most ten years".into())
        } else {
            Ok(Self(duration))
        }
    }

    pub fn from_secs(seconds: u32) -> Result<Self, String> {
        Self::new(Duration::from_secs(seconds.into()))
    }

    pub fn std(self) -> Duration {
        self.0
    }

    pub fn delta(self) -> TimeDelta {
        // At most ten years: far inside TimeDelta's range.
        TimeDelta::from_std(self.0).unwrap_or(TimeDelta::MAX)
    }

    /// Whole seconds, for `Max-Age` and `Retry-After`.
    pub fn seconds(self) -> i64 {
        self.delta().num_seconds()
    }
}

/// A default, in seconds: for the defaults in the settings groups.
pub(crate) const fn seconds(seconds: u64) -> Period {
    Period(Duration::from_secs(seconds))
}
pub(crate) const MINUTE: u64 = 60;
pub(crate) const HOUR: u64 = 60 * MINUTE;
pub(crate) const DAY: u64 = 24 * HOUR;

/// The variables, as given.
pub(crate) struct Env<'a>(pub &'a HashMap<String, String>);

impl Env<'_> {
    /// An empty value counts as unset, as `.env` templates often leave them.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn parse<T>(
        &self,
        variable: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(variable) {
            None => Ok(default),
            Some(value) => parse(value.trim()).map_err(|message| ConfigError { variable, message }),
        }
    }

    pub fn period(&self, variable: &'static str, default: Period) -> Result<Period, ConfigError> {
        self.parse(variable, default, parse_period)
    }

    pub fn boolean(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(variable, default, parse_bool)
    }
}

/// Parses a duration in humantime's notation: `90s`, `15m`, `24h`, `30d`,
/// `1.5h`, or combined, `1h 30m`.
pub fn parse_period(value: &str) -> Result<Period, String> {
    let duration = humantime::parse_duration(value).map_err(|error| {
        format!("{error}: write a number and a unit, such as 90s, 15m, 24h or 30d")
    })?;
    Period::new(duration)
}

pub(crate) fn parse_limit(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(limit @ 1..) => Ok(limit),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

/// A whole number within `range`.
pub(crate) fn parse_within<T>(value: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.parse::<T>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(format!(
            "must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// Comma-separated addresses and CIDR ranges: `10.0.0.1, 192.168.0.0/16`.
pub(crate) fn parse_networks(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{item}` is not an IP address or CIDR range"))
        })
        .collect()
}

/// Comma-separated origins, normalised to `scheme://host[:port]`. A
/// wildcard is refused: it cannot be combined with credentials.
pub(crate) fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let bad = || format!("`{item}` is not an origin such as https://app.example.com (no path, no wildcard)");
            let url = url::Url::parse(item).map_err(|_| bad())?;
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
                return Err(bad());
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

pub(crate) fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be `true` or `false`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_number_and_a_unit() {
        let seconds = |value| parse_period(value).map(|period| period.std().as_secs());
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("15m"), Ok(900));
        assert_eq!(seconds("24h"), Ok(86_400));
        assert_eq!(seconds("30d"), Ok(2_592_000));
        assert_eq!(seconds("1h 30m"), Ok(5_400));
        assert_eq!(seconds("1.5h"), Ok(5_400));
        assert_eq!(seconds("2 days"), Ok(172_800));
        for bad in [
            "",
            "10",
            "h",
            "-1h",
            "0s",
            "1 fortnight",
            "11y",
            "99999999999999999999d",
        ] {
            assert!(parse_period(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
