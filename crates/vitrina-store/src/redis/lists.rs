//! [`SharedLists`]: the recommendation cache shared by a deployment's api replicas, so a
//! list one replica computed is served from cache by the others, with the invariant of
//! [`RecommendationCache`] kept across processes.
//!
//! The logical clock of the in-process cache lives in Redis: a miss hands out the clock as
//! its token, every invalidation takes a new clock value and records it (per visitor, or as
//! the floor for all), and a write-back whose token is older is dropped; each check and
//! write is one script, so they are atomic. A list is kept as its items' product ids and
//! served with the products this process holds now.
//!
//! When Redis does not answer, a lookup misses and a write-back is dropped; an invalidation
//! that failed is made good by invalidating everything once Redis answers (at the next use,
//! or by a retry every second). Whatever Redis lost or did not hear, a lookup never returns
//! a list computed from a state that had applied less than the asking process's latest
//! event of the visitor (`since`; each entry keeps the sequence it was computed at).

use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock,
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use serde::{Deserialize, Serialize};
use vitrina_core::{
    ports::{CacheLookup, CacheToken, RecommendationCache},
    recommend::{RecommendationList, Recommended, Source},
    ActivityType, Product, ProductId, UserId,
};

use super::{visitor, Connection, Watermarks, WATERMARK_TTL};

/// Finds a product by id in what this process holds now (`None`: gone). A list naming one
/// that is gone, hidden or out of stock here is a miss: another replica may have stored it
/// before it heard of the change.
pub type Resolve = Arc<dyn Fn(&ProductId) -> Option<Arc<Product>> + Send + Sync>;

/// Distinct request shapes (limit, filters, variant…) kept per visitor.
const KEYS_PER_USER: usize = 8;
/// How long a visitor's invalidation is remembered when nothing is cached for them: far
/// longer than computing a list takes, so a write-back begun before it is still refused.
const REMEMBER_INVALIDATION: Duration = Duration::from_secs(60);

/// The clock and the floor, kept together in one hash (KEYS[1]). Where it is missing (a new
/// deployment, or a Redis restarted without its data, flushed, or that evicted it) it starts
/// at Redis's time in microseconds with the floor there too, so every token handed out and
/// every list stored before is refused.
/// Clock values (about 2^51) are written with `int`: Redis would pass a Lua number as
/// `%.14g`, in exponent notation.
const STATE: &str = r"
local function int(n) return string.format('%d', n) end
local function state(key)
  local v = redis.call('HMGET', key, 'clock', 'floor')
  if not v[1] or not v[2] then
    local t = redis.call('TIME')
    local now = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('HSET', key, 'clock', now, 'floor', now)
    return tonumber(now), tonumber(now)
  end
  return tonumber(v[1]), tonumber(v[2])
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{STATE}{body}"))
}

/// KEYS: state, visitor, and optionally the visitor's watermark. ARGV: key. Returns {clock,
/// entry, watermark}: the entry ("token\nlist") only if stored after the last invalidation
/// of everything (else nil); the watermark 0 when there is none or it was not asked for.
static LOOKUP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local clock, floor = state(KEYS[1])
local mark = 0
if KEYS[3] then mark = tonumber(redis.call('GET', KEYS[3]) or '0') end
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if entry then
  local token = tonumber(string.match(entry, '^(%d+)'))
  if token >= floor then return {clock, entry, mark} end
end
return {clock, false, mark}",
    )
});

/// KEYS: state, visitor. ARGV: token, key, list, ttl ms, keys per visitor, applied. Stores
/// the list unless the token is older than the floor or the visitor's last invalidation
/// (`#epoch` of their hash), or the list was computed from a state that had not applied the
/// log as far as an invalidating process had (`#seq`). Never shortens how long the hash
/// (with its invalidation) is kept.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local token = tonumber(ARGV[1])
local _, floor = state(KEYS[1])
if token < floor then return 0 end
local epoch = redis.call('HGET', KEYS[2], '#epoch')
if epoch and tonumber(epoch) > token then return 0 end
local seq = redis.call('HGET', KEYS[2], '#seq')
if seq and tonumber(seq) > tonumber(ARGV[6]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 and redis.call('HLEN', KEYS[2]) > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[2])
  if epoch then redis.call('HSET', KEYS[2], '#epoch', epoch) end
  if seq then redis.call('HSET', KEYS[2], '#seq', seq) end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1] .. '\n' .. ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return 1",
    )
});

/// KEYS: state, visitors…. ARGV: ms to remember, sequence applied. Drops each visitor's
/// lists and records a new clock value as their epoch, and the highest sequence any process
/// applied when it dropped them.
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
state(KEYS[1])
local clock = redis.call('HINCRBY', KEYS[1], 'clock', 1)
local applied = tonumber(ARGV[2])
for i = 2, #KEYS do
  local seq = math.max(tonumber(redis.call('HGET', KEYS[i], '#seq') or '0'), applied)
  redis.call('DEL', KEYS[i])
  redis.call('HSET', KEYS[i], '#epoch', int(clock), '#seq', int(seq))
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return clock",
    )
});

/// KEYS: state. Every list stored so far is refused from now on.
static INVALIDATE_ALL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
state(KEYS[1])
local clock = redis.call('HINCRBY', KEYS[1], 'clock', 1)
redis.call('HSET', KEYS[1], 'floor', int(clock))
return clock",
    )
});

/// KEYS: state, then n watermarks, then the n visitors' lists. ARGV: watermark ttl s, ms to
/// remember, then the n visitors' latest acknowledged sequences. What the activity process
/// does before it acknowledges: raises each visitor's watermark to their sequence (never
/// lowers it), drops their lists, and refuses any write-back computed from an online state
/// that had not applied that sequence (`#seq`) or begun before (`#epoch`).
static ACKNOWLEDGE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
state(KEYS[1])
local clock = redis.call('HINCRBY', KEYS[1], 'clock', 1)
local n = (#KEYS - 1) / 2
for i = 1, n do
  local acked = tonumber(ARGV[2 + i])
  local mark = KEYS[1 + i]
  if acked > tonumber(redis.call('GET', mark) or '0') then
    redis.call('SET', mark, int(acked), 'EX', ARGV[1])
  else
    redis.call('EXPIRE', mark, ARGV[1])
  end
  local lists = KEYS[1 + n + i]
  local seq = math.max(tonumber(redis.call('HGET', lists, '#seq') or '0'), acked)
  redis.call('DEL', lists)
  redis.call('HSET', lists, '#epoch', int(clock), '#seq', int(seq))
  redis.call('PEXPIRE', lists, ARGV[2])
end
return clock",
    )
});

/// Visitors acknowledged per script run: a batch of 10,000 is a few short runs rather than
/// one long one that holds Redis up.
const ACKNOWLEDGE_CHUNK: usize = 500;

/// A list as kept in Redis: the items' product ids, not the products.
#[derive(Serialize, Deserialize)]
struct Kept {
    model: String,
    at: DateTime<Utc>,
    /// The log sequence the computing process had applied.
    applied: u64,
    items: Vec<KeptItem>,
}

#[derive(Serialize, Deserialize)]
struct KeptItem {
    id: String,
    score: f32,
    confidence: f32,
    source: String,
    because: Option<(String, ActivityType)>,
}

impl Kept {
    fn of(list: &RecommendationList, applied: u64) -> Self {
        Self {
            model: list.model_version.clone(),
            at: list.generated_at,
            applied,
            items: list
                .items
                .iter()
                .map(|r| KeptItem {
                    id: r.product.id.to_string(),
                    score: r.score,
                    confidence: r.confidence,
                    source: r.source.as_str().to_string(),
                    because: r.because.as_ref().map(|(p, kind)| (p.to_string(), *kind)),
                })
                .collect(),
        }
    }

    /// The list with the products held now; `None` when one of them is gone or not
    /// available, or the entry is not one this build wrote.
    fn list(self, resolve: &Resolve) -> Option<RecommendationList> {
        let mut items = Vec::with_capacity(self.items.len());
        for item in self.items {
            let because = match item.because {
                Some((p, kind)) => Some((ProductId::parse(&p).ok()?, kind)),
                None => None,
            };
            items.push(Recommended {
                product: resolve(&ProductId::parse(&item.id).ok()?).filter(|p| p.is_available())?,
                score: item.score,
                confidence: item.confidence,
                source: Source::from_str(&item.source).ok()?,
                because,
            });
        }
        Some(RecommendationList { items, model_version: self.model, generated_at: self.at })
    }
}

/// What [`SharedLists::lookup_marked`] found.
pub struct Fetched {
    clock: u64,
    entry: Option<Kept>,
    /// The visitor's watermark (0: none).
    pub mark: u64,
}

/// The deployment's recommendation cache in Redis.
pub struct SharedLists {
    redis: Connection,
    /// Key prefix: the deployment's log id, so deployments sharing a Redis never mix.
    prefix: String,
    ttl: Duration,
    resolve: Resolve,
    trust: Arc<Trust>,
}

/// Whether Redis may be trusted after invalidations that did not reach it.
struct Trust {
    redis: Connection,
    /// The key of the clock and the floor.
    state: String,
    /// How many invalidations failed (0: none since Redis was last trusted): everything is
    /// invalidated before Redis is trusted again.
    lost: AtomicU64,
}

impl Trust {
    /// Whether Redis may be trusted: after a lost invalidation, only once everything was
    /// invalidated.
    async fn regained(&self) -> bool {
        let lost = self.lost.load(Ordering::SeqCst);
        if lost == 0 {
            return true;
        }
        if !self.invalidate_everything().await {
            return false;
        }
        // An invalidation lost while this one was on its way is not covered by it; one that
        // another caller's invalidation made good (0 already) is.
        match self.lost.compare_exchange(lost, 0, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                tracing::info!("the shared list cache answers again; every list in it was invalidated");
                true
            }
            Err(now) => now == 0,
        }
    }

    async fn invalidate_everything(&self) -> bool {
        eval::<u64>(&self.redis, &INVALIDATE_ALL, std::slice::from_ref(&self.state), &[]).await.is_some()
    }

    /// Counts a lost invalidation. The first since Redis was trusted also starts retrying,
    /// every second, to invalidate everything: a process that acknowledges no more events
    /// (nor reads) would otherwise leave a visitor's older list to be served.
    fn lose(self: &Arc<Self>) {
        if self.lost.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        tracing::warn!(
            "invalidating lists in the shared cache failed; it is not used until Redis answers again"
        );
        let trust = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(trust) = trust.upgrade() else { return };
                if trust.regained().await {
                    return;
                }
            }
        });
    }
}

/// Runs `script` by its hash (loading it first where Redis does not know it: a Redis
/// restarted or flushed); `None` when Redis does not answer (or did not a moment ago).
async fn eval<T: redis::FromRedisValue>(
    redis: &Connection,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> Option<T> {
    let mut invocation = script.prepare_invoke();
    invocation.key(keys).arg(args);
    let invocation = &invocation;
    let answer = redis.call(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await;
    match answer {
        Ok(v) => Some(v),
        Err(e) => {
            metrics::counter!("vitrina_shared_cache_failures_total").increment(1);
            tracing::debug!(error = %e, "the shared list cache did not answer");
            None
        }
    }
}

impl SharedLists {
    /// The lists of the deployment whose log is `log`, each kept `ttl`, served with the
    /// products `resolve` finds.
    pub fn new(redis: Connection, log: &str, ttl: Duration, resolve: Resolve) -> Self {
        let prefix = format!("vitrina:{log}:lists:");
        let trust = Arc::new(Trust {
            redis: redis.clone(),
            state: format!("{prefix}state"),
            lost: AtomicU64::new(0),
        });
        Self { redis, prefix, ttl, resolve, trust }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn user_key(&self, user: &UserId) -> String {
        format!("{}u:{}", self.prefix, visitor(user))
    }

    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Option<T> {
        eval(&self.redis, script, keys, args).await
    }

    async fn trusted(&self) -> bool {
        self.trust.regained().await
    }

    fn lost(&self) {
        self.trust.lose();
    }

    /// The lookup's round trip: the entry under `key` and, with `watermarks`, the visitor's
    /// watermark. `None` when Redis is not trusted or did not answer.
    async fn fetch(&self, user: &UserId, key: &str, watermarks: Option<&Watermarks>) -> Option<Fetched> {
        if !self.trusted().await {
            return None;
        }
        let mut keys = vec![self.key("state"), self.user_key(user)];
        keys.extend(watermarks.map(|w| w.key(user)));
        let (clock, entry, mark) =
            self.eval::<(u64, Option<String>, u64)>(&LOOKUP, &keys, &[key.into()]).await?;
        let entry = entry.and_then(|e| serde_json::from_str::<Kept>(e.split_once('\n')?.1).ok());
        Some(Fetched { clock, entry, mark })
    }

    /// A lookup and the visitor's watermark in one round trip, for a process that must apply
    /// the log up to the watermark before it may [`SharedLists::judge`] what was found.
    /// `None` when Redis is not trusted or did not answer (a miss, and no watermark known).
    pub async fn lookup_marked(&self, user: &UserId, key: &str, watermarks: &Watermarks) -> Option<Fetched> {
        self.fetch(user, key, Some(watermarks)).await
    }

    /// What a lookup found, as the cache answers it to a process whose latest event of the
    /// visitor is at `since` (see [`RecommendationCache::lookup`]).
    pub fn judge(&self, fetched: Option<Fetched>, since: u64) -> CacheLookup {
        // Tokens are the clock plus one, so that 0 is never one: a write-back with it is
        // dropped.
        let Some(Fetched { clock, entry, .. }) = fetched else { return CacheLookup::Miss(CacheToken(0)) };
        let list = entry.filter(|kept| kept.applied >= since).and_then(|kept| kept.list(&self.resolve));
        match list {
            Some(list) => CacheLookup::Hit(Arc::new(list)),
            None => CacheLookup::Miss(CacheToken(clock + 1)),
        }
    }

    /// How long a visitor's invalidation is remembered.
    fn remember(&self) -> String {
        REMEMBER_INVALIDATION.max(self.ttl).as_millis().to_string()
    }

    /// Before the activity process acknowledges events: raises each visitor's watermark to
    /// their latest sequence and drops their lists, with whatever they would be computed
    /// from a state without that sequence ([`RecommendationCache::dropped_on_acknowledgement`]).
    /// `false` when Redis did not answer: read-your-writes is not promised for these
    /// visitors, and every list is invalidated once Redis answers again.
    pub async fn acknowledge(&self, marks: &[(UserId, u64)], watermarks: &Watermarks) -> bool {
        self.trusted().await;
        for chunk in marks.chunks(ACKNOWLEDGE_CHUNK) {
            let mut keys = Vec::with_capacity(1 + 2 * chunk.len());
            keys.push(self.key("state"));
            keys.extend(chunk.iter().map(|(u, _)| watermarks.key(u)));
            keys.extend(chunk.iter().map(|(u, _)| self.user_key(u)));
            let mut args = vec![WATERMARK_TTL.as_secs().to_string(), self.remember()];
            args.extend(chunk.iter().map(|(_, seq)| seq.to_string()));
            if self.eval::<u64>(&ACKNOWLEDGE, &keys, &args).await.is_none() {
                self.lost();
                return false;
            }
        }
        true
    }
}

#[async_trait]
impl RecommendationCache for SharedLists {
    async fn lookup(&self, user: &UserId, key: &str, since: u64) -> CacheLookup {
        self.judge(self.fetch(user, key, None).await, since)
    }

    async fn store(
        &self,
        user: &UserId,
        key: &str,
        token: CacheToken,
        applied: u64,
        list: Arc<RecommendationList>,
    ) {
        if token.0 == 0 || self.trust.lost.load(Ordering::SeqCst) > 0 {
            return;
        }
        let Ok(json) = serde_json::to_string(&Kept::of(&list, applied)) else { return };
        let keys = [self.key("state"), self.user_key(user)];
        let args = [
            (token.0 - 1).to_string(),
            key.to_string(),
            json,
            self.ttl.as_millis().to_string(),
            KEYS_PER_USER.to_string(),
            applied.to_string(),
        ];
        let _ = self.eval::<i64>(&STORE, &keys, &args).await;
    }

    async fn invalidate_user(&self, user: &UserId) {
        self.invalidate_users(std::slice::from_ref(user), 0).await;
    }

    async fn invalidate_users(&self, users: &[UserId], applied: u64) {
        if users.is_empty() {
            return;
        }
        let mut keys = vec![self.key("state")];
        keys.extend(users.iter().map(|u| self.user_key(u)));
        if self.eval::<u64>(&INVALIDATE, &keys, &[self.remember(), applied.to_string()]).await.is_none() {
            self.lost();
        }
    }

    async fn invalidate_all(&self) {
        if !self.trust.invalidate_everything().await {
            self.lost();
        }
    }

    fn dropped_on_acknowledgement(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use vitrina_core::demo;

    use super::*;

    struct Fixture {
        cache: SharedLists,
        log: String,
        products: Arc<HashMap<ProductId, Arc<Product>>>,
    }

    /// Needs `VITRINA_TEST_REDIS_URL`; without it there is nothing to test against. Each
    /// fixture is its own deployment (a fresh log id), so tests never see each other's keys.
    async fn fixture() -> Option<Fixture> {
        let url = crate::testing::service_url(crate::testing::REDIS_URL)?;
        let redis = super::super::connect(&url)
            .await
            .expect("VITRINA_TEST_REDIS_URL is set but Redis does not answer");
        let products: Arc<HashMap<ProductId, Arc<Product>>> =
            Arc::new(demo::products(Utc::now()).into_iter().map(|p| (p.id.clone(), Arc::new(p))).collect());
        let held = products.clone();
        let resolve: Resolve = Arc::new(move |id| held.get(id).cloned());
        let log = format!("test-{}", uuid::Uuid::new_v4().simple());
        Some(Fixture {
            cache: SharedLists::new(redis, &log, Duration::from_secs(60), resolve),
            log,
            products,
        })
    }

    impl Fixture {
        /// Another replica of the same deployment: its own process state, the same Redis.
        fn replica(&self) -> SharedLists {
            let held = self.products.clone();
            self.replica_resolving(Arc::new(move |id| held.get(id).cloned()))
        }

        fn replica_resolving(&self, resolve: Resolve) -> SharedLists {
            SharedLists::new(self.cache.redis.clone(), &self.log, self.cache.ttl, resolve)
        }

        fn list(&self, version: &str, ids: &[&str]) -> Arc<RecommendationList> {
            let items = ids
                .iter()
                .map(|id| Recommended {
                    product: self.products[&ProductId::parse(id).unwrap()].clone(),
                    score: 0.5,
                    confidence: 0.25,
                    source: Source::CollaborativeFiltering,
                    because: Some((ProductId::parse("product-1").unwrap(), ActivityType::AddToCart)),
                })
                .collect();
            Arc::new(RecommendationList { items, model_version: version.into(), generated_at: Utc::now() })
        }
    }

    fn miss_token(l: CacheLookup) -> CacheToken {
        l.miss().expect("a miss")
    }

    fn hit(l: CacheLookup) -> Arc<RecommendationList> {
        l.hit().expect("a hit")
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[tokio::test]
    async fn a_list_one_replica_stored_is_served_whole_by_another() {
        let Some(f) = fixture().await else { return };
        let other = f.replica();
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        let list = f.list("v1", &["product-2", "product-3"]);
        f.cache.store(&u, "10", t, 0, list.clone()).await;
        assert_eq!(hit(other.lookup(&u, "10", 0).await), list, "ids, scores, sources and reasons survive");
        miss_token(other.lookup(&u, "20", 0).await);
        miss_token(other.lookup(&user("someone-else"), "10", 0).await);
    }

    #[tokio::test]
    async fn an_invalidation_on_one_replica_drops_lists_and_refuses_stale_write_backs_on_all() {
        let Some(f) = fixture().await else { return };
        let other = f.replica();
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        // A list begun on the other replica before the visitor's event...
        let stale = miss_token(other.lookup(&u, "20", 0).await);
        f.cache.invalidate_users(&[u.clone(), user("w")], 0).await;
        miss_token(other.lookup(&u, "10", 0).await);
        // ...is not stored after it.
        other.store(&u, "20", stale, 0, f.list("stale", &["product-3"])).await;
        miss_token(f.cache.lookup(&u, "20", 0).await);
        let fresh = miss_token(other.lookup(&u, "20", 0).await);
        other.store(&u, "20", fresh, 0, f.list("fresh", &["product-3"])).await;
        assert_eq!(hit(f.cache.lookup(&u, "20", 0).await).model_version, "fresh");
    }

    #[tokio::test]
    async fn invalidating_everything_refuses_lists_and_write_backs_from_before_it() {
        let Some(f) = fixture().await else { return };
        let other = f.replica();
        let (u, w) = (user("u"), user("w"));
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        let stale = miss_token(other.lookup(&w, "10", 0).await);
        f.cache.invalidate_all().await;
        miss_token(other.lookup(&u, "10", 0).await);
        other.store(&w, "10", stale, 0, f.list("old", &["product-2"])).await;
        miss_token(f.cache.lookup(&w, "10", 0).await);
    }

    #[tokio::test]
    async fn a_list_naming_a_product_gone_or_hidden_here_is_a_miss() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        // Another replica whose catalogue no longer holds product-2.
        let without = f.replica_resolving(Arc::new(|_| None));
        miss_token(without.lookup(&u, "10", 0).await);
        // Another replica that heard product-2 was hidden (the list was stored before).
        let hidden = f.products[&ProductId::parse("product-2").unwrap()].as_ref().clone();
        let hidden = Arc::new(Product { hidden: true, ..hidden });
        let hiding = f.replica_resolving(Arc::new(move |_| Some(hidden.clone())));
        miss_token(hiding.lookup(&u, "10", 0).await);
        hit(f.replica().lookup(&u, "10", 0).await);
    }

    #[tokio::test]
    async fn a_visitor_keeps_at_most_a_few_request_shapes() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        for n in 0..2 * KEYS_PER_USER {
            let key = format!("shape-{n}");
            let t = miss_token(f.cache.lookup(&u, &key, 0).await);
            f.cache.store(&u, &key, t, 0, f.list("v1", &["product-2"])).await;
        }
        let mut conn = f.cache.redis.manager.clone();
        let fields: usize =
            redis::cmd("HLEN").arg(f.cache.user_key(&u)).query_async(&mut conn).await.unwrap();
        assert!(fields <= KEYS_PER_USER + 1, "{fields} fields");
        hit(f.cache.lookup(&u, &format!("shape-{}", 2 * KEYS_PER_USER - 1), 0).await);
    }

    #[tokio::test]
    async fn without_redis_every_lookup_misses_and_a_lost_invalidation_is_made_good() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        // A replica whose invalidation did not reach Redis…
        let other = f.replica();
        other.lost();
        // …serves nothing from it and stores nothing in it…
        let t = miss_token(other.lookup(&u, "10", 0).await);
        assert!(t.0 > 0, "Redis answers again, so the lookup hands out a real token");
        assert_eq!(other.trust.lost.load(Ordering::SeqCst), 0);
        // …and made good by invalidating everything once Redis answered again.
        miss_token(f.cache.lookup(&u, "10", 0).await);
    }

    #[tokio::test]
    async fn a_replica_behind_the_one_that_invalidated_stores_nothing_for_the_visitor() {
        let Some(f) = fixture().await else { return };
        let behind = f.replica();
        let u = user("u");
        // One replica applied the visitor's event (sequence 40) and dropped their lists; the
        // other, at 39, begins a list only now, so its token is newer than the invalidation…
        f.cache.invalidate_users(std::slice::from_ref(&u), 40).await;
        let t = miss_token(behind.lookup(&u, "10", 0).await);
        // …but its list lacks the event: refused.
        behind.store(&u, "10", t, 39, f.list("stale", &["product-2"])).await;
        miss_token(f.cache.lookup(&u, "10", 0).await);
        // Once it applied as far, its list is kept, and a later invalidation from a replica
        // further behind does not lower the bar.
        behind.store(&u, "10", t, 40, f.list("fresh", &["product-2"])).await;
        assert_eq!(hit(f.cache.lookup(&u, "10", 0).await).model_version, "fresh");
        behind.invalidate_users(std::slice::from_ref(&u), 12).await;
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 39, f.list("stale", &["product-2"])).await;
        miss_token(f.cache.lookup(&u, "10", 0).await);
    }

    #[tokio::test]
    async fn an_acknowledgement_raises_the_watermark_and_drops_lists_computed_without_the_event() {
        let Some(f) = fixture().await else { return };
        let marks = Watermarks::new(f.cache.redis.clone(), &f.log);
        let replica = f.replica();
        let (u, w) = (user("u"), user("w"));
        let t = miss_token(replica.lookup(&u, "10", 0).await);
        replica.store(&u, "10", t, 6, f.list("before", &["product-2"])).await;
        let begun = miss_token(replica.lookup(&w, "10", 0).await);
        // The activity process acknowledges u's event 7 and w's event 9.
        assert!(f.cache.acknowledge(&[(u.clone(), 7), (w.clone(), 9)], &marks).await);
        assert_eq!((marks.get(&u).await.unwrap(), marks.get(&w).await.unwrap()), (7, 9));
        miss_token(replica.lookup(&u, "10", 0).await);
        // A list begun before the acknowledgement is refused even from a state that applied
        // the event; one begun after, from a state without it, too.
        replica.store(&w, "10", begun, 9, f.list("begun before", &["product-2"])).await;
        let t = miss_token(replica.lookup(&u, "10", 0).await);
        replica.store(&u, "10", t, 6, f.list("without", &["product-2"])).await;
        miss_token(replica.lookup(&u, "10", 0).await);
        replica.store(&u, "10", t, 7, f.list("with", &["product-2"])).await;
        assert_eq!(hit(f.cache.lookup(&u, "10", 0).await).model_version, "with");
        miss_token(f.cache.lookup(&w, "10", 0).await);
        // A watermark never goes down; a repeat's acknowledgement drops the lists again.
        assert!(f.cache.acknowledge(&[(u.clone(), 5)], &marks).await);
        assert_eq!(marks.get(&u).await.unwrap(), 7);
        miss_token(replica.lookup(&u, "10", 0).await);
        let t = miss_token(replica.lookup(&u, "10", 0).await);
        replica.store(&u, "10", t, 6, f.list("without", &["product-2"])).await;
        miss_token(replica.lookup(&u, "10", 0).await);
        marks.forget(&u).await.unwrap();
        assert_eq!(marks.get(&u).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_list_older_than_the_visitors_latest_event_here_is_a_miss_whatever_redis_forgot() {
        let Some(f) = fixture().await else { return };
        let (lagging, asking) = (f.replica(), f.replica());
        let u = user("u");
        // The activity process acknowledged event 42, then Redis lost the visitor's hash
        // (flushed, evicted or expired) before a lagging replica stored a list from 41.
        assert!(
            f.cache.acknowledge(&[(u.clone(), 42)], &Watermarks::new(f.cache.redis.clone(), &f.log)).await
        );
        let mut conn = f.cache.redis.manager.clone();
        let () = redis::cmd("DEL").arg(f.cache.user_key(&u)).query_async(&mut conn).await.unwrap();
        let t = miss_token(lagging.lookup(&u, "10", 0).await);
        lagging.store(&u, "10", t, 41, f.list("at 41", &["product-2"])).await;
        // A replica that applied event 42 does not serve it; one that has not, may.
        miss_token(asking.lookup(&u, "10", 42).await);
        assert_eq!(hit(asking.lookup(&u, "10", 41).await).model_version, "at 41");
    }

    #[tokio::test]
    async fn a_marked_lookup_brings_the_watermark_in_the_same_round_trip() {
        let Some(f) = fixture().await else { return };
        let marks = Watermarks::new(f.cache.redis.clone(), &f.log);
        let u = user("u");
        let found = f.cache.lookup_marked(&u, "10", &marks).await.unwrap();
        assert_eq!(found.mark, 0, "no event acknowledged yet");
        let t = miss_token(f.cache.judge(Some(found), 0));
        f.cache.store(&u, "10", t, 3, f.list("at 3", &["product-2"])).await;
        assert!(f.cache.acknowledge(&[(u.clone(), 7)], &marks).await);
        let found = f.cache.lookup_marked(&u, "10", &marks).await.unwrap();
        assert_eq!(found.mark, 7);
        let t = miss_token(f.cache.judge(Some(found), 7));
        f.cache.store(&u, "10", t, 7, f.list("at 7", &["product-2"])).await;
        let found = f.cache.lookup_marked(&u, "10", &marks).await.unwrap();
        assert_eq!(found.mark, 7);
        assert_eq!(hit(f.cache.judge(Some(found), 7)).model_version, "at 7");
        // What was found is judged by the process's latest event of the visitor.
        let found = f.cache.lookup_marked(&u, "10", &marks).await.unwrap();
        miss_token(f.cache.judge(Some(found), 8));
        assert_eq!(miss_token(f.cache.judge(None, 0)).0, 0, "Redis away: a miss that stores nothing");
    }

    #[tokio::test]
    async fn a_lost_invalidation_is_made_good_by_itself_once_redis_answers() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        // An activity process that lost an acknowledgement and acknowledges nothing more.
        let activity = f.replica();
        activity.lost();
        let mut waited = 0;
        while activity.trust.lost.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
            assert!(waited < 6000, "the retry never made it good");
        }
        miss_token(f.cache.lookup(&u, "10", 0).await);
    }

    #[tokio::test]
    async fn a_redis_that_lost_the_clock_refuses_what_was_handed_out_and_stored_before() {
        let Some(f) = fixture().await else { return };
        let (u, w) = (user("u"), user("w"));
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        let before = miss_token(f.cache.lookup(&w, "10", 0).await);
        // Restarted without its data, flushed or evicted: the clock and the floor are gone.
        let mut conn = f.cache.redis.manager.clone();
        let () = redis::cmd("DEL").arg(f.cache.key("state")).query_async(&mut conn).await.unwrap();
        miss_token(f.cache.lookup(&u, "10", 0).await);
        f.cache.store(&w, "10", before, 0, f.list("old", &["product-2"])).await;
        miss_token(f.cache.lookup(&w, "10", 0).await);
        let now = miss_token(f.cache.lookup(&w, "10", 0).await);
        assert!(now.0 > before.0, "the clock goes on from Redis's time");
        f.cache.store(&w, "10", now, 0, f.list("new", &["product-2"])).await;
        assert_eq!(hit(f.cache.lookup(&w, "10", 0).await).model_version, "new");
    }

    #[tokio::test]
    async fn a_redis_that_forgot_the_scripts_is_taught_them_again() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        let t = miss_token(f.cache.lookup(&u, "10", 0).await);
        let mut conn = f.cache.redis.manager.clone();
        let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
        f.cache.store(&u, "10", t, 0, f.list("v1", &["product-2"])).await;
        assert_eq!(hit(f.cache.lookup(&u, "10", 0).await).model_version, "v1");
    }

    #[tokio::test]
    async fn a_token_handed_out_while_redis_was_away_never_stores() {
        let Some(f) = fixture().await else { return };
        let u = user("u");
        // A new deployment's clock starts at Redis's time: a real token is never the stand-in 0.
        assert!(miss_token(f.cache.lookup(&u, "10", 0).await).0 > 1);
        f.cache.store(&u, "10", CacheToken(0), 0, f.list("v1", &["product-2"])).await;
        miss_token(f.cache.lookup(&u, "10", 0).await);
    }
}
