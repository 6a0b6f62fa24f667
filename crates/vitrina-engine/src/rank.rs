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

use rustc_hash::FxHashMap;
use vitrina_algo::ivf::exact_search;
use vitrina_core::{
    recommend::{Recommended, Source},
    ActivityType, ProductId,
};

use crate::{
    catalog::{Catalog, Entry},
    config::{EventWeights, RankingConfig},
    covisit::{self, CoVisits},
    model::ActiveModel,
    online::{online_secs, UserSnapshot},
    trending::{TrendingLists, Window},
};

/// Shrinkage of live co-visitation weights into similarities.
const COVISIT_SHRINK: f32 = 5.0;
/// Profile items whose neighbours are looked up.
const PROFILE_ITEMS: usize = 20;
/// Latest items whose successors are looked up.
const NEXT_ITEM_HISTORY: usize = 3;
/// Categories of the visitor's profile that get their popular items proposed.
const PROFILE_CATEGORIES: usize = 2;
const N_SOURCES: usize = Source::ALL.len();

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
    /// Distinct items, newest first.
    recent: Vec<u32>,
    seen: HashSet<u32>,
    purchased: HashSet<u32>,
    categories: Vec<u32>,
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
        let mut by_item: FxHashMap<u32, (f32, ActivityType, f32)> = FxHashMap::default();
        let mut recent = Vec::new();
        let mut seen = HashSet::new();
        let mut factor = 1.0f32;
        for e in snapshot.events.iter().rev() {
            let w = weights.event_weight(e.kind, e.value());
            seen.insert(e.item);
            if !recent.contains(&e.item) && w > 0.0 {
                recent.push(e.item);
            }
            let entry = by_item.entry(e.item).or_insert((0.0, e.kind, f32::MIN));
            entry.0 += w * factor;
            if w > entry.2 {
                (entry.1, entry.2) = (e.kind, w);
            }
            factor *= config.recency;
        }
        let mut items: Vec<(u32, f32, ActivityType)> =
            by_item.into_iter().filter(|(_, (w, _, _))| *w > 0.0).map(|(i, (w, k, _))| (i, w, k)).collect();
        items.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let window_start =
            online_secs(now_ms).saturating_sub(config.purchased_window_days.saturating_mul(86_400));
        let purchased = snapshot.purchases.iter().filter(|p| p.1 >= window_start).map(|p| p.0).collect();
        let mut cat_weight: FxHashMap<u32, f32> = FxHashMap::default();
        for &(i, w, _) in &items {
            if let Some(e) = catalog.entry(i) {
                *cat_weight.entry(e.category).or_default() += w;
            }
        }
        let mut categories: Vec<(u32, f32)> = cat_weight.into_iter().collect();
        categories.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Self {
            items,
            recent,
            seen,
            purchased,
            categories: categories.into_iter().take(PROFILE_CATEGORIES).map(|c| c.0).collect(),
        }
    }

    /// A profile of one item, for "similar items".
    pub fn of_item(item: u32, catalog: &Catalog) -> Self {
        Self {
            items: vec![(item, 1.0, ActivityType::View)],
            recent: vec![item],
            seen: HashSet::from([item]),
            purchased: HashSet::new(),
            categories: catalog.entry(item).map(|e| vec![e.category]).unwrap_or_default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn kind_of(&self, item: u32) -> ActivityType {
        self.items.iter().find(|x| x.0 == item).map_or(ActivityType::View, |x| x.2)
    }
}

#[derive(Clone, Copy)]
struct Cand {
    norm: [f32; N_SOURCES],
    /// The profile item and event behind the strongest personalised contribution.
    because: Option<Because>,
}

/// The profile item and event behind a contribution, and the contribution.
type Because = (u32, ActivityType, f32);
/// A proposal: its score and what is behind it.
type Proposal = (f32, Option<Because>);
/// Which items a rule still admits.
type Admit<'e> = dyn Fn(u32, &FxHashMap<u32, usize>) -> Option<&'e Entry> + 'e;

/// One source's raw proposals: item → (score, the profile item behind it).
#[derive(Default)]
struct Proposals(FxHashMap<u32, Proposal>);

impl Proposals {
    fn add(&mut self, item: u32, score: f32, because: Option<(u32, ActivityType)>) {
        if !(score > 0.0 && score.is_finite()) {
            return;
        }
        let e = self.0.entry(item).or_insert((0.0, None));
        e.0 += score;
        if let Some((p, k)) = because {
            if e.1.is_none_or(|b| score > b.2) {
                e.1 = Some((p, k, score));
            }
        }
    }

    /// Keeps the best `n`, normalises by the best and merges into `cands` under `source`.
    fn merge(self, source: Source, n: usize, cands: &mut FxHashMap<u32, Cand>) {
        let mut v: Vec<(u32, Proposal)> = self.0.into_iter().collect();
        let better = |a: &(u32, Proposal), b: &(u32, Proposal)| b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(&b.0));
        if v.len() > n && n > 0 {
            v.select_nth_unstable_by(n - 1, better);
            v.truncate(n);
        }
        let Some(max) = v.iter().map(|x| x.1 .0).max_by(f32::total_cmp) else { return };
        for (item, (score, because)) in v {
            let c = cands.entry(item).or_insert(Cand { norm: [0.0; N_SOURCES], because: None });
            c.norm[source.index()] = score / max;
            if let Some(b) = because {
                if c.because.is_none_or(|cb| b.2 > cb.2) {
                    c.because = Some(b);
                }
            }
        }
    }
}

fn passes(entry: &Entry, filters: &Filters, category: Option<u32>) -> bool {
    entry.available()
        && !filters.exclude.contains(&entry.product.id)
        && category.is_none_or(|c| c == entry.category)
        && filters.min_price.is_none_or(|m| entry.price >= m)
        && filters.max_price.is_none_or(|m| entry.price <= m)
}

impl Inputs<'_> {
    fn neighbours(&self, profile: &Profile, n: usize, ease: bool) -> Proposals {
        let mut p = Proposals::default();
        let m = self.model;
        let knn = if ease { m.bundle.ease.as_ref() } else { m.bundle.knn.as_ref() };
        for &(item, w, kind) in profile.items.iter().take(PROFILE_ITEMS) {
            if let (Some(knn), Some(mi)) = (knn, m.model_item(item)) {
                let (idx, sims) = knn.neighbours(mi);
                for (&j, &s) in idx.iter().zip(sims) {
                    p.add(m.engine_item(j), w * s, Some((item, kind)));
                }
            }
            if !ease {
                for (j, c) in self.covisits.partners(item) {
                    p.add(j, w * covisit::similarity(c, COVISIT_SHRINK), Some((item, kind)));
                }
            }
        }
        let _ = n;
        p
    }

    fn embedding(&self, profile: &Profile, n: usize, seen: &HashSet<u32>) -> Proposals {
        let mut p = Proposals::default();
        let m = self.model;
        let Some(als) = m.bundle.als.as_ref() else { return p };
        let history: Vec<(u32, f32)> =
            profile.items.iter().filter_map(|&(i, w, _)| m.model_item(i).map(|mi| (mi, w))).collect();
        if history.is_empty() {
            return p;
        }
        let user = als.fold_in(&history);
        let skip = |mi: u32| seen.contains(&m.engine_item(mi));
        let found = match &m.ivf {
            Some(ivf) => {
                let probe = ((ivf.lists() as f32 * self.config.probe_share).ceil() as usize).max(1);
                ivf.search(&user, n, probe, skip)
            }
            None => exact_search(als.item_matrix(), als.factors(), &user, n, skip),
        };
        let top = profile.items.first().map(|x| (x.0, x.2));
        for (mi, s) in found {
            p.add(m.engine_item(mi), s, top);
        }
        p
    }

    fn item_embedding(&self, item: u32, n: usize) -> Proposals {
        let mut p = Proposals::default();
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
            p.add(m.engine_item(j), s, Some((item, ActivityType::View)));
        }
        p
    }

    fn next_items(&self, profile: &Profile) -> Proposals {
        let mut p = Proposals::default();
        let m = self.model;
        let Some(t) = m.bundle.transitions.as_ref() else { return p };
        let mut factor = 1.0;
        for &item in profile.recent.iter().take(NEXT_ITEM_HISTORY) {
            if let Some(mi) = m.model_item(item) {
                let (idx, w) = t.successors(mi);
                let kind = profile.kind_of(item);
                for (&j, &s) in idx.iter().zip(w) {
                    p.add(m.engine_item(j), factor * s, Some((item, kind)));
                }
            }
            factor *= 0.6;
        }
        p
    }

    fn trending(&self, category: Option<u32>, window: Window) -> Proposals {
        let mut p = Proposals::default();
        for &(i, s) in self.lists.list(window, category) {
            p.add(i, s, None);
        }
        p
    }

    fn popular_in_categories(&self, categories: &[u32]) -> Proposals {
        let mut p = Proposals::default();
        for &c in categories {
            let list = self.lists.list(Window::Week, Some(c));
            let max = list.first().map_or(1.0, |x| x.1);
            for &(i, s) in list {
                p.add(i, s / max, None);
            }
        }
        p
    }

    fn new_items(&self, now_ms: i64) -> Proposals {
        let mut p = Proposals::default();
        let window_ms = i64::from(self.config.new_item_days) * 86_400_000;
        for &(i, created_ms) in self.lists.newest() {
            let age = now_ms - created_ms;
            if age >= 0 && age < window_ms {
                p.add(i, 1.0 - age as f32 / window_ms as f32, None);
            }
        }
        p
    }

    /// Ranks candidates from every source for a visitor with `profile`.
    pub fn rank_profile(&self, profile: &Profile, req: &ListRequest) -> Vec<Recommended> {
        let n = self.config.candidates_per_source;
        let category = match &req.filters.category {
            Some(name) => match self.catalog.category(name) {
                Some(c) => Some(c),
                None => return Vec::new(),
            },
            None => None,
        };
        let mut cands: FxHashMap<u32, Cand> = FxHashMap::default();
        let weights = self.config.weights.array();
        let excluded = if self.config.exclude_seen { profile.seen.clone() } else { HashSet::new() };
        let on = |s: Source| weights[s.index()] > 0.0;
        if !profile.is_empty() {
            if on(Source::CollaborativeFiltering) {
                self.neighbours(profile, n, false).merge(Source::CollaborativeFiltering, n, &mut cands);
            }
            if on(Source::LinearItemModel) {
                self.neighbours(profile, n, true).merge(Source::LinearItemModel, n, &mut cands);
            }
            if on(Source::MatrixFactorization) {
                self.embedding(profile, n, &excluded).merge(Source::MatrixFactorization, n, &mut cands);
            }
            if on(Source::NextItem) {
                self.next_items(profile).merge(Source::NextItem, n, &mut cands);
            }
        }
        if on(Source::Trending) {
            self.trending(category, Window::Day).merge(Source::Trending, n, &mut cands);
        }
        if on(Source::PopularInCategory) {
            let cats: Vec<u32> = category.map_or_else(|| profile.categories.clone(), |c| vec![c]);
            self.popular_in_categories(&cats).merge(Source::PopularInCategory, n, &mut cands);
        }
        if on(Source::NewItem) {
            self.new_items(req.now_ms).merge(Source::NewItem, n, &mut cands);
        }
        self.select(cands, &weights, profile, &excluded, category, req)
    }

    /// Items similar to `item`: its neighbours, embedding neighbours, EASE row, successors
    /// and its category's popular items.
    pub fn rank_similar(&self, item: u32, req: &ListRequest) -> Vec<Recommended> {
        let profile = Profile::of_item(item, self.catalog);
        let n = self.config.candidates_per_source;
        let category = match &req.filters.category {
            Some(name) => match self.catalog.category(name) {
                Some(c) => Some(c),
                None => return Vec::new(),
            },
            None => None,
        };
        let weights = self.config.weights.array();
        let mut cands = FxHashMap::default();
        self.neighbours(&profile, n, false).merge(Source::CollaborativeFiltering, n, &mut cands);
        self.neighbours(&profile, n, true).merge(Source::LinearItemModel, n, &mut cands);
        self.item_embedding(item, n).merge(Source::MatrixFactorization, n, &mut cands);
        self.next_items(&profile).merge(Source::NextItem, n, &mut cands);
        self.popular_in_categories(&profile.categories).merge(Source::PopularInCategory, n, &mut cands);
        let excluded = HashSet::from([item]);
        self.select(cands, &weights, &profile, &excluded, category, req)
    }

    /// Live popularity over `window`, overall or in the filter's category.
    pub fn rank_popular(&self, window: Window, req: &ListRequest) -> Vec<Recommended> {
        let category = match &req.filters.category {
            Some(name) => match self.catalog.category(name) {
                Some(c) => Some(c),
                None => return Vec::new(),
            },
            None => None,
        };
        let source = if category.is_some() { Source::PopularInCategory } else { Source::Trending };
        let mut out = Vec::new();
        for &(i, s) in self.lists.list(window, category) {
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

    fn select(
        &self,
        cands: FxHashMap<u32, Cand>,
        weights: &[f32; N_SOURCES],
        profile: &Profile,
        excluded: &HashSet<u32>,
        category: Option<u32>,
        req: &ListRequest,
    ) -> Vec<Recommended> {
        let mut scored: Vec<(u32, f32, Cand)> = cands
            .into_iter()
            .map(|(i, c)| {
                let s: f32 = c.norm.iter().zip(weights).map(|(n, w)| n * w).sum();
                (i, s, c)
            })
            .filter(|x| x.1 > 0.0)
            .collect();
        scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let cap = self.config.max_per_category;
        let mut per_category: FxHashMap<u32, usize> = FxHashMap::default();
        let mut taken: HashSet<u32> = HashSet::new();
        let mut out: Vec<Recommended> = Vec::with_capacity(req.limit);
        let allowed = |i: u32, per_category: &FxHashMap<u32, usize>| -> Option<&Entry> {
            if excluded.contains(&i) || profile.purchased.contains(&i) {
                return None;
            }
            let e = self.catalog.entry(i).filter(|e| passes(e, req.filters, category))?;
            (cap == 0 || per_category.get(&e.category).copied().unwrap_or(0) < cap).then_some(e)
        };
        let explore = (req.limit as f32 * self.config.exploration).floor() as usize;
        let mut newcomers: Vec<(u32, f32)> = Vec::new();
        let mut rest: Vec<(u32, f32, Cand)> = Vec::new();
        for (i, score, c) in scored {
            let novelty = c.norm[Source::NewItem.index()];
            if novelty > 0.0 && newcomers.len() < explore.max(1) * 4 {
                newcomers.push((i, novelty));
            }
            rest.push((i, score, c));
        }
        let mut explored = 0;
        for (i, score, c) in rest {
            if out.len() + explore.saturating_sub(explored) >= req.limit {
                break;
            }
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
                c.because.and_then(|(p, k, _)| self.catalog.id(p).map(|id| (id.clone(), k)))
            } else {
                None
            };
            *per_category.entry(entry.category).or_default() += 1;
            taken.insert(i);
            out.push(Recommended {
                product: entry.product.clone(),
                score,
                confidence: (personal / score).clamp(0.0, 1.0),
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
        taken: &mut HashSet<u32>,
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
