//! Per-sender token buckets. Sans-IO: time is passed in, so tests need no clock.

use std::collections::HashMap;

/// A token bucket for each key.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: HashMap<K, (f64, u64)>,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: HashMap::new(),
        }
    }
    /// Takes one token for `key` at `now_ms`; `false` if the bucket is empty.
    pub fn allow(&mut self, key: K, now_ms: u64) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        self.allow_with(key, now_ms, rate, burst)
    }
    /// As [`RateLimiter::allow`], with this key's own rate and burst.
    pub fn allow_with(&mut self, key: K, now_ms: u64, rate: f64, burst: f64) -> bool {
        let burst = burst.max(1.0);
        let (tokens, last) = self.buckets.entry(key).or_insert((burst, now_ms));
        let elapsed = now_ms.saturating_sub(*last) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * rate).min(burst);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_rate() {
        let mut rl = RateLimiter::new(10.0, 3.0);
        assert!((0..3).all(|_| rl.allow("a", 0)));
        assert!(!rl.allow("a", 0), "burst exhausted");
        assert!(rl.allow("b", 0), "other senders unaffected");
        assert!(!rl.allow("a", 50), "half a token is not enough");
        assert!(rl.allow("a", 100), "one token after 100 ms at 10/s");
    }
}
