//! bcrypt hashing, always on the blocking thread pool: at cost 12 one hash
//! takes a quarter of a second, which would stall every request sharing an
//! async worker.
//!
//! bcrypt reads at most 72 bytes. The crate's `non_truncating_*` functions
//! refuse 72 bytes too (they count the terminating NUL, which bcrypt drops
//! at that length), so the 72-byte limit is enforced here instead, and the
//! plain functions only ever see passwords they use in full.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random_token;
use crate::domain::{PASSWORD_MAX_BYTES as MAX_BYTES, Password};

#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    /// A hash of a random password at the configured cost. Logins for
    /// unknown users verify against it, so they take as long as real ones
    /// and timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
    /// How long one verify at the configured cost takes here. Every verify
    /// lasts at least this long, so that a user whose hash predates a
    /// `BCRYPT_COST` increase is not told apart from an unknown one.
    verify_floor: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
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
    /// Blocking: computes the dummy hash and times a verify. Call once at
    /// start-up.
    pub fn new(cost: u32) -> Result<Self, bcrypt::BcryptError> {
        let dummy_hash: Arc<str> = bcrypt::hash(random_token(), cost)?.into();
        let started = Instant::now();
        bcrypt::verify("timing probe", &dummy_hash)?;
        Ok(Self {
            cost,
            dummy_hash,
            verify_floor: started.elapsed(),
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        self.hash_at_cost(password.expose().to_owned().into()).await
    }

    /// True when `hash` was made at a lower cost than configured now, so the
    /// next successful login should replace it.
    pub fn needs_upgrade(&self, hash: &str) -> bool {
        hash.parse::<bcrypt::HashParts>()
            .is_ok_and(|parts| parts.get_cost() < self.cost)
    }

    /// Re-hashes a password that just verified against an older hash. It was
    /// accepted under the policy of its day, so the policy is not re-applied.
    pub async fn rehash(&self, verified: SecretString) -> Result<String, HashError> {
        self.hash_at_cost(verified).await
    }

    async fn hash_at_cost(&self, password: SecretString) -> Result<String, HashError> {
        if password.expose_secret().len() > MAX_BYTES {
            return Err(HashError::TooLong);
        }
        let cost = self.cost;
        let hashed = web::block(move || bcrypt::hash(password.expose_secret(), cost))
            .await
            .map_err(|_| HashError::Cancelled)?;
        Ok(hashed?)
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
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        let started = Instant::now();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let fits = candidate.expose_secret().len() <= MAX_BYTES;
        let verified = web::block(move || bcrypt::verify(candidate.expose_secret(), &hash)).await;
        if let Some(rest) = self.verify_floor.checked_sub(started.elapsed()) {
            actix_web::rt::time::sleep(rest).await;
        }
        let matched = verified.map_err(|_| HashError::Cancelled)??;
        Ok(known && fits && matched)
    }
}
