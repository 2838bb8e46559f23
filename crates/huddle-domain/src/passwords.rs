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
//!
//! The argon2 memory itself is allocated once per permit and reused: at most
//! `concurrency` buffers of `memory_kib` exist, whichever blocking thread runs
//! a hash. Letting argon2 allocate per hash left each blocking thread's malloc
//! arena holding a freed 19 MiB block (glibc raises its mmap threshold after
//! the first free), so a burst of sign-ins on fresh threads kept ~250 MB.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
    /// argon2 working memory, one buffer per running hash, reused (never more
    /// than `concurrency`: a buffer is taken with a permit and put back with it).
    memory: Mutex<Vec<Vec<Block>>>,
}

impl Gate {
    /// A hash starts under `permit`, with a buffer from the pool.
    fn running(self: &Arc<Gate>, permit: OwnedSemaphorePermit) -> Running {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        Running {
            gate: self.clone(),
            memory,
            _permit: permit,
        }
    }
}

/// A running hash: its permit, its working memory, and its place in the
/// in-flight gauge.
struct Running {
    gate: Arc<Gate>,
    memory: Vec<Block>,
    _permit: OwnedSemaphorePermit,
}

impl Running {
    /// Working memory of at least `blocks` blocks (grown once, then reused).
    fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.memory.len() < blocks {
            self.memory.resize(blocks, Block::default());
        }
        &mut self.memory[..blocks]
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        self.gate
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memory);
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
                memory: Mutex::default(),
            }),
        };
        let permit = p
            .gate
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| DomainError::Internal("no hashing permit at start".into()))?;
        let mut running = p.gate.running(permit);
        p.dummy = p.hash_now("not a real password, only for timing", &mut running)?;
        Ok(p)
    }

    fn hash_now(&self, password: &str, running: &mut Running) -> DomainResult<String> {
        let fail = |e: &dyn std::fmt::Display| DomainError::Internal(format!("argon2 hash: {e}"));
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|e| fail(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                raw_salt,
                &mut out,
                running.memory(self.params.block_count()),
            )
            .map_err(|e| fail(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| fail(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` hashes to `stored` (a PHC argon2 string), computed
    /// in `running`'s memory; the comparison is constant-time ([`Output`]).
    fn verify_now(password: &str, stored: &str, running: &mut Running) -> DomainResult<bool> {
        let unreadable = |e: &dyn std::fmt::Display| {
            DomainError::Internal(format!("stored hash unreadable: {e}"))
        };
        let parsed = PasswordHash::new(stored).map_err(|e| unreadable(&e))?;
        let params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| unreadable(&e))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| unreadable(&e))?,
            None => Version::default(),
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(unreadable(&"no salt or hash"));
        };
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| unreadable(&e))?;
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                raw_salt,
                &mut out,
                running.memory(blocks),
            )
            .map_err(|e| unreadable(&e))?;
        Ok(Output::new(&out).is_ok_and(|o| o == expected))
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
        Some(gate.running(permit))
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
            let mut running = running;
            this.hash_now(&password, &mut running)
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
            let mut running = running;
            let known = hash.is_some();
            let stored = hash.as_deref().unwrap_or(&this.dummy);
            let ok = Passwords::verify_now(&password, stored, &mut running)?;
            Ok(ok && known)
        })
        .await
        .map_err(|e| DomainError::Internal(format!("verify task: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn passwords(concurrency: usize) -> Passwords {
        Passwords::new(
            HashCost {
                memory_kib: 256,
                iterations: 1,
            },
            HashBound {
                concurrency,
                queue: 64,
                max_wait: Duration::from_secs(30),
            },
            Arc::default(),
        )
        .expect("passwords")
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_both_ways() {
        let p = passwords(2);
        // Ours verifies with the reference implementation...
        let ours = p.hash("correct horse".into()).await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC");
        let reference = Argon2::default();
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(reference.verify_password(b"wrong", &parsed).is_err());
        // ...and hashes stored by the reference (every existing account) verify with ours.
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(512, 2, 1, None).expect("params"),
        )
        .hash_password(b"battery staple", &salt)
        .expect("reference hash")
        .to_string();
        assert!(p
            .verify("battery staple".into(), Some(stored.clone()))
            .await
            .expect("verify"));
        assert!(!p
            .verify("battery stapler".into(), Some(stored))
            .await
            .expect("verify"));
        assert!(!p.verify("anything".into(), None).await.expect("dummy"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_reused_never_more_than_the_concurrency() {
        let p = passwords(3);
        let all: Vec<_> = (0..24)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move { p.hash(format!("password {i}")).await })
            })
            .collect();
        for h in all {
            h.await.expect("task").expect("hash");
        }
        let buffers = p.gate.memory.lock().expect("pool").len();
        assert!(
            (1..=3).contains(&buffers),
            "{buffers} argon2 buffers for a concurrency of 3"
        );
        assert_eq!(p.stats().in_flight, 0);
    }
}
