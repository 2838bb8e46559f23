//! Sliding-window attempt counters keyed by account or address.
//!
//! Memory is bounded: at most `max_keys` keys are tracked. When full, expired
//! keys are purged first, then the key with the oldest latest attempt is evicted.
//! A std `Mutex` guards the map; it is never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `limit` attempts per key within any `window`.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    max_keys: usize,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            max_keys: max_keys.max(1),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `key` used up its attempts; records nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = map.get_mut(key) else {
            return Ok(());
        };
        self.expire(q, now);
        if q.len() as u32 >= self.limit {
            let oldest = q.front().copied().unwrap_or(now);
            return Err((oldest + self.window)
                .saturating_duration_since(now)
                .max(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// Records an attempt for `key`.
    pub fn record(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= self.max_keys {
                if let Some(victim) = map
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&victim);
                }
            }
        }
        let q = map.entry(key.to_owned()).or_default();
        self.expire(q, now);
        q.push_back(now);
        while q.len() > self.limit as usize {
            q.pop_front();
        }
    }

    /// Checks, then records: for limits that count every attempt.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        self.check(key)?;
        self.record(key);
        Ok(())
    }

    /// Forgets `key` (e.g. after a successful sign-in).
    pub fn reset(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, q: &mut VecDeque<Instant>, now: Instant) {
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
    }
}

/// A token bucket per key (`rate` per second, `burst` at once), for limits
/// on a steady flow rather than on attempts in a window.
///
/// Memory is bounded: at most `max_keys` buckets. When full, buckets that have
/// refilled completely (indistinguishable from new ones) are dropped first,
/// then the one used least recently. A std `Mutex` guards the map; it is never
/// held across an `.await`.
pub struct KeyedBuckets {
    rate: u32,
    burst: u32,
    max_keys: usize,
    buckets: Mutex<HashMap<String, (huddle_core::TokenBucket, Instant)>>,
}

impl KeyedBuckets {
    pub fn new(rate: u32, burst: u32, max_keys: usize) -> KeyedBuckets {
        KeyedBuckets {
            rate: rate.max(1),
            burst: burst.max(1),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`; `Err(retry_after)` when its bucket is empty.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            // Full after burst / rate seconds of quiet: as good as new.
            let full = Duration::from_secs_f64(f64::from(self.burst) / f64::from(self.rate));
            map.retain(|_, (_, last)| now.duration_since(*last) < full);
            if map.len() >= self.max_keys {
                if let Some(victim) = map
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&victim);
                }
            }
        }
        let (bucket, last) = map.entry(key.to_owned()).or_insert_with(|| {
            (
                huddle_core::TokenBucket::new(self.rate, self.burst, now),
                now,
            )
        });
        *last = now;
        if bucket.take(now) {
            Ok(())
        } else {
            // One token refills in 1 / rate seconds; Retry-After is whole seconds.
            Err(Duration::from_secs(1))
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_limit_per_key_and_stay_bounded() {
        let b = KeyedBuckets::new(1, 3, 10);
        assert_eq!((0..5).filter(|_| b.take("a").is_ok()).count(), 3);
        assert!(b.take("b").is_ok(), "another key has its own bucket");
        for i in 0..1000 {
            let _ = b.take(&format!("k{i}"));
        }
        assert!(b.len() <= 10);
    }

    #[test]
    fn limits_per_key() {
        let rl = RateLimiter::new(3, Duration::from_secs(60), 10);
        for _ in 0..3 {
            assert!(rl.hit("a").is_ok());
        }
        let retry = rl.hit("a").expect_err("limited");
        assert!(retry > Duration::from_secs(50) && retry <= Duration::from_secs(60));
        assert!(rl.hit("b").is_ok());
        rl.reset("a");
        assert!(rl.hit("a").is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let rl = RateLimiter::new(3, Duration::from_secs(60), 100);
        for i in 0..10_000 {
            rl.record(&format!("k{i}"));
        }
        assert!(rl.len() <= 100);
    }

    #[test]
    fn window_expires() {
        let rl = RateLimiter::new(1, Duration::from_millis(0), 10);
        assert!(rl.hit("a").is_ok());
        assert!(rl.hit("a").is_ok());
    }
}
