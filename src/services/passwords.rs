//! bcrypt hashing, always on the hashing threads ([`HashPool`]): at cost 12
//! one hash takes a quarter of a second, which would stall every request
//! sharing an async worker.
//!
//! bcrypt reads at most 72 bytes. The crate's `non_truncating_*` functions
//! refuse 72 bytes too (they count the terminating NUL, which bcrypt drops
//! at that length), so the 72-byte limit is enforced here instead, and the
//! plain functions only ever see passwords they use in full.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random_token;
use crate::domain::{PASSWORD_MAX_BYTES as MAX_BYTES, Password, PasswordHash};
use crate::services::hash_pool::{HashPool, PoolError};

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash at the configured cost that no password matches. Logins for
    /// unknown users verify against it, so they take as long as real ones
    /// and timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
    pool: HashPool,
}

impl From<PoolError> for HashError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Full => Self::Busy(error),
            PoolError::Gone => Self::Cancelled,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hashing queue is full: clients get 503 and may retry.
    #[error(transparent)]
    Busy(PoolError),
    /// A stored hash bcrypt cannot read, or a cost it refuses: a fault to
    /// look into, never a wrong password.
    #[error("bcrypt failed: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("a password longer than {MAX_BYTES} bytes reached the hasher")]
    TooLong,
    #[error("the blocking thread pool is shutting down")]
    Cancelled,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads. Nothing is hashed on the way: the
    /// dummy hash is a real hash at cost 4 relabelled with the configured
    /// cost (verifying against it costs a verify at that cost, and matches
    /// nothing).
    pub fn start(cost: u32, threads: usize) -> Result<Self, bcrypt::BcryptError> {
        let cheap = bcrypt::hash(random_token(), 4)?;
        let dummy_hash: Arc<str> = format!("$2b${cost:02}${}", &cheap[7..]).into();
        let hasher = Self {
            cost,
            dummy_hash,
            pool: HashPool::start(threads),
        };
        Ok(hasher)
    }

    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.hash_at_cost(password.expose().to_owned().into()).await
    }

    /// True when `hash` was made at a lower cost than configured now, so the
    /// next successful login should replace it.
    pub fn needs_upgrade(&self, hash: &PasswordHash) -> bool {
        self.is_cheaper(hash.expose())
    }

    fn is_cheaper(&self, hash: &str) -> bool {
        hash.parse::<bcrypt::HashParts>()
            .is_ok_and(|parts| parts.get_cost() < self.cost)
    }

    /// Re-hashes a password that just verified against an older hash. It was
    /// accepted under the policy of its day, so the policy is not re-applied.
    pub async fn rehash(&self, verified: SecretString) -> Result<PasswordHash, HashError> {
        self.hash_at_cost(verified).await
    }

    async fn hash_at_cost(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        if password.expose_secret().len() > MAX_BYTES {
            return Err(HashError::TooLong);
        }
        let cost = self.cost;
        let hashed = self
            .pool
            .run(move || bcrypt::hash(password.expose_secret(), cost))
            .await?;
        Ok(PasswordHash::new(hashed?))
    }

    /// True when `candidate` matches `hash`. With no hash (unknown user) it
    /// does the same work against the dummy hash and answers false. A
    /// candidate over 72 bytes never matches: no such password was set, and
    /// bcrypt would compare only its first 72 bytes. A hash bcrypt cannot
    /// read is an error, not a mismatch: it must not pass for a wrong
    /// password and lock its user out without a trace.
    #[tracing::instrument(skip_all)]
    pub async fn verify(
        &self,
        candidate: SecretString,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.map_or_else(
            || self.dummy_hash.to_string(),
            |hash| hash.expose().to_owned(),
        );
        // A hash from before a `BCRYPT_COST` increase is quicker to check:
        // a verify against the dummy beside it makes its user take as long
        // as anyone else, at any load, so they are not told apart from an
        // unknown user (until the login upgrades the hash).
        let pad = self.is_cheaper(&hash).then(|| self.dummy_hash.clone());
        let fits = candidate.expose_secret().len() <= MAX_BYTES;
        let matched = self
            .pool
            .run(move || {
                if let Some(dummy) = pad {
                    let _ = bcrypt::verify(candidate.expose_secret(), &dummy);
                }
                bcrypt::verify(candidate.expose_secret(), &hash)
            })
            .await??;
        Ok(known && fits && matched)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use secrecy::SecretString;

    use super::PasswordHasher;
    use crate::domain::PasswordHash;

    /// A hash older than the configured cost still takes a verify's time.
    /// Each is timed at its fastest of five, so that a busy machine (other
    /// tests hash too) cannot make one look quicker than it is.
    #[tokio::test]
    async fn an_old_cheap_hash_takes_as_long_as_a_current_one() {
        let hasher = PasswordHasher::start(10, 1).unwrap();
        let current = PasswordHash::new(bcrypt::hash("correct horse", 10).unwrap());
        let old = PasswordHash::new(bcrypt::hash("correct horse", 4).unwrap());
        let candidate = || SecretString::from("correct horse".to_owned());
        let mut fastest = [Duration::MAX; 2];
        for _ in 0..5 {
            for (hash, fastest) in [&current, &old].into_iter().zip(&mut fastest) {
                let started = Instant::now();
                assert!(
                    hasher
                        .verify(candidate(), Some(hash.clone()))
                        .await
                        .unwrap()
                );
                *fastest = (*fastest).min(started.elapsed());
            }
        }
        let [current_took, old_took] = fastest;
        assert!(
            old_took * 2 >= current_took,
            "{old_took:?} against {current_took:?}"
        );
    }
}
