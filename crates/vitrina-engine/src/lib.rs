//! Vitrina's serving engine: what turns a visitor's latest events into a ranked, explained
//! list in well under a millisecond, and trains the models it serves.
//!
//! - [`catalog`]: the live catalogue, product ids interned to dense item indices;
//! - [`online`]: each visitor's latest events and purchases, updated by every event;
//! - [`trending`]: live, time-decayed popularity over four time scales, snapshotted;
//! - [`covisit`]: live co-visitation since the active model's data range;
//! - [`bundle`], [`train`]: the models one training job produces, their artefact, and how
//!   they are trained from the event log;
//! - [`model`]: the active bundle wired to the catalogue with its embedding index;
//! - [`checkpoint`]: the online state as of one log sequence, to restore after a restart;
//! - [`rank`]: candidate sources → normalised, weighted blend → business rules → reasons;
//! - [`validate`]: leave-last-out validation of a training configuration through the engine;
//! - [`config`]: the training and ranking configurations.
//!
//! [`Engine`] puts them together behind one handle the server shares between requests.
//!
//! Invariant: no I/O and no async runtime; every call is bounded CPU work on in-memory state.
//! Invariant: every read sees a consistent model (`ArcSwap`): a request that started on one
//! model finishes on it, even if another is swapped in meanwhile.

pub mod bundle;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod covisit;
pub mod engagement;
pub mod features;
pub mod learn;
pub mod model;
pub mod offline;
pub mod online;
pub mod rank;
pub mod train;
pub mod trending;
pub mod validate;

#[cfg(test)]
mod learned_tests;
#[cfg(test)]
mod tests;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, RwLock, RwLockReadGuard,
};

use arc_swap::ArcSwap;
use vitrina_core::{recommend::Recommended, ActivityType, LogEvent, Product, ProductId, UserId};

pub use bundle::ModelBundle;
pub use checkpoint::OnlineCheckpoint;
pub use config::{RankingConfig, TrainingConfig};
pub use model::{ActiveModel, PreparedModel};
pub use rank::{Filters, ListRequest};
pub use trending::Window;

use crate::{
    catalog::Catalog,
    config::EventWeights,
    covisit::CoVisits,
    online::{online_secs, OnlineEvent, UserSnapshot, Users},
    rank::{Inputs, Profile},
    trending::{Trending, TrendingLists},
};

/// Events kept per visitor in the online state.
pub const ONLINE_HISTORY: usize = 100;
/// Partners kept per item in live co-visitation.
const COVISIT_PARTNERS: usize = 32;
/// The visitor's latest distinct items a new event pairs with in live co-visitation.
const COVISIT_RECENT: usize = 5;
/// Trending list lengths in a snapshot.
const TRENDING_TOP: usize = 1000;
const TRENDING_PER_CATEGORY: usize = 100;

/// One event of an anonymous session, as the session endpoint receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub product_id: ProductId,
    pub kind: ActivityType,
    pub ts_ms: i64,
}

/// Sizes of the engine's state, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub visitors: usize,
    /// Visitors forgotten so far to stay within the limit.
    pub evicted_visitors: u64,
    pub items: usize,
    pub products: usize,
}

/// What two engines that applied the same log hold of their visitors, in brief: equal
/// digests mean equal visitors' online states (whatever the order they were built in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDigest {
    pub visitors: usize,
    /// Events in the visitors' recent histories.
    pub events: usize,
    pub digest: u64,
}

/// The engine: shared by every request; all methods take `&self`.
pub struct Engine {
    catalog: RwLock<Catalog>,
    users: Users,
    trending: Trending,
    lists: ArcSwap<TrendingLists>,
    covisits: CoVisits,
    model: ArcSwap<ActiveModel>,
    ranking: ArcSwap<RankingConfig>,
    /// Weights live popularity counts events with.
    popularity_weights: EventWeights,
    /// Events at or below this log position never feed live co-visitation (start-up replay
    /// of a log no model covers yet: the next training covers it).
    covisit_floor: AtomicU64,
    /// Erasures so far (see [`Engine::erasures`]).
    erasures: AtomicU64,
}

impl Engine {
    pub fn new(products: impl IntoIterator<Item = Product>, ranking: RankingConfig) -> Self {
        Self::with_history(products, ranking, ONLINE_HISTORY)
    }

    /// An engine keeping `history` events per visitor (offline evaluation keeps them all).
    pub fn with_history(
        products: impl IntoIterator<Item = Product>,
        ranking: RankingConfig,
        history: usize,
    ) -> Self {
        Self {
            catalog: RwLock::new(Catalog::new(products)),
            users: Users::new(history),
            trending: Trending::default(),
            lists: ArcSwap::from_pointee(TrendingLists::default()),
            covisits: CoVisits::new(COVISIT_PARTNERS),
            model: ArcSwap::from_pointee(ActiveModel::empty("none")),
            ranking: ArcSwap::from_pointee(ranking),
            popularity_weights: EventWeights::default(),
            covisit_floor: AtomicU64::new(0),
            erasures: AtomicU64::new(0),
        }
    }

    fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().expect("catalog lock")
    }

    fn item_of(&self, product: &ProductId) -> u32 {
        if let Some(i) = self.catalog().index(product) {
            return i;
        }
        self.catalog.write().expect("catalog lock").intern(product)
    }

    /// Applies an acknowledged event to the visitor's online state, live popularity and (for
    /// events newer than the active model's data) live co-visitation.
    pub fn observe(&self, e: &LogEvent) {
        let Some(product) = &e.product_id else { return };
        let item = self.item_of(product);
        let event = OnlineEvent::new(item, e.ts_ms, e.activity_type, e.value);
        let weight = self.popularity_weights.event_weight(e.activity_type, e.value);
        let floor = self.covisit_floor.load(Ordering::Relaxed).max(self.model.load().last_seq());
        if weight > 0.0 && e.seq > floor {
            let recent = self.users.recent(&e.user_id, COVISIT_RECENT * 3);
            let mut partners: Vec<u32> = Vec::new();
            for prev in recent.iter().rev() {
                if prev.item != item && !partners.contains(&prev.item) {
                    partners.push(prev.item);
                    if partners.len() == COVISIT_RECENT {
                        break;
                    }
                }
            }
            for p in partners {
                self.covisits.add(p, item, 1.0);
                self.covisits.add(item, p, 1.0);
            }
        }
        self.users.observe(&e.user_id, event, e.seq);
        self.trending.observe(item, event.ts, weight);
    }

    /// Applies an event to live popularity only (offline evaluation, for visitors it does
    /// not rank).
    pub fn observe_popularity(&self, e: &LogEvent) {
        let Some(product) = &e.product_id else { return };
        let item = self.item_of(product);
        let weight = self.popularity_weights.event_weight(e.activity_type, e.value);
        self.trending.observe(item, online_secs(e.ts_ms), weight);
    }

    /// Events up to `seq` will not feed live co-visitation (until the next activation).
    pub fn set_covisit_floor(&self, seq: u64) {
        self.covisit_floor.store(seq, Ordering::Relaxed);
    }

    /// Re-ranks live popularity (call every second or so, off the request path).
    pub fn refresh(&self) {
        let lists = self.trending.snapshot(&self.catalog(), TRENDING_TOP, TRENDING_PER_CATEGORY);
        self.lists.store(Arc::new(lists));
    }

    /// Makes `prepared` the active model. Live co-visitation restarts empty: the caller
    /// replays events after the model's data range through [`Engine::observe`] if it wants
    /// them back.
    pub fn activate(&self, prepared: PreparedModel) {
        let active = prepared.attach(&mut self.catalog.write().expect("catalog lock"));
        self.model.store(Arc::new(active));
        self.covisit_floor.store(0, Ordering::Relaxed);
        self.covisits.clear();
    }

    /// Attaches `prepared` to the catalogue without making it active: a model an experiment
    /// variant serves alongside the active one (see [`Engine::recommend_with`]).
    pub fn attach(&self, prepared: PreparedModel) -> Arc<ActiveModel> {
        Arc::new(prepared.attach(&mut self.catalog.write().expect("catalog lock")))
    }

    /// The model requests started now use.
    pub fn model(&self) -> Arc<ActiveModel> {
        self.model.load_full()
    }

    pub fn ranking(&self) -> Arc<RankingConfig> {
        self.ranking.load_full()
    }

    pub fn set_ranking(&self, config: RankingConfig) {
        self.ranking.store(Arc::new(config));
    }

    fn with_inputs<T>(&self, model: &ActiveModel, config: &RankingConfig, f: impl FnOnce(&Inputs) -> T) -> T {
        let catalog = self.catalog();
        let lists = self.lists.load();
        let inputs = Inputs { model, config, catalog: &catalog, lists: &lists, covisits: &self.covisits };
        f(&inputs)
    }

    /// The visitor's list, ranked by `model` with `config`.
    pub fn recommend_with(
        &self,
        model: &ActiveModel,
        config: &RankingConfig,
        user: &UserId,
        req: &ListRequest,
    ) -> Vec<Recommended> {
        let snapshot = self.users.snapshot(user, config.history_events);
        self.rank_snapshot(model, config, &snapshot, req)
    }

    /// The candidates the learned ranker would order for the visitor, with their features
    /// (see [`rank::Inputs::profile_features`]): what ranker training lists are made of.
    pub fn candidate_features(
        &self,
        model: &ActiveModel,
        config: &RankingConfig,
        user: &UserId,
        req: &ListRequest,
    ) -> Vec<(ProductId, features::Features)> {
        let snapshot = self.users.snapshot(user, config.history_events);
        self.with_inputs(model, config, |inputs| {
            let profile =
                Profile::new(&snapshot, &model.bundle.config.weights, config, inputs.catalog, req.now_ms);
            inputs
                .profile_features(&profile, req)
                .into_iter()
                .filter_map(|(item, f)| Some((inputs.catalog.id(item)?.clone(), f)))
                .collect()
        })
    }

    /// [`Engine::recommend_with`] on the active model and ranking.
    pub fn recommend(&self, user: &UserId, req: &ListRequest) -> Vec<Recommended> {
        self.recommend_with(&self.model(), &self.ranking(), user, req)
    }

    fn rank_snapshot(
        &self,
        model: &ActiveModel,
        config: &RankingConfig,
        snapshot: &UserSnapshot,
        req: &ListRequest,
    ) -> Vec<Recommended> {
        self.with_inputs(model, config, |inputs| {
            let profile =
                Profile::new(snapshot, &model.bundle.config.weights, config, inputs.catalog, req.now_ms);
            inputs.rank_profile(&profile, req)
        })
    }

    /// A list for an anonymous visitor from the events of their session (products the
    /// engine does not know are ignored).
    pub fn recommend_session(
        &self,
        model: &ActiveModel,
        config: &RankingConfig,
        events: &[SessionEvent],
        req: &ListRequest,
    ) -> Vec<Recommended> {
        let mut sorted: Vec<&SessionEvent> = events.iter().collect();
        sorted.sort_by_key(|e| e.ts_ms);
        let snapshot = {
            let catalog = self.catalog();
            let mut s = UserSnapshot::default();
            for e in sorted {
                if let Some(item) = catalog.index(&e.product_id) {
                    let ev = OnlineEvent::new(item, e.ts_ms, e.kind, None);
                    s.events.push(ev);
                    if e.kind == ActivityType::Purchase {
                        s.purchases.push((item, ev.ts));
                    }
                }
            }
            s
        };
        self.rank_snapshot(model, config, &snapshot, req)
    }

    /// Products similar to `product`; `None` when the product is not in the catalogue.
    pub fn similar(
        &self,
        model: &ActiveModel,
        config: &RankingConfig,
        product: &ProductId,
        req: &ListRequest,
    ) -> Option<Vec<Recommended>> {
        self.with_inputs(model, config, |inputs| {
            let item = inputs.catalog.index(product).filter(|&i| inputs.catalog.entry(i).is_some())?;
            Some(inputs.rank_similar(item, req))
        })
    }

    /// Live popularity over `window`.
    pub fn popular(&self, window: Window, req: &ListRequest) -> Vec<Recommended> {
        self.with_inputs(&self.model(), &self.ranking(), |inputs| inputs.rank_popular(window, req))
    }

    /// The newest available products by creation time, newest first (Gorse's "latest").
    pub fn latest(&self, req: &ListRequest) -> Vec<Recommended> {
        self.with_inputs(&self.model(), &self.ranking(), |inputs| inputs.rank_latest(req))
    }

    /// Adds or replaces products; they are served (or hidden) from the next request on.
    pub fn upsert_products(&self, products: impl IntoIterator<Item = Product>) {
        let mut catalog = self.catalog.write().expect("catalog lock");
        for p in products {
            catalog.upsert(p);
        }
    }

    pub fn remove_product(&self, id: &ProductId) {
        self.catalog.write().expect("catalog lock").remove(id);
    }

    /// Makes the catalogue exactly `products` (what the store holds): adds or replaces the
    /// ones that differ, removes the ones not among them. `true` when anything changed. The
    /// comparison holds only the read lock, so lists keep being served meanwhile.
    pub fn sync_products(&self, products: Vec<Product>) -> bool {
        let (changed, gone) = {
            let catalog = self.catalog();
            let present: std::collections::HashSet<&ProductId> = products.iter().map(|p| &p.id).collect();
            let gone: Vec<ProductId> = catalog
                .entries()
                .filter(|(_, e)| !present.contains(&e.product.id))
                .map(|(_, e)| e.product.id.clone())
                .collect();
            let changed: Vec<Product> = products
                .into_iter()
                .filter(|p| {
                    !catalog.index(&p.id).and_then(|i| catalog.entry(i)).is_some_and(|e| *e.product == *p)
                })
                .collect();
            (changed, gone)
        };
        if changed.is_empty() && gone.is_empty() {
            return false;
        }
        let mut catalog = self.catalog.write().expect("catalog lock");
        changed.into_iter().for_each(|p| {
            catalog.upsert(p);
        });
        gone.iter().for_each(|id| catalog.remove(id));
        true
    }

    pub fn product(&self, id: &ProductId) -> Option<Arc<Product>> {
        let catalog = self.catalog();
        catalog.index(id).and_then(|i| catalog.entry(i)).map(|e| e.product.clone())
    }

    /// The ids among `ids` the catalogue does not hold, each once, sorted (one look at the
    /// catalogue for a whole batch of events).
    pub fn unknown_products<'a>(&self, ids: impl IntoIterator<Item = &'a ProductId>) -> Vec<&'a ProductId> {
        let mut unknown: Vec<&ProductId> = {
            let catalog = self.catalog();
            // An id the engine has heard of (in an event, a model, a deleted product) is not
            // a product unless the catalogue holds it.
            ids.into_iter().filter(|id| catalog.index(id).and_then(|i| catalog.entry(i)).is_none()).collect()
        };
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    /// The catalogue products `keep` accepts, shared (nothing is copied). `keep` runs after
    /// the catalogue's lock is released: a slow one (a text search) holds up no writer.
    pub fn products_where(&self, keep: impl Fn(&Product) -> bool) -> Vec<Arc<Product>> {
        let mut all: Vec<Arc<Product>> = self.catalog().entries().map(|(_, e)| e.product.clone()).collect();
        all.retain(|p| keep(p));
        all
    }

    /// Every catalogue product.
    pub fn products(&self) -> Vec<Product> {
        self.catalog().entries().map(|(_, e)| Product::clone(&e.product)).collect()
    }

    /// Forgets a deleted visitor's online state.
    pub fn forget_user(&self, user: &UserId) {
        self.users.forget(user, || {
            self.erasures.fetch_add(1, Ordering::SeqCst);
        });
    }

    /// Some of the visitor's events were deleted from the log (a retraction): their online
    /// state is dropped and read back from the log at their next list or event, and a reader
    /// of the log that began before gives up as after an erasure (it may hold the deleted
    /// events). Live popularity (until it decays) and co-visitation (until the next
    /// activation) keep what they counted of them.
    pub fn reload_user(&self, user: &UserId) {
        self.users.forget_to_reload(user, || {
            self.erasures.fetch_add(1, Ordering::SeqCst);
        });
    }

    /// How many erasures happened so far: a reader of the log takes it before reading and
    /// hands it to [`Engine::hydrate`] or [`Engine::settle`], which give up when an erasure
    /// happened meanwhile (the log read may hold the erased visitor's events).
    pub fn erasures(&self) -> u64 {
        self.erasures.load(Ordering::SeqCst)
    }

    /// After events were observed with `erasures` taken before they were appended: if an
    /// erasure ran meanwhile, the visitors' state may hold erased events, so it is dropped
    /// and read back from the log on their next list.
    pub fn settle<'a>(&self, erasures: u64, users: impl IntoIterator<Item = &'a UserId>) {
        if self.erasures() != erasures {
            users.into_iter().for_each(|u| self.users.forget_to_reload(u, || {}));
        }
    }

    /// Whether a visitor without online state may have history in the log: only after some
    /// visitor was forgotten to stay within the limit (or to be reloaded).
    pub fn may_need_hydration(&self) -> bool {
        self.users.evicted() > 0
    }

    /// Keeps online state for at most about `visitors` visitors (the longest idle go first).
    pub fn limit_visitors(&self, visitors: usize) {
        self.users.limit(visitors);
    }

    /// Whether the visitor has online state (else they are new, or were forgotten to stay
    /// within the limit).
    pub fn knows(&self, user: &UserId) -> bool {
        self.users.contains(user)
    }

    /// Gives a visitor without online state their history back from the log (their latest
    /// events, any order). Only the visitor's own state is rebuilt: live popularity and
    /// co-visitation counted these events when they happened. A visitor who has state by now
    /// (an event arrived meanwhile) is left alone.
    pub fn hydrate(&self, user: &UserId, events: &[LogEvent], erasures: u64) {
        if events.is_empty() || self.users.contains(user) {
            return;
        }
        let online: Vec<OnlineEvent> = events
            .iter()
            .filter(|e| &e.user_id == user)
            .filter_map(|e| {
                let item = self.item_of(e.product_id.as_ref()?);
                Some(OnlineEvent::new(item, e.ts_ms, e.activity_type, e.value))
            })
            .collect();
        let seq = events.iter().filter(|e| &e.user_id == user).map(|e| e.seq).max().unwrap_or(0);
        self.users.hydrate(user, &online, seq, || self.erasures() == erasures);
    }

    /// The highest log sequence of the visitor's events in the online state (for a visitor
    /// without state: of any visitor forgotten so far, as they may be one). A cached list
    /// computed from a state that had applied less may lack one of them.
    pub fn last_seq(&self, user: &UserId) -> u64 {
        self.users.seq(user)
    }

    /// How many of the visitor's events their online state holds (0 when it holds none).
    pub fn online_events(&self, user: &UserId) -> usize {
        self.users.recent(user, usize::MAX).len()
    }

    /// The online state, as of log sequence `seq`: the caller guarantees that exactly the
    /// events up to `seq` were observed (nothing is observed while this runs).
    pub fn checkpoint(&self, seq: u64) -> OnlineCheckpoint {
        let model = self.model();
        let users = self.users.export();
        let trending = self.trending.export();
        let mut covisits = self.covisits.export();
        if !Arc::ptr_eq(&model, &self.model()) {
            // A model was activated meanwhile (training runs beside the follower): what was
            // copied may be the old model's live co-visitation, or part of it.
            covisits.clear();
        }
        let items = self.catalog().ids().to_vec();
        OnlineCheckpoint {
            seq,
            model_version: model.version.clone(),
            items,
            evicted: self.users.evicted(),
            users,
            trending,
            covisits,
        }
    }

    /// Restores a checkpoint into an engine that has observed nothing yet; the caller then
    /// observes the log after `checkpoint.seq`. Live co-visitation is restored only when the
    /// active model is the one the checkpoint was taken under (a model activated since
    /// covers other data, as at any activation). Returns whether it was.
    pub fn restore(&self, checkpoint: OnlineCheckpoint) -> bool {
        let items: Vec<u32> = checkpoint.items.iter().map(|id| self.item_of(id)).collect();
        let map = |i: u32| items[i as usize];
        for (user, mut s) in checkpoint.users {
            s.events.iter_mut().for_each(|e| e.item = map(e.item));
            s.purchases.iter_mut().for_each(|p| p.0 = map(p.0));
            s.rated.iter_mut().for_each(|i| *i = map(*i));
            self.users.import(user, s, checkpoint.seq);
        }
        self.users.add_evicted(checkpoint.evicted, checkpoint.seq);
        let mut trending = checkpoint.trending;
        let mut scores = vec![[0.0f32; 4]; items.iter().map(|&i| i as usize + 1).max().unwrap_or(0)];
        for (i, s) in trending.scores.iter().enumerate().take(items.len()) {
            scores[items[i] as usize] = *s;
        }
        trending.scores = scores;
        self.trending.import(trending);
        let same_model = checkpoint.model_version == self.model().version;
        if same_model {
            for (a, partners) in checkpoint.covisits {
                self.covisits.import(map(a), partners.into_iter().map(|(b, w)| (map(b), w)).collect());
            }
        }
        same_model
    }

    /// A digest of every visitor's online state (see [`StateDigest`]).
    pub fn digest(&self) -> StateDigest {
        let ids = self.catalog().ids().to_vec();
        let name = |item: u32| ids.get(item as usize).map_or("", |id| id.as_str());
        let (visitors, events, digest) = self.users.digest(name);
        StateDigest { visitors, events, digest }
    }

    pub fn stats(&self) -> EngineStats {
        let catalog = self.catalog();
        EngineStats {
            visitors: self.users.len(),
            evicted_visitors: self.users.evicted(),
            items: catalog.len(),
            products: catalog.products(),
        }
    }
}
