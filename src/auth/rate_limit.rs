//! A per-identity request rate limit: a token bucket per key (user id), refilled continuously at
//! `per_minute / 60` tokens a second, holding at most `per_minute` tokens.
//!
//! Built to be cheap on the hot path and bounded in memory: keys are spread over a fixed number of shards,
//! each a mutex-guarded map, so concurrent requests rarely contend; a shard holds at most
//! `max_keys_per_shard` keys. When a full shard meets a new key it first drops buckets that
//! have refilled completely (forgetting them changes nothing) and, if every key is still active, starts the
//! shard afresh — a flood of distinct identities can cost some accuracy, never unbounded memory.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;
const DEFAULT_MAX_KEYS_PER_SHARD: usize = 4096;

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateDecision {
    Allowed,
    /// Over the limit; one token is back after this many whole seconds (at least 1).
    Limited {
        retry_after_secs: u64,
    },
}

/// Token buckets keyed by identity.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    capacity: f64,
    tokens_per_sec: f64,
    max_keys_per_shard: usize,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Box<str>, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per key per minute (bursts up to `per_minute`).
    /// `per_minute` must be at least 1.
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        Self::with_shard_capacity(per_minute, DEFAULT_MAX_KEYS_PER_SHARD)
    }

    /// Like [`RateLimiter::per_minute`] with an explicit bound on keys per shard (tests use small ones).
    pub(crate) fn with_shard_capacity(per_minute: u32, max_keys_per_shard: usize) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            capacity: f64::from(per_minute),
            tokens_per_sec: f64::from(per_minute) / 60.0,
            max_keys_per_shard: max_keys_per_shard.max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `key` now.
    pub(crate) fn check(&self, key: &str) -> RateDecision {
        self.check_at(key, Instant::now())
    }

    /// Takes one token for `key` at `now` (tests pass a synthetic clock).
    pub(crate) fn check_at(&self, key: &str, now: Instant) -> RateDecision {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut buckets = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            return self.take(bucket, now);
        }
        if buckets.len() >= self.max_keys_per_shard {
            self.evict(&mut buckets, now);
        }
        let mut bucket = Bucket {
            tokens: self.capacity,
            updated: now,
        };
        let decision = self.take(&mut bucket, now);
        buckets.insert(key.into(), bucket);
        decision
    }

    /// Number of keys currently tracked (all shards).
    #[cfg(test)]
    pub(crate) fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn refill(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.tokens_per_sec).min(self.capacity)
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> RateDecision {
        let tokens = self.refill(bucket, now);
        bucket.updated = now.max(bucket.updated);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            RateDecision::Allowed
        } else {
            bucket.tokens = tokens;
            // Same as (1 - tokens) / tokens_per_sec, but exact for whole-second answers.
            let wait_secs = (1.0 - tokens) * 60.0 / self.capacity;
            RateDecision::Limited {
                retry_after_secs: wait_secs.ceil().max(1.0) as u64,
            }
        }
    }

    fn evict(&self, buckets: &mut HashMap<Box<str>, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.refill(bucket, now) < self.capacity);
        if buckets.len() >= self.max_keys_per_shard {
            tracing::warn!(
                keys = buckets.len(),
                "rate limiter shard full of active identities; resetting it"
            );
            buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allows_a_burst_up_to_the_limit_then_limits() {
        let limiter = RateLimiter::per_minute(3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("ada", now), RateDecision::Allowed);
        }
        assert_eq!(
            limiter.check_at("ada", now),
            RateDecision::Limited { retry_after_secs: 20 }
        );
    }

    #[test]
    fn keys_are_independent() {
        let limiter = RateLimiter::per_minute(1);
        let now = Instant::now();
        assert_eq!(limiter.check_at("ada", now), RateDecision::Allowed);
        assert_eq!(limiter.check_at("bob", now), RateDecision::Allowed);
        assert!(matches!(limiter.check_at("ada", now), RateDecision::Limited { .. }));
    }

    #[test]
    fn tokens_refill_over_time() {
        let limiter = RateLimiter::per_minute(60); // one a second
        let start = Instant::now();
        for _ in 0..60 {
            assert_eq!(limiter.check_at("ada", start), RateDecision::Allowed);
        }
        assert_eq!(
            limiter.check_at("ada", start),
            RateDecision::Limited { retry_after_secs: 1 }
        );
        assert_eq!(
            limiter.check_at("ada", start + Duration::from_millis(1500)),
            RateDecision::Allowed
        );
        assert!(matches!(
            limiter.check_at("ada", start + Duration::from_millis(1500)),
            RateDecision::Limited { .. }
        ));
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let limiter = RateLimiter::per_minute(1);
        let now = Instant::now();
        limiter.check_at("ada", now);
        assert_eq!(
            limiter.check_at("ada", now),
            RateDecision::Limited { retry_after_secs: 60 }
        );
        assert_eq!(
            limiter.check_at("ada", now + Duration::from_millis(59_500)),
            RateDecision::Limited { retry_after_secs: 1 }
        );
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_are_evicted_first() {
        let limiter = RateLimiter::with_shard_capacity(10, 2);
        let start = Instant::now();
        for i in 0..1000 {
            limiter.check_at(&format!("user-{i}"), start);
        }
        assert!(limiter.tracked_keys() <= SHARDS * 2, "{}", limiter.tracked_keys());
        // After a full refill period every old key is idle and makes room without a reset.
        let later = start + Duration::from_secs(61);
        limiter.check_at("fresh", later);
        assert!(limiter.tracked_keys() <= SHARDS * 2);
    }

    #[test]
    fn a_clock_going_backwards_does_not_panic_or_grant_extra() {
        let limiter = RateLimiter::per_minute(1);
        let now = Instant::now() + Duration::from_secs(10);
        assert_eq!(limiter.check_at("ada", now), RateDecision::Allowed);
        assert!(matches!(
            limiter.check_at("ada", now - Duration::from_secs(5)),
            RateDecision::Limited { .. }
        ));
    }

    proptest! {
        #[test]
        fn never_allows_more_than_the_limit_at_one_instant(limit in 1u32..50, requests in 0usize..120) {
            let limiter = RateLimiter::per_minute(limit);
            let now = Instant::now();
            let allowed = (0..requests).filter(|_| limiter.check_at("k", now) == RateDecision::Allowed).count();
            prop_assert_eq!(allowed, requests.min(limit as usize));
        }
    }
}
