//! A token bucket per client address for the option endpoints (which write ceremony state);
//! `extract::RateLimited` takes a token before the handler runs.
//!
//! The table is bounded: at most `capacity` addresses, spread over shards that each have their
//! own lock, and each shard evicts its least recently seen address when full — in O(1)
//! amortised, never a scan of the table under a lock. A bucket that has refilled is the same as
//! no bucket, so evicting idle clients loses nothing; under a flood of new addresses the least
//! recently seen ones are forgotten and start again with a full bucket.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of the table, each behind its own lock.
const SHARDS: usize = 16;
/// Addresses remembered at most (over all shards).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// One address's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// How many times the address was seen: an entry in the recency queue whose stamp differs
    /// is stale.
    stamp: u64,
}

/// One shard: the buckets and a queue of (address, stamp) in the order they were last seen.
#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    recency: VecDeque<(IpAddr, u64)>,
}

impl Shard {
    /// Forgets the least recently seen address.
    fn evict_one(&mut self) {
        while let Some((ip, stamp)) = self.recency.pop_front() {
            if self.buckets.get(&ip).is_some_and(|b| b.stamp == stamp) {
                self.buckets.remove(&ip);
                return;
            }
        }
    }

    /// Drops stale queue entries once they outnumber the live ones, so the queue stays within
    /// twice the shard's size.
    fn compact(&mut self) {
        if self.recency.len() > 2 * self.buckets.len() + 16 {
            let buckets = &self.buckets;
            self.recency
                .retain(|(ip, stamp)| buckets.get(ip).is_some_and(|b| b.stamp == *stamp));
        }
    }
}

/// A token bucket per client address, bounded in memory.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    per_shard: usize,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` at once and `per_sec` sustained; `per_sec == 0` disables it.
    pub fn new(burst: u32, per_sec: u32) -> Self {
        Self::with_capacity(burst, per_sec, DEFAULT_CAPACITY)
    }

    /// The same, remembering at most `capacity` addresses (at least one per shard).
    pub fn with_capacity(burst: u32, per_sec: u32, capacity: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_sec),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// How many addresses are remembered now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).buckets.len())
            .sum()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a token for `ip`, or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        // The hasher is keyed at random per process, so its low byte spreads addresses evenly.
        let hash = self.hasher.hash_one(ip).to_le_bytes();
        let index = usize::from(hash[0]) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return Ok(());
        };
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if !shard.buckets.contains_key(&ip) && shard.buckets.len() >= self.per_shard {
            shard.evict_one();
        }
        let burst = self.burst;
        let bucket = shard.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
            stamp: 0,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.last).as_secs_f64() * self.per_sec)
            .min(burst);
        bucket.last = now;
        bucket.stamp = bucket.stamp.wrapping_add(1);
        let stamp = bucket.stamp;
        let answer = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        };
        shard.recency.push_back((ip, stamp));
        shard.compact();
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn addr(i: u64) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64 | 1))
    }

    #[test]
    fn limits_each_address() {
        let limiter = RateLimiter::new(3, 1);
        for _ in 0..3 {
            assert!(limiter.check(addr(1)).is_ok());
        }
        let wait = limiter.check(addr(1)).unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
        // Another address has its own bucket.
        assert!(limiter.check(addr(2)).is_ok());
        assert!(RateLimiter::new(1, 0).check(addr(1)).is_ok());
    }

    /// Security finding 11: a flood of new addresses (one IPv6 /64 has 2^64) neither grows the
    /// table without bound nor makes each new address scan it.
    #[test]
    fn a_flood_of_addresses_stays_bounded_and_fast() {
        let limiter = RateLimiter::with_capacity(5, 1, 4096);
        let started = Instant::now();
        for i in 0..300_000 {
            assert!(limiter.check(addr(i)).is_ok());
        }
        assert!(limiter.len() <= 4096, "{} addresses kept", limiter.len());
        for shard in &limiter.shards {
            let shard = shard.lock().unwrap();
            assert!(shard.recency.len() <= 2 * shard.buckets.len() + 16 + 1);
        }
        // 300k checks; an O(n) scan per new address past the cap would take minutes.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        // A client seen recently keeps its (empty) bucket while strangers come and go.
        let busy = addr(u64::MAX);
        for _ in 0..5 {
            assert!(limiter.check(busy).is_ok());
        }
        assert!(limiter.check(busy).is_err());
        for i in 0..100 {
            assert!(limiter.check(addr(1_000_000 + i)).is_ok());
            assert!(
                limiter.check(busy).is_err(),
                "forgotten after {i} newcomers"
            );
        }
    }
}
