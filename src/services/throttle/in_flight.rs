//! A cap on one client's password checks in flight, ahead of the hash
//! queue: a client that sends many at once (say, logins for random
//! unknown users, each costing a bcrypt verify) waits for its own, and
//! cannot fill the queue that everyone's logins share. Per instance, in
//! memory: it is about this instance's hashing threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Checks in flight, per client key.
#[derive(Debug)]
pub struct InFlight {
    limit: u32,
    counts: Mutex<HashMap<String, u32>>,
}

/// A check in flight; its place is given back when this drops.
#[derive(Debug)]
pub struct Slot {
    in_flight: Arc<InFlight>,
    key: String,
}

impl InFlight {
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            counts: Mutex::default(),
        })
    }

    /// A place for one more check by the client `key`, unless it has
    /// `limit` in flight already.
    pub fn enter(self: &Arc<Self>, key: String) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key.clone()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            in_flight: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_places_back() {
        let in_flight = InFlight::new(2);
        let first = in_flight.enter("a".into()).unwrap();
        let _second = in_flight.enter("a".into()).unwrap();
        assert!(in_flight.enter("a".into()).is_none());
        assert!(in_flight.enter("b".into()).is_some(), "another client");
        drop(first);
        assert!(in_flight.enter("a".into()).is_some());
    }
}
