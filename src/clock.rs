//! The time as authd's services see it: the system's, unless a test has
//! moved it forward, so that lifetimes, idle timeouts and throttle windows
//! can be tested without waiting them out. Nothing in production moves it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// How far ahead of the system's time this clock is, in microseconds.
    ahead: Arc<AtomicI64>,
}

impl Clock {
    /// Now, to the microsecond: what Postgres keeps, so that what a
    /// response says agrees with what is read back.
    pub fn now(&self) -> DateTime<Utc> {
        let ahead = TimeDelta::microseconds(self.ahead.load(Ordering::Acquire));
        (Utc::now() + ahead).trunc_subsecs(6)
    }

    /// Moves this clock (and every service that shares it) forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.ahead.fetch_add(micros, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.now() - before >= TimeDelta::seconds(3600));
    }
}
