//! argon2id password hashing, run on the blocking pool so that a burst of
//! sign-ins cannot stall the async workers.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::{DomainError, DomainResult};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// Memory per hash in KiB (default 19,456 = 19 MiB, the OWASP minimum).
    pub memory_kib: u32,
    /// Passes (default 2).
    pub iterations: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: 19_456,
            iterations: 2,
        }
    }
}

/// Hashes and verifies passwords with fixed parameters.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when an email is unknown so
    /// that sign-in takes the same time whether or not the account exists.
    dummy: String,
}

impl Passwords {
    pub fn new(cost: HashCost) -> DomainResult<Passwords> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| DomainError::Internal(format!("argon2 parameters: {e}")))?;
        let mut p = Passwords {
            params,
            dummy: String::new(),
        };
        p.dummy = p.hash_now("not a real password, only for timing")?;
        Ok(p)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &str) -> DomainResult<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Internal(format!("argon2 hash: {e}")))
    }

    /// A PHC-format argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> DomainResult<String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_now(&password))
            .await
            .map_err(|e| DomainError::Internal(format!("hash task: {e}")))?
    }

    /// Whether `password` matches `hash`; `None` verifies against a dummy (false).
    pub async fn verify(&self, password: String, hash: Option<String>) -> DomainResult<bool> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let stored = hash.unwrap_or_else(|| this.dummy.clone());
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| DomainError::Internal(format!("stored hash unreadable: {e}")))?;
            let ok = this
                .argon()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(ok && known)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("verify task: {e}")))?
    }
}
