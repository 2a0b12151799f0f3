//! bcrypt hashing, always on the blocking thread pool: at cost 12 one hash
//! takes a quarter of a second, which would stall every request sharing an
//! async worker.

use std::sync::Arc;

use actix_web::web;

use crate::domain::Password;

#[derive(Clone)]
pub struct Passwords {
    cost: u32,
    /// A hash of a random password at the configured cost. Logins for
    /// unknown users verify against it, so they take as long as real ones
    /// and timing does not reveal which usernames exist.
    dummy_hash: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

impl Passwords {
    /// Blocking: computes the dummy hash. Call once at start-up.
    pub fn new(cost: u32) -> Result<Self, bcrypt::BcryptError> {
        let random = crate::sessions::random_token();
        Ok(Self {
            cost,
            dummy_hash: bcrypt::non_truncating_hash(random, cost)?.into(),
        })
    }

    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.hash_at_cost(password.expose().to_owned()).await
    }

    /// True when `hash` was made at a lower cost than configured now, so the
    /// next successful login should replace it.
    pub fn needs_upgrade(&self, hash: &str) -> bool {
        hash.parse::<bcrypt::HashParts>()
            .is_ok_and(|parts| parts.get_cost() < self.cost)
    }

    /// Re-hashes a password that just verified against an older hash. It was
    /// accepted under the policy of its day, so the policy is not re-applied.
    pub async fn rehash(&self, verified: String) -> Result<String, HashError> {
        self.hash_at_cost(verified).await
    }

    async fn hash_at_cost(&self, password: String) -> Result<String, HashError> {
        let cost = self.cost;
        web::block(move || bcrypt::non_truncating_hash(password, cost))
            .await
            .map_err(|_| HashError)?
            .map_err(|_| HashError)
    }

    /// True when `candidate` matches `hash`. With no hash (unknown user) it
    /// does the same work against the dummy hash and answers false. Inputs
    /// over 72 bytes never match: they could not have been set.
    pub async fn verify(&self, candidate: String, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matched =
            web::block(move || bcrypt::non_truncating_verify(&candidate, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        known && matched
    }
}
