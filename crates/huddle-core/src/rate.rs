//! A token bucket: `rate` events per second with bursts up to `burst`.
//! Plain data with no timers; the caller supplies the time.

use std::time::Instant;

/// Allows `rate` events per second on average and `burst` at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token; `false` when the bucket is empty (the event is refused).
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50, 100, t0);
        assert_eq!((0..150).filter(|_| b.take(t0)).count(), 100, "the burst");
        assert!(!b.take(t0));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            (0..50).filter(|_| b.take(t1)).count(),
            5,
            "50/s refills 5 in 100 ms"
        );
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(
            (0..500).filter(|_| b.take(t2)).count(),
            100,
            "never more than the burst"
        );
    }
}
