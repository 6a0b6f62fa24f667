//! Ports: the traits that storage, bus and cache backends implement.
//!
//! The server holds each port as `Arc<dyn …>`; the embedded backends live in
//! `vitrina-store` and `vitrina-bus`, and distributed ones (PostgreSQL, Redis, NATS)
//! implement the same traits. Nothing in the domain knows which backend it runs on.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    events::DomainEvent, keys::ApiKey, recommend::RecommendationList, ActivityType, LogEvent, NewActivity,
    Product, ProductId, StoredActivity, User, UserId,
};

/// Why a backend call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The write contradicts what is stored (an existing id…); the message says how.
    #[error("{0}")]
    Conflict(String),
    #[error("storage is shutting down")]
    Closed,
    /// The backend cannot be reached now (a database server down, a connection lost, no
    /// connection free in time). A write either took effect whole or not at all; retrying it
    /// is safe (events with the same `eventId`).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What happened to one event of an append.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Newly written at this position of the log.
    Stored(StoredActivity),
    /// An event with the same `eventId` was already in the log at `seq`; nothing written.
    Duplicate { seq: u64 },
}

/// Size of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    pub events: u64,
    pub max_seq: u64,
}

/// The append-only event log: the source of truth.
///
/// Invariant: `append` returns only once the events are durable, and it is atomic: either
/// every event of the batch is written (or recognised as a duplicate) or none is.
#[async_trait]
pub trait EventLog: Send + Sync {
    async fn append(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<AppendOutcome>>;
    /// The user's latest events by event time, newest first.
    async fn recent_for_user(&self, user: &UserId, limit: usize) -> StoreResult<Vec<StoredActivity>>;
    /// The user's events with event time at or after `since`, oldest first.
    async fn user_events_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<StoredActivity>>;
    /// Up to `limit` events with `seq > after_seq`, in log order.
    async fn page(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredActivity>>;
    /// [`EventLog::page`] reduced to [`LogEvent`]s: what training and replay read.
    async fn scan(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<LogEvent>>;
    async fn stats(&self) -> StoreResult<LogStats>;
    /// Deletes those of `seqs` that are events of `user` (a retraction: Gorse's feedback
    /// deletion) and answers how many it deleted; their `eventId`s are new again. The other
    /// events keep their sequences: a follower that applied the deleted ones must read the
    /// visitor back from the log.
    async fn delete_events(&self, user: &UserId, seqs: &[u64]) -> StoreResult<u64>;
    /// Whether the log can take writes now; `Err` says why not.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    /// Registers this process's follower of the log: from now on `listener` hears every
    /// commit of this process that adds events, in commit order, right after it commits (a
    /// second registration replaces the first). `false`: the backend offers no such feed and
    /// followers read the log ([`EventLog::scan`]) instead.
    fn on_commit(&self, _listener: CommitListener) -> bool {
        false
    }

    /// A name of this log, the same in every process that opens it and different for every
    /// other log (a hash of its database's random key; letters and digits only), so that
    /// processes of one deployment share a broker's subjects and no other deployment's.
    /// `None`: the log serves one process.
    fn log_id(&self) -> Option<String> {
        None
    }
}

/// One commit of the log as its follower hears it: the events it added, in `seq` order, and
/// the log's head before them (the highest `seq` it had ever given). A follower that has
/// applied the log up to at least `after` can apply these events next.
#[derive(Debug, Clone)]
pub struct Committed {
    pub after: u64,
    pub events: Vec<LogEvent>,
}

/// Hears a log's commits; see [`EventLog::on_commit`].
pub type CommitListener = Box<dyn Fn(Committed) + Send + Sync>;

/// Which products to list.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    pub category: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// The product catalogue.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Creates one product; `StoreError::Conflict` if the id exists.
    async fn insert_product(&self, product: Product) -> StoreResult<()>;
    /// Creates or replaces products, atomically; `created_at` of existing ones is kept.
    async fn upsert_products(&self, products: Vec<Product>) -> StoreResult<()>;
    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>>;
    /// Products ordered by id.
    async fn products(&self, query: ProductQuery) -> StoreResult<(Vec<Product>, u64)>;
    async fn delete_product(&self, id: &ProductId) -> StoreResult<bool>;
    /// A number that changes whenever the catalogue is written, so that a process can tell
    /// whether to read it again; `None` when the store cannot tell (read it whole).
    async fn catalogue_revision(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }
}

/// What a user deletion removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeletedUser {
    pub events: u64,
    pub impressions: u64,
}

/// Known users. Tracking an event for an unknown user registers it.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn upsert_user(&self, user: User) -> StoreResult<()>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn users(&self, offset: usize, limit: usize) -> StoreResult<(Vec<User>, u64)>;
    /// Deletes the user with all their events and impressions, atomically.
    async fn delete_user(&self, id: &UserId) -> StoreResult<Option<DeletedUser>>;
}

/// One recommended item as it was shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpressionItem {
    pub product_id: ProductId,
    pub source: String,
    pub position: u32,
}

/// One served recommendation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    pub recommendation_id: String,
    pub user_id: UserId,
    pub model_version: String,
    pub variant: String,
    pub created_at: DateTime<Utc>,
    pub items: Vec<ImpressionItem>,
}

/// The log of served lists, for attribution and stats.
///
/// Invariant: a backend never writes a raw visitor id: it stores a keyed pseudonym, so that
/// a list served after a visitor's erasure does not put their id back on disk. Lists read
/// for a given visitor carry that visitor's id; lists read by variant carry the pseudonym.
/// Lists and outcomes older than the configured retention are deleted. Recording is off the
/// request path, but a read sees every list and outcome recorded before it was called.
#[async_trait]
pub trait ImpressionStore: Send + Sync {
    /// Records a served list. Best effort and non-blocking: serving never waits for it.
    fn record_impression(&self, impression: Impression);
    async fn impressions_for_user(&self, user: &UserId, since: DateTime<Utc>)
        -> StoreResult<Vec<Impression>>;
    /// [`ImpressionStore::impressions_for_user`] for each query, in one call where the
    /// backend can (attribution asks for a whole batch of events at once).
    async fn impressions_for_users(
        &self,
        queries: Vec<(UserId, DateTime<Utc>)>,
    ) -> StoreResult<Vec<Vec<Impression>>> {
        let mut out = Vec::with_capacity(queries.len());
        for (user, since) in &queries {
            out.push(self.impressions_for_user(user, *since).await?);
        }
        Ok(out)
    }
    /// The impression served to `user` under `recommendation_id`, if it was recorded.
    async fn impression(&self, user: &UserId, recommendation_id: &str) -> StoreResult<Option<Impression>>;
    /// The outcomes attributed to `user`'s events, oldest first.
    async fn outcomes_for_user(&self, user: &UserId) -> StoreResult<Vec<AttributedOutcome>>;
    /// Records an attributed outcome; an `event_id` already recorded is ignored, so each
    /// event counts once. Best effort and non-blocking, like impressions.
    fn record_outcome(&self, outcome: AttributedOutcome);
    /// How often `product` was shown in served lists, and the outcomes attributed to it, from
    /// the UTC day of `since` on. Kept as per-product daily totals written with the lists and
    /// outcomes themselves (a list or outcome recorded twice counts once) and pruned with
    /// them; the totals name no visitor, so an erasure leaves them as they are.
    async fn exposure(&self, product: &ProductId, since: DateTime<Utc>) -> StoreResult<Exposure>;
    /// Every product's totals (as [`ImpressionStore::exposure`] counts them) over the UTC
    /// days numbered `days.0` up to but not including `days.1` (days since 1970-01-01).
    async fn exposures(&self, days: (i64, i64)) -> StoreResult<Exposures>;
    /// Every impression and attributed outcome whose variant starts with `variant_prefix`
    /// (an experiment's variants are named `{experimentId}/{variant}`).
    async fn experiment_log(
        &self,
        variant_prefix: &str,
    ) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)>;
    /// Whether served lists are being recorded; `Err` says why not (a writer that stopped, or
    /// one that has made no progress with lists waiting).
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    /// Waits until every list and outcome recorded before the call is written (or dropped).
    async fn flush_impressions(&self) {}
}

/// A product's totals in served lists: how often it was shown, and the attributed clicks,
/// add-to-carts, purchases and revenue.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    pub impressions: u64,
    pub clicks: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub revenue: f64,
}

impl Exposure {
    /// Adds an attributed outcome of `kind` (`click`, `add_to_cart` or `purchase`; others
    /// count nothing) worth `value`.
    pub fn add_outcome(&mut self, kind: ActivityType, value: f64) {
        match kind {
            ActivityType::Click => self.clicks += 1,
            ActivityType::AddToCart => self.add_to_carts += 1,
            ActivityType::Purchase => {
                self.purchases += 1;
                self.revenue += value;
            }
            _ => {}
        }
    }

    pub fn add(&mut self, other: &Exposure) {
        self.impressions += other.impressions;
        self.clicks += other.clicks;
        self.add_to_carts += other.add_to_carts;
        self.purchases += other.purchases;
        self.revenue += other.revenue;
    }
}

/// Every product's exposure totals over a range of days ([`ImpressionStore::exposures`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposures {
    /// Days of the range that hold any totals: a list shown or an outcome attributed (days
    /// pruned by retention, or with neither, do not count).
    pub days: u32,
    /// Per product with totals in the range, in product id order.
    pub products: Vec<(ProductId, Exposure)>,
}

/// A click, add-to-cart or purchase attributed to one item of a served list.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributedOutcome {
    pub event_id: String,
    pub recommendation_id: String,
    pub user_id: UserId,
    pub variant: String,
    pub product_id: ProductId,
    pub source: String,
    pub position: u32,
    /// `click`, `add_to_cart` or `purchase`.
    pub kind: ActivityType,
    /// Revenue of a purchase, else 0.
    pub value: f64,
    pub created_at: DateTime<Utc>,
}

/// Experiment definitions, stored as documents (the experiments crate owns their shape).
#[async_trait]
pub trait ExperimentStore: Send + Sync {
    /// Creates or replaces the experiment `id`. Durable when it returns.
    async fn save_experiment(&self, id: &str, doc: Value) -> StoreResult<()>;
    /// Every experiment, oldest first.
    async fn experiments(&self) -> StoreResult<Vec<Value>>;
}

/// API keys (hashes only; see [`crate::keys`]).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; `StoreError::Conflict` if its id or hash exists. Durable when it returns.
    async fn insert_key(&self, key: ApiKey) -> StoreResult<()>;
    /// Every key, revoked ones included, oldest first.
    async fn keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Marks the key revoked at `at`; `false` when no such key exists. Revoking twice keeps
    /// the first time.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
}

/// Lifecycle of a model in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Training,
    Validated,
    Active,
    Rejected,
    /// Trained, but the held-out split was empty or too small to compare it with the active
    /// model: activated only with `force`.
    Unvalidated,
    Archived,
    Failed,
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Training => "training",
            Self::Validated => "validated",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Unvalidated => "unvalidated",
            Self::Archived => "archived",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Training,
            Self::Validated,
            Self::Active,
            Self::Rejected,
            Self::Unvalidated,
            Self::Archived,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// One entry of the model registry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub version: String,
    pub algorithm: String,
    pub parameters: Value,
    pub metrics: Value,
    pub status: ModelStatus,
    /// Why the model is `rejected` or `failed`.
    pub status_reason: Option<String>,
    /// The event log range the model was trained on: `(first_seq, last_seq)`.
    pub data_range: (u64, u64),
    /// The artefact: its path (relative to the data directory), checksum and size.
    pub artefact: Option<Artefact>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    /// The model that was active when this one was promoted: where a rollback returns to.
    pub previous_version: Option<String>,
}

/// Where a model's artefact is and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    pub path: String,
    /// `crc32:` and eight hex digits, over the whole file.
    pub checksum: String,
    pub size_bytes: u64,
}

/// Where model artefacts live, readable by every process of a deployment: whole byte strings
/// under a relative path (`models/{version}.vtb`).
#[async_trait]
pub trait ArtefactStore: Send + Sync {
    /// Stores `bytes` under `path`, replacing what was there. Durable when it returns; a reader
    /// never sees it half-written.
    async fn put_artefact(&self, path: &str, bytes: Vec<u8>) -> StoreResult<()>;
    /// The bytes under `path`; `None` when nothing is stored there.
    async fn get_artefact(&self, path: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Removes what is stored under `path` (nothing there is not an error). Durable when it
    /// returns.
    async fn delete_artefact(&self, path: &str) -> StoreResult<()>;
}

/// Named locks with one holder across every process of a deployment: the training job and
/// other work that must run once cluster-wide take one.
#[async_trait]
pub trait Locks: Send + Sync {
    /// The lock `name`, if no one holds it now. It is held until the guard is released or
    /// dropped, or its process dies.
    async fn try_lock(&self, name: &str) -> StoreResult<Option<LockGuard>>;
}

/// A lock held (see [`Locks::try_lock`]); dropping it releases the lock too, without waiting.
pub type LockGuard = Box<dyn HeldLock>;

/// What holds a lock.
#[async_trait]
pub trait HeldLock: Send + Sync {
    /// Releases the lock, and returns once others can take it.
    async fn release(self: Box<Self>);
}

/// The model registry.
#[async_trait]
pub trait ModelRegistry: Send + Sync {
    /// Creates or updates a model record.
    async fn save_model(&self, record: ModelRecord) -> StoreResult<()>;
    /// Marks `version` active and the previously active model archived, atomically. A
    /// promotion (`rollback == false`) records the model it replaces as `previous_version`;
    /// a rollback leaves that history alone, so repeated rollbacks walk further back.
    async fn activate_model(&self, version: &str, at: DateTime<Utc>, rollback: bool) -> StoreResult<()>;
    /// All models, newest first.
    async fn models(&self) -> StoreResult<Vec<ModelRecord>>;
}

/// A subscription to the bus.
#[async_trait]
pub trait Subscription: Send {
    /// The next event; `None` once the bus is closed. Slow subscribers may miss events.
    async fn next(&mut self) -> Option<DomainEvent>;
}

/// The domain event bus.
pub trait EventBus: Send + Sync {
    /// Publishes without waiting; delivery to subscribers is asynchronous.
    fn publish(&self, event: DomainEvent);
    fn subscribe(&self) -> Box<dyn Subscription>;
}

/// Proof that a cache miss was observed, used to refuse a stale write-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheToken(pub u64);

/// Result of a cache lookup.
#[derive(Debug, Clone)]
pub enum CacheLookup {
    Hit(Arc<RecommendationList>),
    Miss(CacheToken),
}

impl CacheLookup {
    /// The list found, if any.
    pub fn hit(self) -> Option<Arc<RecommendationList>> {
        match self {
            Self::Hit(list) => Some(list),
            Self::Miss(_) => None,
        }
    }

    /// The token of a miss, if it was one.
    pub fn miss(self) -> Option<CacheToken> {
        match self {
            Self::Miss(token) => Some(token),
            Self::Hit(_) => None,
        }
    }
}

/// Per-user cache of computed recommendation lists.
///
/// Invariants: after `invalidate_user(u)` returns, no lookup for `u` returns a list computed
/// before the call, and a `store` with a token taken before the call is ignored. A lookup
/// never returns a list computed from an online state that had applied the log less far than
/// `since` (the asking process's sequence of the visitor's latest event): whatever became of
/// an invalidation, a process never serves a visitor a list without an event it applied. A
/// cache that processes share also ignores a `store` of a list computed from a state that
/// had applied less than the visitor's last acknowledged event (`applied`): the storing
/// process may lag behind.
#[async_trait]
pub trait RecommendationCache: Send + Sync {
    async fn lookup(&self, user: &UserId, key: &str, since: u64) -> CacheLookup;
    /// Keeps `list`, computed after the lookup that handed out `token` from an online state
    /// that had applied the log through `applied`.
    async fn store(
        &self,
        user: &UserId,
        key: &str,
        token: CacheToken,
        applied: u64,
        list: Arc<RecommendationList>,
    );
    async fn invalidate_user(&self, user: &UserId);
    /// [`Self::invalidate_user`] for each of `users`, whose events up to `applied` the online
    /// state has applied (a cache across the network does it in one round trip).
    async fn invalidate_users(&self, users: &[UserId], applied: u64) {
        let _ = applied;
        for user in users {
            self.invalidate_user(user).await;
        }
    }
    async fn invalidate_all(&self);
    /// Whether the process that acknowledges a visitor's events drops their lists itself,
    /// before it acknowledges (the cache processes share): a follower applying the events
    /// then leaves the cache alone. Otherwise the follower drops them before it reports the
    /// events applied.
    fn dropped_on_acknowledgement(&self) -> bool {
        false
    }
    /// Lists cached now (approximate; for metrics).
    fn entries(&self) -> u64 {
        0
    }
}
