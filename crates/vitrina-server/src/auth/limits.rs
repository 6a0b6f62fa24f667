//! Rate limits: a token bucket per client address and one per key, sized by the key's
//! scope (`[rate_limits]`). A request over either limit gets 429 with `Retry-After`.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use vitrina_core::keys::Scope;

/// The `[rate_limits]` section: requests per second and burst sizes; a rate of 0 means no
/// limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per second from one client address, with or without a key.
    pub per_address: u32,
    pub per_address_burst: u32,
    /// Requests per second of one `track` key.
    pub track: u32,
    pub track_burst: u32,
    /// Requests per second of one `read` key.
    pub read: u32,
    pub read_burst: u32,
    /// Requests per second of one `admin` key.
    pub admin: u32,
    pub admin_burst: u32,
    /// Client addresses remembered at most; idle ones are forgotten first.
    pub max_addresses: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_address: 0,
            per_address_burst: 0,
            track: 20_000,
            track_burst: 40_000,
            read: 20_000,
            read_burst: 40_000,
            admin: 100,
            admin_burst: 200,
            max_addresses: 100_000,
        }
    }
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

/// The buckets.
pub struct Limiter {
    address_quota: Option<Quota>,
    by_address: ArcSwapOption<DefaultKeyedRateLimiter<IpAddr>>,
    by_key: [Option<DefaultKeyedRateLimiter<String>>; 3],
    max_addresses: usize,
    checks: AtomicU64,
}

/// How often (in address checks) the address map is pruned when it is over its bound.
const PRUNE_EVERY: u64 = 1024;

impl Limiter {
    pub fn new(c: &RateLimits) -> Self {
        let keyed = |rate, burst| quota(rate, burst).map(RateLimiter::keyed);
        let address_quota = quota(c.per_address, c.per_address_burst);
        Self {
            address_quota,
            by_address: ArcSwapOption::from_pointee(address_quota.map(RateLimiter::keyed)),
            by_key: [
                keyed(c.track, c.track_burst),
                keyed(c.read, c.read_burst),
                keyed(c.admin, c.admin_burst),
            ],
            max_addresses: c.max_addresses.max(1),
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when the address is over its limit.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Duration> {
        let Some(mut limiter) = self.by_address.load_full() else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(PRUNE_EVERY)
            && limiter.len() > self.max_addresses
        {
            // Forget buckets that are full again (idle addresses): they hold no information.
            limiter.retain_recent();
            limiter.shrink_to_fit();
            if limiter.len() > self.max_addresses {
                // Still too many active addresses (a flood from many sources): start afresh
                // rather than grow without bound.
                let fresh = Arc::new(RateLimiter::keyed(self.address_quota.expect("a limiter has a quota")));
                self.by_address.store(Some(fresh.clone()));
                limiter = fresh;
            }
        }
        verdict(&limiter, &addr)
    }

    /// `Err(wait)` when the key is over its scope's limit.
    pub fn check_key(&self, key_id: &str, scope: Scope) -> Result<(), Duration> {
        let slot = match scope {
            Scope::Track => 0,
            Scope::Read => 1,
            Scope::Admin => 2,
        };
        match &self.by_key[slot] {
            Some(limiter) => verdict(limiter, &key_id.to_string()),
            None => Ok(()),
        }
    }

    /// Client addresses currently tracked.
    pub fn tracked_addresses(&self) -> usize {
        self.by_address.load().as_ref().map_or(0, |l| l.len())
    }
}

fn verdict<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Duration> {
    limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let limits = RateLimits {
            per_address: 1,
            per_address_burst: 3,
            admin: 1,
            admin_burst: 2,
            ..Default::default()
        };
        let l = Limiter::new(&limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check_address(a).is_ok());
        }
        let wait = l.check_address(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(l.check_address(b).is_ok(), "another address has its own bucket");
        assert!(l.check_key("k1", Scope::Admin).is_ok() && l.check_key("k1", Scope::Admin).is_ok());
        assert!(l.check_key("k1", Scope::Admin).is_err());
        assert!(l.check_key("k2", Scope::Admin).is_ok(), "another key has its own bucket");
        assert!(l.check_key("k1", Scope::Read).is_ok(), "the read quota is separate");
    }

    #[test]
    fn a_rate_of_zero_is_no_limit_and_idle_addresses_are_forgotten() {
        let l = Limiter::new(&RateLimits { track: 0, ..Default::default() });
        for _ in 0..100_000 {
            assert!(l.check_key("k", Scope::Track).is_ok());
            assert!(l.check_address("10.0.0.1".parse().unwrap()).is_ok());
        }
        let limits =
            RateLimits { per_address: 1000, per_address_burst: 1, max_addresses: 10, ..Default::default() };
        let l = Limiter::new(&limits);
        for i in 0..5_000u32 {
            let _ = l.check_address(IpAddr::from(i.to_be_bytes()));
        }
        assert!(l.tracked_addresses() <= 10 + PRUNE_EVERY as usize, "{}", l.tracked_addresses());
    }
}
