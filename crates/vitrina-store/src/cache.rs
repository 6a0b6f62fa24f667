//! The in-process per-user recommendation cache.
//!
//! Staleness is prevented with a logical clock rather than locks: a lookup that misses
//! hands out the clock's value as its [`CacheToken`]; every invalidation takes a new, larger
//! clock value and records it. A write-back whose token is older than the user's (or the
//! global) last invalidation was computed from stale inputs and is dropped.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use moka::{ops::compute::Op, sync::Cache};
use vitrina_core::{
    ports::{CacheLookup, CacheToken, RecommendationCache},
    recommend::RecommendationList,
    UserId,
};

/// Distinct request shapes (limit, filters…) kept per user.
const KEYS_PER_USER: usize = 8;

#[derive(Clone, Default)]
struct Entry {
    /// Clock value of the user's last invalidation (0: none seen).
    epoch: u64,
    /// `(key, list, sequence applied when it was computed)`.
    lists: Vec<(String, Arc<RecommendationList>, u64)>,
}

/// Bounded, TTL'd per-user cache.
pub struct MemoryCache {
    entries: Cache<UserId, Entry>,
    clock: AtomicU64,
    /// Clock value of the last `invalidate_all`.
    floor: AtomicU64,
    /// Largest epoch among entries evicted so far: a user without an entry may have been
    /// invalidated up to then.
    evicted: Arc<AtomicU64>,
}

impl MemoryCache {
    pub fn new(max_users: u64, ttl: Duration) -> Self {
        let evicted = Arc::new(AtomicU64::new(0));
        let listener_evicted = evicted.clone();
        let entries = Cache::builder()
            .max_capacity(max_users)
            .time_to_live(ttl)
            .eviction_listener(move |_user, entry: Entry, _cause| {
                listener_evicted.fetch_max(entry.epoch, Ordering::SeqCst);
            })
            .build();
        Self { entries, clock: AtomicU64::new(1), floor: AtomicU64::new(0), evicted }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[async_trait]
impl RecommendationCache for MemoryCache {
    fn entries(&self) -> u64 {
        self.entries.entry_count()
    }

    async fn lookup(&self, user: &UserId, key: &str, since: u64) -> CacheLookup {
        let token = CacheToken(self.clock.load(Ordering::SeqCst));
        let found = self.entries.get(user).and_then(|e| {
            e.lists.iter().find(|(k, _, applied)| k == key && *applied >= since).map(|(_, l, _)| l.clone())
        });
        match found {
            Some(list) => CacheLookup::Hit(list),
            None => CacheLookup::Miss(token),
        }
    }

    /// `applied` is only compared with a lookup's `since`: in one process, the follower
    /// drops a visitor's lists after it applied their events, before any list is computed
    /// from that state.
    async fn store(
        &self,
        user: &UserId,
        key: &str,
        token: CacheToken,
        applied: u64,
        list: Arc<RecommendationList>,
    ) {
        if token.0 < self.floor.load(Ordering::SeqCst) {
            return;
        }
        let evicted = self.evicted.load(Ordering::SeqCst);
        self.entries.entry(user.clone()).and_compute_with(|current| {
            let mut entry = match current {
                Some(e) if e.value().epoch > token.0 => return Op::Nop,
                Some(e) => e.into_value(),
                None if evicted > token.0 => return Op::Nop,
                None => Entry::default(),
            };
            entry.lists.retain(|(k, _, _)| k != key);
            if entry.lists.len() >= KEYS_PER_USER {
                entry.lists.remove(0);
            }
            entry.lists.push((key.to_string(), list, applied));
            Op::Put(entry)
        });
    }

    async fn invalidate_user(&self, user: &UserId) {
        let epoch = self.tick();
        self.entries.entry(user.clone()).and_compute_with(|_| Op::Put(Entry { epoch, lists: Vec::new() }));
    }

    async fn invalidate_all(&self) {
        let epoch = self.tick();
        self.floor.store(epoch, Ordering::SeqCst);
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn list(version: &str) -> Arc<RecommendationList> {
        Arc::new(RecommendationList {
            items: vec![],
            model_version: version.into(),
            generated_at: Utc::now(),
        })
    }

    fn miss_token(l: CacheLookup) -> CacheToken {
        l.miss().expect("a miss")
    }

    fn hit(l: CacheLookup) -> Arc<RecommendationList> {
        l.hit().expect("a hit")
    }

    #[tokio::test]
    async fn stores_and_serves_per_user_and_key() {
        let cache = MemoryCache::new(100, Duration::from_secs(60));
        let u = UserId::parse("u").unwrap();
        let t = miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&u, "10", t, 0, list("v1")).await;
        assert_eq!(hit(cache.lookup(&u, "10", 0).await).model_version, "v1");
        miss_token(cache.lookup(&u, "20", 0).await);
        miss_token(cache.lookup(&UserId::parse("other").unwrap(), "10", 0).await);
    }

    #[tokio::test]
    async fn a_list_computed_before_the_visitors_latest_event_is_never_served() {
        let cache = MemoryCache::new(100, Duration::from_secs(60));
        let u = UserId::parse("u").unwrap();
        let t = miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&u, "10", t, 41, list("at 41")).await;
        assert_eq!(hit(cache.lookup(&u, "10", 41).await).model_version, "at 41");
        // The asking process applied the visitor's event 42 and no invalidation came.
        miss_token(cache.lookup(&u, "10", 42).await);
    }

    #[tokio::test]
    async fn invalidation_drops_lists_and_refuses_stale_write_backs() {
        let cache = MemoryCache::new(100, Duration::from_secs(60));
        let u = UserId::parse("u").unwrap();
        let t = miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&u, "10", t, 0, list("v1")).await;
        let stale = miss_token(cache.lookup(&u, "20", 0).await);
        cache.invalidate_user(&u).await;
        miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&u, "20", stale, 0, list("stale")).await;
        miss_token(cache.lookup(&u, "20", 0).await);
        let fresh = miss_token(cache.lookup(&u, "20", 0).await);
        cache.store(&u, "20", fresh, 0, list("fresh")).await;
        assert_eq!(hit(cache.lookup(&u, "20", 0).await).model_version, "fresh");
    }

    #[tokio::test]
    async fn invalidate_all_refuses_write_backs_from_before_it() {
        let cache = MemoryCache::new(100, Duration::from_secs(60));
        let u = UserId::parse("u").unwrap();
        let t = miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&u, "10", t, 0, list("v1")).await;
        let stale = miss_token(cache.lookup(&UserId::parse("w").unwrap(), "10", 0).await);
        cache.invalidate_all().await;
        miss_token(cache.lookup(&u, "10", 0).await);
        cache.store(&UserId::parse("w").unwrap(), "10", stale, 0, list("old")).await;
        miss_token(cache.lookup(&UserId::parse("w").unwrap(), "10", 0).await);
    }
}
