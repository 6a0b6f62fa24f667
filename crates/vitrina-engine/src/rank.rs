//! Candidates → ranking → an explained list.
//!
//! Each source proposes at most `candidatesPerSource` items with raw scores; each source's
//! scores are normalised by its best (so every source speaks on a 0–1 scale) and the final
//! score is the weighted sum. An item's `reason` is the source that contributed most; its
//! `because` is the visitor's event behind a personalised source. Business rules come last:
//! unavailable products, filters, items already seen or purchased, the per-category cap.
//! Lists too short after the rules are filled from live popularity with scores that never
//! exceed the last ranked item's.

use std::collections::HashSet;

use rustc_hash::{FxHashMap, FxHashSet};
use vitrina_algo::ivf::exact_search;
use vitrina_core::{
    recommend::{Recommended, Source},
    ActivityType, ProductId,
};

use crate::{
    catalog::{Catalog, Entry},
    config::{EventWeights, RankerChoice, RankingConfig},
    covisit::{self, CoVisits},
    features::{self, Features, RequestContext},
    model::ActiveModel,
    online::{online_secs, OnlineEvent, UserSnapshot, EPOCH_SECS},
    trending::{TrendingLists, Window},
};

/// Shrinkage of live co-visitation weights into similarities.
pub(crate) const COVISIT_SHRINK: f32 = 5.0;
/// Profile items whose neighbours are looked up.
const PROFILE_ITEMS: usize = 12;
/// Latest items whose successors are looked up.
const NEXT_ITEM_HISTORY: usize = 3;
/// Categories of the visitor's profile that get their popular items proposed.
const PROFILE_CATEGORIES: usize = 2;
const N_SOURCES: usize = Source::ALL.len();
/// Conjugate-gradient steps of the serving-time fold-in (close to exact; see the ALS tests).
const FOLD_IN_STEPS: usize = 8;

/// Filters a request adds to the business rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub category: Option<String>,
    pub exclude: HashSet<ProductId>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
}

/// Everything ranking reads; borrowed for one request.
pub struct Inputs<'a> {
    pub model: &'a ActiveModel,
    pub config: &'a RankingConfig,
    pub catalog: &'a Catalog,
    pub lists: &'a TrendingLists,
    pub covisits: &'a CoVisits,
}

/// One request.
pub struct ListRequest<'a> {
    pub limit: usize,
    pub filters: &'a Filters,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// The visitor as ranking sees them.
#[derive(Debug, Default)]
pub struct Profile {
    /// Distinct items with their recency-weighted interest and strongest event, best first.
    items: Vec<(u32, f32, ActivityType)>,
    /// Distinct items with their interest summed over the events read (the last
    /// `historyEvents`) without recency decay, best first: what `whole_history` reads, as
    /// EASE scores a visitor's whole row.
    history: Vec<(u32, f32, ActivityType)>,
    /// Distinct items, newest first.
    recent: Vec<u32>,
    /// Items with an event in the window, and every item rated over the whole history.
    seen: FxHashSet<u32>,
    purchased: FxHashSet<u32>,
    categories: Vec<u32>,
    /// Each category's share of the profile's interest.
    category_shares: FxHashMap<u32, f32>,
    /// Mean log price of the profile's products.
    mean_log_price: Option<f32>,
    n_events: usize,
    /// Unix ms of the latest event.
    last_event_ms: Option<i64>,
}

impl Profile {
    /// Builds the profile from a visitor's latest events.
    pub fn new(
        snapshot: &UserSnapshot,
        weights: &EventWeights,
        config: &RankingConfig,
        catalog: &Catalog,
        now_ms: i64,
    ) -> Self {
        let mut by_item: FxHashMap<u32, Interest> = FxHashMap::default();
        let mut recent = Vec::new();
        let mut seen = FxHashSet::default();
        let mut factor = 1.0f32;
        let disliked = disliked(&snapshot.events);
        for e in snapshot.events.iter().rev() {
            let w = weights.event_weight(e.kind, e.value());
            seen.insert(e.item);
            if disliked.contains(&e.item) {
                // Seen, but no interest: it neither leads to candidates nor explains them.
                factor *= config.recency;
                continue;
            }
            if !recent.contains(&e.item) && w > 0.0 {
                recent.push(e.item);
            }
            let entry = by_item.entry(e.item).or_insert(Interest {
                decayed: 0.0,
                undecayed: 0.0,
                kind: e.kind,
                strongest: f32::MIN,
            });
            entry.decayed += w * factor;
            entry.undecayed += w;
            if w > entry.strongest {
                (entry.kind, entry.strongest) = (e.kind, w);
            }
            factor *= config.recency;
        }
        let items = Interest::best_first(&by_item, |x| x.decayed);
        let history = Interest::best_first(&by_item, |x| x.undecayed);
        let window_start =
            online_secs(now_ms).saturating_sub(config.purchased_window_days.saturating_mul(86_400));
        let purchased = snapshot.purchases.iter().filter(|p| p.1 >= window_start).map(|p| p.0).collect();
        seen.extend(snapshot.rated.iter().copied());
        let mut cat_weight: FxHashMap<u32, f32> = FxHashMap::default();
        let (mut log_price, mut priced) = (0.0, 0usize);
        for &(i, w, _) in &items {
            if let Some(e) = catalog.entry(i) {
                *cat_weight.entry(e.category).or_default() += w;
                if e.price > 0.0 {
                    log_price += e.price.ln();
                    priced += 1;
                }
            }
        }
        let total: f32 = cat_weight.values().sum();
        let category_shares =
            cat_weight.iter().map(|(&c, &w)| (c, w / total.max(f32::MIN_POSITIVE))).collect();
        let mut categories: Vec<(u32, f32)> = cat_weight.into_iter().collect();
        categories.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Self {
            items,
            history,
            recent,
            seen,
            purchased,
            categories: categories.into_iter().take(PROFILE_CATEGORIES).map(|c| c.0).collect(),
            category_shares,
            mean_log_price: (priced > 0).then(|| (log_price / priced as f64) as f32),
            n_events: snapshot.events.len(),
            last_event_ms: snapshot
                .events
                .iter()
                .map(|e| e.ts)
                .max()
                .map(|t| (i64::from(t) + EPOCH_SECS) * 1000),
        }
    }

    /// The profile items a neighbourhood source reads: the whole history, undecayed, for
    /// `whole_history`; the strongest recent items for the others.
    fn items_for(&self, source: Source) -> &[(u32, f32, ActivityType)] {
        match source {
            Source::WholeHistory => &self.history,
            _ => &self.items[..self.items.len().min(PROFILE_ITEMS)],
        }
    }

    /// Distinct items, newest first.
    pub(crate) fn recent_items(&self) -> &[u32] {
        &self.recent
    }

    pub(crate) fn category_share(&self, category: u32) -> f32 {
        self.category_shares.get(&category).copied().unwrap_or(0.0)
    }

    pub(crate) fn mean_log_price(&self) -> Option<f32> {
        self.mean_log_price
    }

    pub(crate) fn n_events(&self) -> usize {
        self.n_events
    }

    /// Distinct items with interest.
    pub(crate) fn n_items(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn last_event_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    /// A profile of one item, for "similar items".
    pub fn of_item(item: u32, catalog: &Catalog) -> Self {
        Self {
            items: vec![(item, 1.0, ActivityType::View)],
            history: vec![(item, 1.0, ActivityType::View)],
            recent: vec![item],
            seen: std::iter::once(item).collect(),
            purchased: FxHashSet::default(),
            categories: catalog.entry(item).map(|e| vec![e.category]).unwrap_or_default(),
            ..Self::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn kind_of(&self, item: u32) -> ActivityType {
        self.items.iter().find(|x| x.0 == item).map_or(ActivityType::View, |x| x.2)
    }
}

/// A profile item's interest while the profile is built.
struct Interest {
    /// Event weights, each decayed by how far back the event is.
    decayed: f32,
    undecayed: f32,
    /// The strongest event's kind and weight.
    kind: ActivityType,
    strongest: f32,
}

impl Interest {
    /// The items with positive interest by `measure`, with it and their strongest event,
    /// best first (then by item).
    fn best_first(
        by_item: &FxHashMap<u32, Interest>,
        measure: impl Fn(&Interest) -> f32,
    ) -> Vec<(u32, f32, ActivityType)> {
        let mut v: Vec<(u32, f32, ActivityType)> =
            by_item.iter().map(|(&i, x)| (i, measure(x), x.kind)).filter(|x| x.1 > 0.0).collect();
        v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Items whose latest rating in `events` (oldest first) is below the visitor's mean rating
/// there: a dislike, whatever the scale (1–5 stars, 0–10 points).
fn disliked(events: &[OnlineEvent]) -> FxHashSet<u32> {
    let ratings: Vec<(u32, f32)> = events.iter().filter_map(|e| Some((e.item, e.value()?))).collect();
    let mean = ratings.iter().map(|r| r.1).sum::<f32>() / ratings.len().max(1) as f32;
    let mut decided = FxHashSet::default();
    let mut disliked = FxHashSet::default();
    for &(item, value) in ratings.iter().rev() {
        if decided.insert(item) && value < mean {
            disliked.insert(item);
        }
    }
    disliked
}

/// A candidate with its score: `(item, score, sources)`.
type Scored = (u32, f32, Cand);

/// Candidates scored by the blend (the weighted sum of their normalised source scores);
/// those no weighted source proposed are dropped.
fn blend_scores(cands: FxHashMap<u32, Cand>, weights: &[f32; N_SOURCES]) -> Vec<(u32, f32, Cand)> {
    cands
        .into_iter()
        .map(|(i, c)| (i, c.norm.iter().zip(weights).map(|(n, w)| n * w).sum::<f32>(), c))
        .filter(|x| x.1 > 0.0)
        .collect()
}

/// Higher score first, then lower item: one order for every run.
fn better(a: &(u32, f32, Cand), b: &(u32, f32, Cand)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// A candidate: per source, its score over the source's best (0 = not proposed) and its
/// rank among the source's proposals.
#[derive(Clone, Copy)]
pub(crate) struct Cand {
    pub norm: [f32; N_SOURCES],
    pub rank: [u16; N_SOURCES],
}

/// Which items a rule still admits.
type Admit<'e> = dyn Fn(u32, &FxHashMap<u32, usize>) -> Option<&'e Entry> + 'e;

/// Dense per-item accumulators, reused across requests on a thread (a hash map per source
/// cost more than the ranking itself).
#[derive(Default)]
struct Dense {
    score: Vec<f32>,
    touched: Vec<u32>,
    /// Whether an item is in `touched` (a signed sum can return to 0).
    touched_flag: Vec<bool>,
}

thread_local! {
    static POOL: std::cell::RefCell<Vec<Dense>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One source's raw proposals: item → (score, the profile item behind it).
struct Proposals(Dense);

impl Proposals {
    fn new(items: usize) -> Self {
        let mut d = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        if d.score.len() < items {
            d.score.resize(items, 0.0);
            d.touched_flag.resize(items, false);
        }
        Self(d)
    }

    #[inline]
    fn add(&mut self, item: u32, score: f32) {
        if score > 0.0 {
            self.add_signed(item, score);
        }
    }

    /// Adds a contribution of either sign; an item whose sum is not positive is not proposed.
    #[inline]
    fn add_signed(&mut self, item: u32, score: f32) {
        if score == 0.0 || !score.is_finite() {
            return;
        }
        let d = &mut self.0;
        let i = item as usize;
        if i >= d.score.len() {
            d.score.resize(i + 1, 0.0);
            d.touched_flag.resize(i + 1, false);
        }
        if !d.touched_flag[i] {
            d.touched_flag[i] = true;
            d.touched.push(item);
        }
        d.score[i] += score;
    }

    /// Keeps the best `n` that `keep` admits, normalises by the best and merges into `cands`
    /// under `source`. Items the list can never show (seen, purchased) are left out before
    /// the cut, so a heavy visitor's own history does not crowd out what a source proposes.
    /// With `ranks`, each candidate's rank in the source is recorded too (the learned
    /// ranker's features; it costs a sort the blend does not need).
    fn merge(
        self,
        source: Source,
        n: usize,
        cands: &mut FxHashMap<u32, Cand>,
        ranks: bool,
        keep: &impl Fn(u32) -> bool,
    ) {
        let mut d = self.0;
        let mut v: Vec<(u32, f32)> =
            d.touched.iter().map(|&i| (i, d.score[i as usize])).filter(|x| x.1 > 0.0 && keep(x.0)).collect();
        let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if v.len() > n && n > 0 {
            v.select_nth_unstable_by(n - 1, better);
            v.truncate(n);
        }
        if ranks {
            v.sort_unstable_by(better);
        }
        if let Some(max) = v.iter().map(|x| x.1).max_by(f32::total_cmp) {
            for (rank, (item, score)) in v.into_iter().enumerate() {
                let c = cands.entry(item).or_insert(Cand { norm: [0.0; N_SOURCES], rank: [0; N_SOURCES] });
                c.norm[source.index()] = score / max;
                c.rank[source.index()] = rank.min(usize::from(u16::MAX)) as u16;
            }
        }
        for &i in &d.touched {
            d.score[i as usize] = 0.0;
            d.touched_flag[i as usize] = false;
        }
        d.touched.clear();
        POOL.with(|p| p.borrow_mut().push(d));
    }
}

/// Whether a list may show `i` as far as the visitor goes: not `excluded` (seen), not purchased.
fn unseen(i: u32, excluded: &FxHashSet<u32>, profile: &Profile) -> bool {
    !excluded.contains(&i) && !profile.purchased.contains(&i)
}

fn passes(entry: &Entry, filters: &Filters, category: Option<u32>) -> bool {
    entry.available()
        && !filters.exclude.contains(&entry.product.id)
        && category.is_none_or(|c| c == entry.category)
        && filters.min_price.is_none_or(|m| entry.price >= m)
        && filters.max_price.is_none_or(|m| entry.price <= m)
}

impl Inputs<'_> {
    /// Neighbours of the profile's items through `source`'s model: item-kNN and live
    /// co-visitation for collaborative filtering, sparse EASE for the linear sources.
    fn neighbours(&self, profile: &Profile, source: Source) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        let m = self.model;
        let ease = source != Source::CollaborativeFiltering;
        let (knn, signed) = m.item_model(source).map_or((None, false), |(k, signed)| (Some(k), signed));
        for &(item, w, _) in profile.items_for(source) {
            if let (Some(knn), Some(mi)) = (knn, m.model_item(item)) {
                let (idx, sims) = knn.neighbours(mi);
                for (&j, &s) in idx.iter().zip(sims) {
                    if signed {
                        p.add_signed(m.engine_item(j), w * s);
                    } else {
                        p.add(m.engine_item(j), w * s);
                    }
                }
            }
            if !ease {
                for (j, c) in self.covisits.partners(item) {
                    p.add(j, w * covisit::similarity(c, COVISIT_SHRINK));
                }
            }
        }
        p
    }

    fn embedding(&self, profile: &Profile, n: usize, seen: &FxHashSet<u32>) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        let m = self.model;
        let Some(als) = m.bundle.als.as_ref() else { return p };
        let history: Vec<(u32, f32)> =
            profile.items.iter().filter_map(|&(i, w, _)| m.model_item(i).map(|mi| (mi, w))).collect();
        if history.is_empty() {
            return p;
        }
        let user = als.fold_in_approx(&history, FOLD_IN_STEPS);
        let skip = |mi: u32| seen.contains(&m.engine_item(mi));
        let found = match &m.ivf {
            Some(ivf) => {
                let probe = ((ivf.lists() as f32 * self.config.probe_share).ceil() as usize).max(1);
                ivf.search(&user, n, probe, skip)
            }
            None => exact_search(als.item_matrix(), als.factors(), &user, n, skip),
        };
        for (mi, s) in found {
            p.add(m.engine_item(mi), s);
        }
        p
    }

    fn item_embedding(&self, item: u32, n: usize) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        let m = self.model;
        let (Some(als), Some(mi)) = (m.bundle.als.as_ref(), m.model_item(item)) else { return p };
        let Some(query) = als.item_factors(mi) else { return p };
        let skip = |j: u32| j == mi;
        let found = match &m.ivf {
            Some(ivf) => {
                let probe = ((ivf.lists() as f32 * self.config.probe_share).ceil() as usize).max(1);
                ivf.search(query, n, probe, skip)
            }
            None => exact_search(als.item_matrix(), als.factors(), query, n, skip),
        };
        for (j, s) in found {
            p.add(m.engine_item(j), s);
        }
        p
    }

    fn next_items(&self, profile: &Profile) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        let m = self.model;
        let Some(t) = m.bundle.transitions.as_ref() else { return p };
        let mut factor = 1.0;
        for &item in profile.recent.iter().take(NEXT_ITEM_HISTORY) {
            if let Some(mi) = m.model_item(item) {
                let (idx, w) = t.successors(mi);
                for (&j, &s) in idx.iter().zip(w) {
                    p.add(m.engine_item(j), factor * s);
                }
            }
            factor *= 0.6;
        }
        p
    }

    fn trending(&self, category: Option<u32>, window: Window, n: usize) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        for &(i, s) in self.lists.list(window, category).iter().take(n) {
            p.add(i, s);
        }
        p
    }

    fn popular_in_categories(&self, categories: &[u32], n: usize) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        for &c in categories {
            let list = self.lists.list(Window::Week, Some(c));
            let list = &list[..list.len().min(n)];
            let max = list.first().map_or(1.0, |x| x.1);
            for &(i, s) in list {
                p.add(i, s / max);
            }
        }
        p
    }

    fn new_items(&self, now_ms: i64) -> Proposals {
        let mut p = Proposals::new(self.catalog.len());
        let window_ms = i64::from(self.config.new_item_days) * 86_400_000;
        for &(i, created_ms) in self.lists.newest() {
            let age = now_ms - created_ms;
            if age >= 0 && age < window_ms {
                p.add(i, 1.0 - age as f32 / window_ms as f32);
            }
        }
        p
    }

    /// The profile item (and its strongest event) that contributes most to `item` through
    /// `source`: computed for the listed items only, never on the candidate hot path.
    fn explain(&self, source: Source, item: u32, profile: &Profile) -> Option<(u32, ActivityType)> {
        let m = self.model;
        let target = m.model_item(item);
        let row_weight =
            |row: (&[u32], &[f32]), t: u32| row.0.binary_search(&t).ok().map_or(0.0, |at| row.1[at]);
        let mut best: Option<(u32, ActivityType, f32)> = None;
        let mut consider = |p: u32, k: ActivityType, c: f32| {
            if c > 0.0 && best.is_none_or(|b| c > b.2) {
                best = Some((p, k, c));
            }
        };
        match source {
            Source::CollaborativeFiltering | Source::LinearItemModel | Source::WholeHistory => {
                let model = m.item_model(source).map(|(k, _)| k);
                for &(p, w, k) in profile.items_for(source) {
                    let mut c = 0.0;
                    if let (Some(knn), Some(mp), Some(t)) = (model, m.model_item(p), target) {
                        c += w * row_weight(knn.neighbours(mp), t);
                    }
                    if source == Source::CollaborativeFiltering {
                        if let Some(&(_, cw)) = self.covisits.partners(p).iter().find(|x| x.0 == item) {
                            c += w * covisit::similarity(cw, COVISIT_SHRINK);
                        }
                    }
                    consider(p, k, c);
                }
            }
            Source::NextItem => {
                let (Some(t), Some(tr)) = (target, m.bundle.transitions.as_ref()) else { return None };
                let mut factor = 1.0;
                for &p in profile.recent.iter().take(NEXT_ITEM_HISTORY) {
                    if let Some(mp) = m.model_item(p) {
                        consider(p, profile.kind_of(p), factor * row_weight(tr.successors(mp), t));
                    }
                    factor *= 0.6;
                }
            }
            Source::MatrixFactorization => {
                let (Some(t), Some(als)) = (target, m.bundle.als.as_ref()) else { return None };
                let y = als.item_factors(t)?;
                for &(p, w, k) in profile.items.iter().take(PROFILE_ITEMS) {
                    if let Some(yp) = m.model_item(p).and_then(|mp| als.item_factors(mp)) {
                        consider(p, k, w * yp.iter().zip(y).map(|(a, b)| a * b).sum::<f32>());
                    }
                }
            }
            _ => return None,
        }
        best.map(|b| (b.0, b.1)).or_else(|| profile.items_for(source).first().map(|x| (x.0, x.2)))
    }

    /// The category filter of `req` as an interned id: `Some(None)` without a filter, `None`
    /// for a category the catalogue does not know.
    fn requested_category(&self, req: &ListRequest) -> Option<Option<u32>> {
        match &req.filters.category {
            Some(name) => self.catalog.category(name).map(Some),
            None => Some(None),
        }
    }

    /// Ranks candidates from every source for a visitor with `profile`: by the model's
    /// learned ranker when it has one and the config asks for it, else by the blend.
    pub fn rank_profile(&self, profile: &Profile, req: &ListRequest) -> Vec<Recommended> {
        let ranker = match self.config.ranker {
            RankerChoice::Learned => self.model.bundle.ranker.as_ref(),
            RankerChoice::Blend => None,
        };
        // a ranker built for other features (only possible in memory: a bundle read from
        // disk is checked) is not applied
        let ranker = ranker.filter(|r| r.n_features() == features::N);
        let Some((cands, category)) = self.candidates(profile, req, ranker.is_some()) else {
            return Vec::new();
        };
        let none = FxHashSet::default();
        let excluded = if self.config.exclude_seen { &profile.seen } else { &none };
        let Some(ranker) = ranker else {
            return self.select(cands, profile, excluded, category, req);
        };
        let ctx = RequestContext::new(profile, self.model, self.lists, self.covisits, req.now_ms);
        let (pool, rest) = self.pool(cands, profile, excluded, category, req);
        let mut ranked: Vec<(f32, (u32, f32, Cand))> = pool
            .into_iter()
            .map(|(item, blend, cand)| {
                let entry = self.catalog.entry(item).expect("pooled items are in the catalogue");
                let s = ranker.score(&features::of(item, &cand, blend, entry, profile, &ctx));
                // a validated ranker's score is finite; anything else goes last, not first
                (if s.is_finite() { s } else { f32::MIN }, (item, blend, cand))
            })
            .collect();
        // by the ranker's score; ties keep the blend's order (a stable sort), as the gate measured
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        // shown as a logistic of the score (0–1 like the blend's); the candidates beyond the
        // re-ranked head follow in the blend's order, scored below it
        let mut scored: Vec<(u32, f32, Cand)> =
            ranked.into_iter().map(|(s, (i, _, c))| (i, 1.0 / (1.0 + (-s).exp()), c)).collect();
        let floor = scored.last().map_or(1.0, |x| x.1) * 0.5;
        let top_rest = rest.first().map_or(1.0, |x| x.1);
        scored.extend(rest.into_iter().map(|(i, blend, c)| (i, floor * blend / top_rest, c)));
        self.select_scored(scored, true, profile, excluded, category, req)
    }

    /// The candidates the learned ranker orders for a visitor with `profile`, with their
    /// features: the blend's best `rerankDepth` that pass the business rules (except the
    /// per-category cap, which depends on the list), best first.
    pub fn profile_features(&self, profile: &Profile, req: &ListRequest) -> Vec<(u32, Features)> {
        let Some((cands, category)) = self.candidates(profile, req, true) else { return Vec::new() };
        let none = FxHashSet::default();
        let excluded = if self.config.exclude_seen { &profile.seen } else { &none };
        let ctx = RequestContext::new(profile, self.model, self.lists, self.covisits, req.now_ms);
        self.pool(cands, profile, excluded, category, req)
            .0
            .into_iter()
            .filter_map(|(item, blend, cand)| {
                let entry = self.catalog.entry(item)?;
                Some((item, features::of(item, &cand, blend, entry, profile, &ctx)))
            })
            .collect()
    }

    /// The blend's best `rerankDepth` candidates that the rules admit, best first, and the
    /// other candidates, best first.
    fn pool(
        &self,
        cands: FxHashMap<u32, Cand>,
        profile: &Profile,
        excluded: &FxHashSet<u32>,
        category: Option<u32>,
        req: &ListRequest,
    ) -> (Vec<Scored>, Vec<Scored>) {
        let mut scored = blend_scores(cands, &self.config.weights.array());
        scored.sort_unstable_by(better);
        let depth = self.config.rerank_depth;
        let (mut pool, mut rest) = (Vec::with_capacity(depth), Vec::new());
        for x in scored {
            if pool.len() < depth && self.admits(x.0, excluded, profile, category, req).is_some() {
                pool.push(x);
            } else {
                rest.push(x);
            }
        }
        (pool, rest)
    }

    /// The entry of `i` if the rules that do not depend on the list admit it.
    fn admits(
        &self,
        i: u32,
        excluded: &FxHashSet<u32>,
        profile: &Profile,
        category: Option<u32>,
        req: &ListRequest,
    ) -> Option<&Entry> {
        if !unseen(i, excluded, profile) {
            return None;
        }
        self.catalog.entry(i).filter(|e| passes(e, req.filters, category))
    }

    /// Every source's proposals for a visitor with `profile`, and the request's category;
    /// `None` when the request names a category the catalogue does not know.
    fn candidates(
        &self,
        profile: &Profile,
        req: &ListRequest,
        ranks: bool,
    ) -> Option<(FxHashMap<u32, Cand>, Option<u32>)> {
        let n = self.config.candidates_per_source;
        let category = self.requested_category(req)?;
        let mut cands: FxHashMap<u32, Cand> = FxHashMap::with_capacity_and_hasher(1024, Default::default());
        let weights = self.config.weights.array();
        let none = FxHashSet::default();
        let excluded = if self.config.exclude_seen { &profile.seen } else { &none };
        let on = |s: Source| weights[s.index()] > 0.0;
        let keep = |i: u32| unseen(i, excluded, profile);
        if !profile.is_empty() {
            for source in [Source::CollaborativeFiltering, Source::LinearItemModel, Source::WholeHistory] {
                if on(source) {
                    self.neighbours(profile, source).merge(source, n, &mut cands, ranks, &keep);
                }
            }
            if on(Source::MatrixFactorization) {
                self.embedding(profile, n, excluded).merge(
                    Source::MatrixFactorization,
                    n,
                    &mut cands,
                    ranks,
                    &keep,
                );
            }
            if on(Source::NextItem) {
                self.next_items(profile).merge(Source::NextItem, n, &mut cands, ranks, &keep);
            }
        }
        if on(Source::Trending) {
            self.trending(category, Window::Day, n).merge(Source::Trending, n, &mut cands, ranks, &keep);
        }
        if on(Source::PopularInCategory) {
            let cats: Vec<u32> = category.map_or_else(|| profile.categories.clone(), |c| vec![c]);
            self.popular_in_categories(&cats, n).merge(
                Source::PopularInCategory,
                n,
                &mut cands,
                ranks,
                &keep,
            );
        }
        if on(Source::NewItem) {
            self.new_items(req.now_ms).merge(Source::NewItem, n, &mut cands, ranks, &keep);
        }
        Some((cands, category))
    }

    /// Items similar to `item`: its neighbours, embedding neighbours, EASE row, successors
    /// and its category's popular items.
    pub fn rank_similar(&self, item: u32, req: &ListRequest) -> Vec<Recommended> {
        let profile = Profile::of_item(item, self.catalog);
        let n = self.config.candidates_per_source;
        // A category the catalogue does not know has no items: an empty list.
        let Some(category) = self.requested_category(req) else { return Vec::new() };
        let mut cands = FxHashMap::default();
        let keep = |i: u32| i != item;
        for source in [Source::CollaborativeFiltering, Source::LinearItemModel] {
            self.neighbours(&profile, source).merge(source, n, &mut cands, false, &keep);
        }
        self.item_embedding(item, n).merge(Source::MatrixFactorization, n, &mut cands, false, &keep);
        self.next_items(&profile).merge(Source::NextItem, n, &mut cands, false, &keep);
        self.popular_in_categories(&profile.categories, n).merge(
            Source::PopularInCategory,
            n,
            &mut cands,
            false,
            &keep,
        );
        let excluded: FxHashSet<u32> = std::iter::once(item).collect();
        self.select(cands, &profile, &excluded, category, req)
    }

    /// Live popularity over `window`, overall or in the filter's category.
    pub fn rank_popular(&self, window: Window, req: &ListRequest) -> Vec<Recommended> {
        // A category the catalogue does not know has no items: an empty list.
        let Some(category) = self.requested_category(req) else { return Vec::new() };
        let source = if category.is_some() { Source::PopularInCategory } else { Source::Trending };
        let mut out = Vec::new();
        let list = self.lists.list(window, category);
        let max = list.first().map_or(1.0, |x| x.1);
        for &(i, s) in list {
            let s = s / max;
            if out.len() >= req.limit {
                break;
            }
            let Some(entry) = self.catalog.entry(i).filter(|e| passes(e, req.filters, category)) else {
                continue;
            };
            out.push(Recommended {
                product: entry.product.clone(),
                score: s,
                confidence: 0.0,
                source,
                because: None,
            });
        }
        out
    }

    /// The newest products that pass the filters, newest first (ties: lower item), scored by
    /// their recency relative to the newest. One pass over the catalogue, no full sort.
    pub fn rank_latest(&self, req: &ListRequest) -> Vec<Recommended> {
        let Some(category) = self.requested_category(req) else { return Vec::new() };
        let mut newest: Vec<(i64, u32)> = self
            .catalog
            .entries()
            .filter(|(_, e)| passes(e, req.filters, category))
            .map(|(i, e)| (e.created_ms, i))
            .collect();
        let newer = |a: &(i64, u32), b: &(i64, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
        let n = req.limit.min(newest.len());
        if n == 0 {
            return Vec::new();
        }
        newest.select_nth_unstable_by(n - 1, newer);
        newest.truncate(n);
        newest.sort_unstable_by(newer);
        let first = newest[0].0;
        newest
            .into_iter()
            .filter_map(|(ms, i)| {
                let entry = self.catalog.entry(i)?;
                let days_older = (first - ms) as f32 / 86_400_000.0;
                Some(Recommended {
                    product: entry.product.clone(),
                    score: 1.0 / (1.0 + days_older),
                    confidence: 0.0,
                    source: Source::NewItem,
                    because: None,
                })
            })
            .collect()
    }

    fn select(
        &self,
        cands: FxHashMap<u32, Cand>,
        profile: &Profile,
        excluded: &FxHashSet<u32>,
        category: Option<u32>,
        req: &ListRequest,
    ) -> Vec<Recommended> {
        self.select_scored(
            blend_scores(cands, &self.config.weights.array()),
            false,
            profile,
            excluded,
            category,
            req,
        )
    }

    /// The list from scored candidates: best first under the rules, exploration slots,
    /// then popularity when too few are left.
    #[allow(clippy::too_many_arguments)]
    fn select_scored(
        &self,
        mut scored: Vec<(u32, f32, Cand)>,
        sorted: bool,
        profile: &Profile,
        excluded: &FxHashSet<u32>,
        category: Option<u32>,
        req: &ListRequest,
    ) -> Vec<Recommended> {
        let weights = self.config.weights.array();
        // Sort only the head the list is likely drawn from; the tail only if rules reject a
        // lot. Candidates already in order (`sorted`) are taken as they are.
        let head = if sorted { scored.len() } else { (req.limit * 4 + 16).min(scored.len()) };
        if !sorted {
            if head < scored.len() {
                scored.select_nth_unstable_by(head.saturating_sub(1), better);
            }
            scored[..head].sort_unstable_by(better);
        }
        let cap = self.config.max_per_category;
        let mut per_category: FxHashMap<u32, usize> = FxHashMap::default();
        let mut taken: FxHashSet<u32> = FxHashSet::default();
        let mut out: Vec<Recommended> = Vec::with_capacity(req.limit);
        let allowed = |i: u32, per_category: &FxHashMap<u32, usize>| -> Option<&Entry> {
            let e = self.admits(i, excluded, profile, category, req)?;
            (cap == 0 || per_category.get(&e.category).copied().unwrap_or(0) < cap).then_some(e)
        };
        let explore = (req.limit as f32 * self.config.exploration).floor() as usize;
        let mut newcomers: Vec<(u32, f32)> = if explore > 0 {
            scored
                .iter()
                .filter(|x| x.2.norm[Source::NewItem.index()] > 0.0)
                .map(|x| (x.0, x.2.norm[Source::NewItem.index()]))
                .collect()
        } else {
            Vec::new()
        };
        let mut explored = 0;
        let mut tail_sorted = head >= scored.len();
        for at in 0..scored.len() {
            if out.len() + explore.saturating_sub(explored) >= req.limit {
                break;
            }
            if at == head && !tail_sorted {
                scored[head..].sort_unstable_by(better);
                tail_sorted = true;
            }
            let (i, score, c) = scored[at];
            let Some(entry) = allowed(i, &per_category) else { continue };
            if c.norm[Source::NewItem.index()] > 0.0 {
                explored += 1;
            }
            let contributions: Vec<f32> = c.norm.iter().zip(weights).map(|(n, w)| n * w).collect();
            let best =
                (0..N_SOURCES).max_by(|&a, &b| contributions[a].total_cmp(&contributions[b]).then(b.cmp(&a)));
            let source = Source::ALL[best.unwrap_or(0)];
            let personal: f32 =
                Source::ALL.iter().filter(|s| s.is_personal()).map(|s| contributions[s.index()]).sum();
            let because = if source.is_personal() {
                self.explain(source, i, profile)
                    .and_then(|(p, k)| self.catalog.id(p).map(|id| (id.clone(), k)))
            } else {
                None
            };
            *per_category.entry(entry.category).or_default() += 1;
            taken.insert(i);
            out.push(Recommended {
                product: entry.product.clone(),
                score,
                // the personalised sources' share of the blend
                confidence: (personal / contributions.iter().sum::<f32>()).clamp(0.0, 1.0),
                source,
                because,
            });
        }
        // Exploration: reserved slots go to the newest eligible products not listed yet.
        newcomers.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (i, novelty) in newcomers {
            if explored >= explore || out.len() >= req.limit {
                break;
            }
            if taken.contains(&i) {
                continue;
            }
            let Some(entry) = allowed(i, &per_category) else { continue };
            let last = out.last().map_or(f32::INFINITY, |r| r.score);
            let score = (weights[Source::NewItem.index()] * novelty).min(last);
            *per_category.entry(entry.category).or_default() += 1;
            taken.insert(i);
            explored += 1;
            out.push(Recommended {
                product: entry.product.clone(),
                score,
                confidence: 0.0,
                source: Source::NewItem,
                because: None,
            });
        }
        if out.len() < req.limit {
            self.fill(&mut out, &mut taken, &mut per_category, &allowed, category, req);
        }
        out
    }

    /// Fills a short list from live popularity (a month's window, then the newest products,
    /// then the catalogue), never scoring above the last ranked item.
    fn fill<'e>(
        &'e self,
        out: &mut Vec<Recommended>,
        taken: &mut FxHashSet<u32>,
        per_category: &mut FxHashMap<u32, usize>,
        allowed: &Admit<'e>,
        category: Option<u32>,
        req: &ListRequest,
    ) {
        let trending_weight = self.config.weights.get(Source::Trending);
        let month = self.lists.list(Window::Month, category);
        let max = month.first().map_or(1.0, |x| x.1);
        let popular = month.iter().map(|&(i, s)| (i, trending_weight * s / max, Source::Trending));
        let newest = self.lists.newest().iter().map(|&(i, _)| (i, 0.0, Source::NewItem));
        let catalogue = self.catalog.entries().take(10_000).map(|(i, _)| (i, 0.0, Source::Trending));
        for (i, s, source) in popular.chain(newest).chain(catalogue) {
            if out.len() >= req.limit {
                break;
            }
            if taken.contains(&i) {
                continue;
            }
            let Some(entry) = allowed(i, per_category) else { continue };
            let last = out.last().map_or(f32::INFINITY, |r| r.score);
            *per_category.entry(entry.category).or_default() += 1;
            taken.insert(i);
            out.push(Recommended {
                product: entry.product.clone(),
                score: s.min(last),
                confidence: 0.0,
                source,
                because: None,
            });
        }
    }
}

#[cfg(test)]
mod proposal_tests {
    use super::*;

    #[test]
    fn signed_contributions_sum_and_only_positive_sums_are_proposed() {
        let mut cands = FxHashMap::default();
        let mut p = Proposals::new(8);
        p.add_signed(1, 2.0);
        p.add_signed(1, -2.0); // back to zero: not proposed, and listed once
        p.add_signed(2, -1.0);
        p.add_signed(2, 3.0);
        p.add_signed(3, -0.5);
        p.add(4, -1.0); // unsigned adds ignore what is not positive
        p.add(5, 1.0);
        p.add_signed(6, 4.0); // left out by `keep`
        assert_eq!(p.0.touched, [1, 2, 3, 5, 6]);
        p.merge(Source::WholeHistory, 10, &mut cands, true, &|i| i != 6);
        let mut got: Vec<(u32, f32, u16)> = cands
            .iter()
            .map(|(&i, c)| (i, c.norm[Source::WholeHistory.index()], c.rank[Source::WholeHistory.index()]))
            .collect();
        got.sort_by_key(|x| x.0);
        assert_eq!(got, [(2, 1.0, 0), (5, 0.5, 1)]);
        // the thread's reused accumulator starts clean
        let mut again = Proposals::new(8);
        again.add_signed(1, 1.0);
        again.add_signed(1, 1.0);
        assert_eq!((again.0.touched.as_slice(), again.0.score[1]), (&[1u32][..], 2.0));
    }
}
