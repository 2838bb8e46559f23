//! argon2id password hashing, run on the blocking pool so that a burst of
//! sign-ins cannot stall the async workers, and bounded so that it cannot
//! exhaust memory either.
//!
//! Each hash takes `memory_kib` of memory (19 MiB by default) for as long as it
//! runs. Without a bound, the blocking pool (up to 512 threads) would run as
//! many at once as clients ask for: 128 parallel sign-ups took 2.4 GB. So at
//! most `concurrency` hashes run at once (a semaphore, default the number of
//! CPUs: more would not finish sooner); at most `queue` more callers wait for a
//! permit, each for at most `max_wait`; anyone else is refused at once with
//! [`DomainError::Unavailable`] (503, `Retry-After`), counted as
//! `Refusal::HashBusy`. The permit moves into the blocking task, so a client
//! that hangs up mid-hash still holds its slot until the hash really ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// How many hashes run at once, and how many callers may wait for one.
#[derive(Debug, Clone, Copy)]
pub struct HashBound {
    /// Hashes running at once (default: the number of CPUs).
    pub concurrency: usize,
    /// Callers waiting for a permit beyond those running (default 2 × concurrency).
    pub queue: usize,
    /// Longest a caller waits for a permit (default 2 s).
    pub max_wait: Duration,
}

impl Default for HashBound {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        HashBound {
            concurrency: cpus,
            queue: 2 * cpus,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// The bound shared by every clone of [`Passwords`], and its gauges.
struct Gate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    refusals: Arc<huddle_core::Refusals>,
    queue: usize,
    max_wait: Duration,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// A running hash: its permit, and its place in the in-flight gauge.
struct Running {
    gate: Arc<Gate>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Leaves the waiting count however the wait ends (permit, timeout, cancel).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hashes and verifies passwords with fixed parameters, at most
/// [`HashBound::concurrency`] at once.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when an email is unknown so
    /// that sign-in takes the same time whether or not the account exists.
    dummy: String,
    gate: Arc<Gate>,
}

/// Gauges of the hashing bound, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct HashStats {
    /// Hashes running now.
    pub in_flight: usize,
    /// The most that ever ran at once since start.
    pub peak: usize,
    /// Callers waiting for a permit now.
    pub waiting: usize,
    /// The bound on `in_flight`.
    pub concurrency: usize,
}

impl Passwords {
    /// Refusals are counted in `refusals` (`Refusal::HashBusy`).
    pub fn new(
        cost: HashCost,
        bound: HashBound,
        refusals: Arc<huddle_core::Refusals>,
    ) -> DomainResult<Passwords> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| DomainError::Internal(format!("argon2 parameters: {e}")))?;
        let concurrency = bound.concurrency.max(1);
        let mut p = Passwords {
            params,
            dummy: String::new(),
            gate: Arc::new(Gate {
                permits: Arc::new(Semaphore::new(concurrency)),
                concurrency,
                refusals,
                queue: bound.queue,
                max_wait: bound.max_wait,
                waiting: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
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

    /// The gauges of the bound.
    pub fn stats(&self) -> HashStats {
        HashStats {
            in_flight: self.gate.in_flight.load(Ordering::Relaxed),
            peak: self.gate.peak.load(Ordering::Relaxed),
            waiting: self.gate.waiting.load(Ordering::Relaxed),
            concurrency: self.gate.concurrency,
        }
    }

    /// A permit to run one hash: at once, or after a bounded wait in a bounded
    /// queue; `None` when the queue is full or the wait ran out.
    async fn permit(&self) -> Option<Running> {
        let gate = &self.gate;
        let permit = match gate.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if gate.waiting.fetch_add(1, Ordering::Relaxed) >= gate.queue {
                    gate.waiting.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                let _waiting = Waiting(&gate.waiting);
                tokio::time::timeout(gate.max_wait, gate.permits.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let now = gate.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        gate.peak.fetch_max(now, Ordering::Relaxed);
        Some(Running {
            gate: gate.clone(),
            _permit: permit,
        })
    }

    /// The permit, or the refusal a client sees (503, retry in a second), counted.
    async fn admit(&self) -> DomainResult<Running> {
        match self.permit().await {
            Some(running) => Ok(running),
            None => {
                self.gate.refusals.count(huddle_core::Refusal::HashBusy);
                Err(DomainError::Unavailable {
                    retry_after_secs: 1,
                    reason: huddle_core::Refusal::HashBusy,
                })
            }
        }
    }

    /// A PHC-format argon2id hash of `password`. [`DomainError::Unavailable`]
    /// when the bound is reached.
    pub async fn hash(&self, password: String) -> DomainResult<String> {
        let running = self.admit().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
            this.hash_now(&password)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("hash task: {e}")))?
    }

    /// Whether `password` matches `hash`; `None` verifies against a dummy (false).
    /// [`DomainError::Unavailable`] when the bound is reached.
    pub async fn verify(&self, password: String, hash: Option<String>) -> DomainResult<bool> {
        let running = self.admit().await?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
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
