//! Training the learned ranker from a snapshot of the event log, at a cut in time.
//!
//! The cut is placed so that the newest `labelShare` of the product events lie after it
//! ([`draw`]). Models are trained on the events before the cut, an engine replays those
//! events as its online state and live popularity, and each sampled visitor with events
//! before the cut and an action after it that [`grade`]s above 0 gets the candidates the
//! ranker would order at the cut, with their features, labelled ([`cut_lists`]):
//!
//! - **by the lists they were shown after the cut**, where the impression log has any that
//!   earned an outcome ([`Shown`], read by the caller): one training list per such list,
//!   holding the candidates shown in it, each graded by the best outcome attributed to it
//!   there (click 2, add to cart 3, purchase 4; shown and ignored 0), kept if it holds
//!   something passed over. Served lists say what the visitor saw and passed over, which
//!   their next actions alone cannot: those mostly follow what the blend showed them.
//! - **else by what they did next**: their best [`grade`] per candidate after the cut.
//!
//! No event after the cut reaches a feature: a later event can
//! change a label, never a feature (a test changes some to prove it). The catalogue is
//! today's with what can be undone since the cut undone: every product is available (one
//! out of stock or hidden now may not have been then), products published after the cut
//! are left out unless they have events before it (then they are dated by the first one);
//! prices and categories are today's (the offline features count a product's showings before
//! the cut toward the category it has now).
//!
//! Live co-visitation (`covisit_recent`) is 0 in every training list: the engine counts it
//! only for events newer than its model, and the cut's model covers every event before the
//! cut. The trees therefore never split on it.
//!
//! The lists are split by visitor into four quarters. The ranker that serves fits on two,
//! stops early on the third and is judged on the fourth; the gate compares rankers with
//! the blend on every visitor, each judged by one of four rankers trained the same way on
//! the other three quarters (cross-fitting, [`fit_and_gate`], shared with `vitrina eval`),
//! and the serving one must not lose on its own quarter.

use std::sync::Arc;

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;
use vitrina_algo::{
    eval::MeanStderr,
    ltr::{Ranker, RankerParams, RankingSet},
};
use vitrina_core::{ports::Exposures, ActivityType, Product, ProductId};

use crate::{
    config::{RankingConfig, TrainingConfig},
    engagement::{self, Engagement},
    features,
    model::PreparedModel,
    train::{train_bundle, Progress, TrainError, TrainingLog},
    Engine, Filters, ListRequest,
};

/// Fewest gate visitors (with a list that holds a relevant candidate) the gate judges on;
/// with fewer the blend serves.
pub const MIN_GATE_VISITORS: usize = 30;
/// The request's list length: the candidates are the blend's best `rerankDepth` whatever
/// it is.
const LIST_LEN: usize = 20;
/// Events replayed, and lists built, between two progress reports (a cancelled job stops
/// at the next one).
const REPLAY_CHUNK: usize = 1 << 20;
const LIST_CHUNK: usize = 1_000;

/// How much what a visitor did with a product after the cut says they wanted it: view 1 <
/// click or like 2 < add to cart 3 < purchase 4; a rating of 4 or more counts as a like, 3 as
/// a view, and a lower one (negative feedback), a removal from the cart or a search as nothing.
pub fn grade(kind: ActivityType, value: Option<f32>) -> f32 {
    match kind {
        ActivityType::View => 1.0,
        ActivityType::Click | ActivityType::Like => 2.0,
        ActivityType::AddToCart => 3.0,
        ActivityType::Purchase => 4.0,
        ActivityType::Rating => match value.unwrap_or(0.0) {
            v if v >= 4.0 => 2.0,
            v if v >= 3.0 => 1.0,
            _ => 0.0,
        },
        ActivityType::RemoveFromCart | ActivityType::Search => 0.0,
    }
}

/// One training list of a visitor: candidates in blend order, their features (row-major) and
/// labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingList {
    /// Decides the list's part (fit, early stopping or gate); the visitor's index.
    pub key: u64,
    pub products: Vec<ProductId>,
    pub features: Vec<f32>,
    pub labels: Vec<f32>,
}

impl TrainingList {
    /// The list of visitor `key` over `cands` (blend order), each labelled by `label`.
    pub fn new(
        key: u64,
        cands: Vec<(ProductId, features::Features)>,
        label: impl Fn(&ProductId) -> f32,
    ) -> Self {
        let mut list = TrainingList {
            key,
            products: Vec::with_capacity(cands.len()),
            features: Vec::with_capacity(cands.len() * features::N),
            labels: Vec::with_capacity(cands.len()),
        };
        for (id, f) in cands {
            list.labels.push(label(&id));
            list.features.extend_from_slice(&f);
            list.products.push(id);
        }
        list
    }
}

/// What ranker training did, for the registry and the job log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankerReport {
    /// The serving ranker's lists: fitted on, used for early stopping, and judged.
    pub lists: [usize; 3],
    pub rows: usize,
    /// The feature the serving ranker's trees start from ([`vitrina_algo::ltr::Base`]), if any.
    pub base: Option<String>,
    pub trees_kept: usize,
    /// NDCG@k of the rankers and of the blend on every judged visitor (each the mean over
    /// their lists), each visitor judged by the ranker that did not train on them.
    pub ndcg: f64,
    pub blend_ndcg: f64,
    /// Per judged visitor (the mean over their lists), the ranker's NDCG@k minus the blend's.
    pub lift: MeanStderr,
    /// Whether the ranker passed the gate and orders lists.
    pub serves: bool,
}

/// A trained ranker and its gate.
pub struct Gated {
    pub ranker: Ranker,
    pub report: RankerReport,
}

impl Gated {
    /// The ranker, if it passed the gate.
    pub fn serving(&self) -> Option<Ranker> {
        self.report.serves.then(|| self.ranker.clone())
    }
}

/// The gate: the ranker serves only if rankers trained this way beat the blend on visitors
/// they never trained on by more than two standard errors of the paired difference (per
/// visitor, the mean over their lists), over at least [`MIN_GATE_VISITORS`] visitors. A
/// plain "higher mean" let a ranker through on about 120 next-item lists (ML-100k) where it
/// then lost on test.
fn passes(lift: &MeanStderr) -> bool {
    lift.n >= MIN_GATE_VISITORS && lift.mean - 2.0 * lift.stderr > 0.0
}

/// Folds of the cross-fitted gate: fold `f` stops early on quarter `f`, is judged on quarter
/// `f + 1` and fits on the other two. Fold 0's ranker is the one that serves (fitted on
/// quarters 2 and 3, stopped on 0, judged on 1: the single split of the gate before it
/// was cross-fitted).
const FOLDS: usize = 4;

/// Splits `lists` by a hash of their key into four quarters and trains a ranker per fold
/// (above); the gate compares, for every visitor with a relevant candidate, the NDCG@k of
/// the fold's ranker that did not see them with the blend feature's. Each judged visitor
/// counts once, so the gate's test has four times the visitors one held-out quarter gives.
/// It tests the training procedure; the ranker that serves must besides not lose to the
/// blend on its own judged quarter.
pub fn fit_and_gate(lists: Vec<TrainingList>, params: &RankerParams) -> Result<Gated, TrainError> {
    let mut quarters: [Vec<TrainingList>; FOLDS] = Default::default();
    for l in lists {
        quarters[(l.key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62) as usize].push(l);
    }
    let set_of = |parts: &[usize]| -> Result<RankingSet, TrainError> {
        let mut set = RankingSet::new(features::N);
        for &q in parts {
            for l in &quarters[q] {
                set.push_list(&l.features, &l.labels)?;
            }
        }
        Ok(set)
    };
    let k = params.ndcg_at;
    let blend = features::NAMES.iter().position(|n| *n == "blend").expect("a blend feature");
    let (mut ranked, mut blended) = (Vec::new(), Vec::new());
    let mut serving = None;
    for f in 0..FOLDS {
        let (stop, judge) = (f, (f + 1) % FOLDS);
        let fit_parts: Vec<usize> = (0..FOLDS).filter(|&q| q != judge && q != stop).collect();
        let (fit, stop, gate) = (set_of(&fit_parts)?, set_of(&[stop])?, set_of(&[judge])?);
        let (ranker, report) = Ranker::train(&fit, Some(&stop), params)?;
        // One visitor's lists are not independent: the gate judges per visitor, the mean over
        // their lists (`ndcg_per_list` skips lists without a relevant row, as `keys` does).
        let keys: Vec<u64> =
            quarters[judge].iter().filter(|l| l.labels.iter().any(|&g| g > 0.0)).map(|l| l.key).collect();
        let (r, b) = (
            per_key(&keys, &gate.ndcg_per_list(&ranker.score_set(&gate), k)),
            per_key(&keys, &gate.ndcg_per_list(&gate.feature(blend), k)),
        );
        if f == 0 {
            let lists = [fit.n_lists(), stop.n_lists(), gate.n_lists()];
            let rows = fit.n_rows() + stop.n_rows() + gate.n_rows();
            let own: Vec<f64> = r.iter().zip(&b).map(|(r, b)| r - b).collect();
            serving = Some((ranker, report.trees_kept, lists, rows, MeanStderr::of(&own).mean));
        }
        ranked.extend(r);
        blended.extend(b);
    }
    let (ranker, trees_kept, lists, rows, own_lift) = serving.expect("fold 0 ran");
    let lift: Vec<f64> = ranked.iter().zip(&blended).map(|(r, b)| r - b).collect();
    let lift = MeanStderr::of(&lift);
    let report = RankerReport {
        lists,
        rows,
        base: ranker.base().and_then(|b| features::NAMES.get(b.feature)).map(|n| n.to_string()),
        trees_kept,
        ndcg: MeanStderr::of(&ranked).mean,
        blend_ndcg: MeanStderr::of(&blended).mean,
        serves: passes(&lift) && own_lift > 0.0,
        lift,
    };
    Ok(Gated { ranker, report })
}

/// The mean of `values` per key (`keys[i]` is `values[i]`'s), in key order; `values` as
/// they are if the two do not pair up (a list `ndcg_per_list` skipped that `keys` counted,
/// which labels of 0 to 4 never make).
fn per_key(keys: &[u64], values: &[f64]) -> Vec<f64> {
    if keys.len() != values.len() {
        return values.to_vec();
    }
    let mut sums: std::collections::BTreeMap<u64, (f64, usize)> = Default::default();
    for (k, v) in keys.iter().zip(values) {
        let e = sums.entry(*k).or_default();
        (e.0, e.1) = (e.0 + v, e.1 + 1);
    }
    sums.into_values().map(|(sum, n)| sum / n as f64).collect()
}

/// The training lists of a log snapshot and the cut they were built at.
#[derive(Debug, Default)]
pub struct CutLists {
    /// Events at or after this time (ms) only label; every feature is from before it.
    pub cut_ms: i64,
    /// Visitors with events before the cut and an action that grades above 0 after it.
    pub visitors: usize,
    /// The drawn visitors' lists that hold a labelled candidate.
    pub lists: Vec<TrainingList>,
}

/// Fewest lists ranker training asks for: each quarter of them is judged once.
pub const MIN_LISTS: usize = 4 * MIN_GATE_VISITORS;

impl CutLists {
    /// Why no ranker is trained on these lists, if there are too few.
    fn too_few(&self) -> Option<String> {
        if self.visitors < MIN_LISTS {
            return Some(format!(
                "{} visitors have events before the cut and an action after it; the learned ranker needs at least \
                 {MIN_LISTS}",
                self.visitors
            ));
        }
        (self.lists.len() < MIN_LISTS).then(|| {
            format!(
                "{} of the lists of {} visitors with events before the cut and an action after it hold a candidate they \
                 acted on next (in a list shown after the cut, where there is one); the learned ranker needs at least \
                 {MIN_LISTS} such lists",
                self.lists.len(),
                self.visitors
            )
        })
    }
}

/// The catalogue as it could have been at the cut (see the module docs): the products
/// published before it, and those with events before it whatever their date says (a
/// catalogue imported after its history is dated by the import), dated by their first
/// event so that no age reads past the cut. `first_event` gives a product's first event
/// before the cut (ms). In id order, so that the same products give the same item indices
/// (ties in the blend follow them).
fn catalogue_at(
    products: &[Product],
    cut_ms: i64,
    first_event: impl Fn(&ProductId) -> Option<i64>,
) -> Vec<Product> {
    let mut at: Vec<Product> = products
        .iter()
        .filter_map(|p| {
            let mut p = Product { in_stock: true, hidden: false, ..p.clone() };
            if p.published_at().timestamp_millis() >= cut_ms {
                p.created_at = vitrina_core::time::from_millis(first_event(&p.id)?);
                p.attributes.remove(vitrina_core::catalog::PUBLISHED_AT);
            }
            Some(p)
        })
        .collect();
    at.sort_by(|a, b| a.id.cmp(&b.id));
    at
}

/// The time before which the oldest `1 − share` of the rows lie (`None` without rows on
/// both sides).
fn cut_time(log: &TrainingLog, share: f64) -> Option<i64> {
    let mut ts: Vec<i64> = log.rows.iter().map(|r| r.ts_ms).collect();
    if ts.is_empty() {
        return None;
    }
    let k = (((1.0 - share) * ts.len() as f64) as usize).min(ts.len() - 1);
    let (_, &mut cut, _) = ts.select_nth_unstable(k);
    let before = log.rows.iter().any(|r| r.ts_ms < cut);
    before.then_some(cut)
}

/// The cut and the visitors drawn at it, whose lists ranker training builds (see the module
/// docs). Made by [`draw`] for one log, and valid only with it.
#[derive(Debug, Clone, Default)]
pub struct Draw {
    cut_ms: i64,
    visitors: usize,
    listed: Vec<u32>,
    /// Per log user, what they are to ranker training.
    role: Vec<Role>,
}

impl Draw {
    /// Events at or after this time (ms) only label; every feature is from before it.
    pub fn cut_ms(&self) -> i64 {
        self.cut_ms
    }

    /// The drawn visitors (log user indices, ascending): each gets the lists of [`cut_lists`].
    pub fn listed(&self) -> &[u32] {
        &self.listed
    }
}

/// Places the cut in `log` and draws the visitors to list (none when fewer than
/// `min_visitors` qualify).
pub fn draw(log: &TrainingLog, config: &TrainingConfig, min_visitors: usize) -> Draw {
    let rc = &config.ranker;
    let Some(cut_ms) = cut_time(log, rc.label_share) else { return Draw::default() };
    let n_users = log.users.len();
    let (mut before, mut after) = (vec![false; n_users], vec![false; n_users]);
    for r in &log.rows {
        if r.ts_ms < cut_ms {
            before[r.user as usize] = true;
        } else if grade(r.kind, r.value()) > 0.0 {
            after[r.user as usize] = true;
        }
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut chosen: Vec<u32> =
        (0..n_users as u32).filter(|&u| before[u as usize] && after[u as usize]).collect();
    let visitors = chosen.len();
    if visitors < min_visitors {
        return Draw { cut_ms, visitors, ..Draw::default() };
    }
    chosen.shuffle(&mut rng);
    chosen.truncate(rc.max_visitors);
    chosen.sort_unstable();
    let mut role = vec![Role::None; n_users];
    chosen.iter().for_each(|&u| role[u as usize] = Role::Listed);
    let mut others: Vec<u32> =
        (0..n_users as u32).filter(|&u| before[u as usize] && role[u as usize] == Role::None).collect();
    if rc.sample_users > 0 && others.len() > rc.sample_users {
        others.shuffle(&mut rng);
        others.truncate(rc.sample_users);
    }
    others.iter().for_each(|&u| role[u as usize] = Role::Trained);
    Draw { cut_ms, visitors, listed: chosen, role }
}

/// What drawn visitors were shown after the cut, by log user index: per served list, each
/// product shown with the best [`grade`] of the outcomes attributed to it there (0 for
/// none). Read from the impression log by the caller; empty where there is none.
pub type Shown = FxHashMap<u32, Vec<Vec<(ProductId, f32)>>>;

/// What the impression log says around the cut, read by the caller: the lists drawn visitors
/// were shown after it ([`Shown`]), and every product's exposure totals over the engagement
/// window of the cut ([`engagement::window`]: whole days before the cut's day), which the
/// cut's model carries as its offline features.
#[derive(Debug, Default)]
pub struct Served {
    pub after_cut: Shown,
    pub before_cut: Exposures,
}

/// Builds the training lists of `log` at the `draw`n cut (see the module docs): `products`
/// is the catalogue, `ranking` the shop's ranking config (exploration off). The cut's model
/// carries `served`'s exposure totals before the cut. A visitor with
/// lists shown after the cut that earned an outcome is labelled by them: a list per such
/// list, of the candidates shown in it, graded by their attributed outcomes there. Any
/// other drawn visitor, and one whose shown lists yield no list (what they acted on is no
/// candidate of theirs at the cut), is labelled by what they did next: their best grade per
/// candidate after the cut.
pub fn cut_lists(
    log: &TrainingLog,
    products: &[Product],
    config: &TrainingConfig,
    ranking: &RankingConfig,
    draw: &Draw,
    served: &Served,
    progress: Progress,
) -> Result<CutLists, TrainError> {
    let shown = &served.after_cut;
    let Draw { cut_ms, visitors, listed: ref chosen, ref role } = *draw;
    if chosen.is_empty() {
        return Ok(CutLists { cut_ms, visitors, lists: Vec::new() });
    }
    assert_eq!(role.len(), log.users.len(), "a draw of another log");
    let index: FxHashMap<&ProductId, u32> =
        log.items.iter().enumerate().map(|(i, p)| (p, i as u32)).collect();
    // What each listed visitor did after the cut: per list shown to them that earned an
    // outcome, the grade of each product in it; without such lists, their best grade per
    // product over all they did.
    let mut shown_lists: FxHashMap<u32, Vec<FxHashMap<u32, f32>>> = FxHashMap::default();
    let listed = |u: u32| role.get(u as usize) == Some(&Role::Listed);
    let earned = |list: &Vec<(ProductId, f32)>| list.iter().any(|(_, g)| *g > 0.0);
    for (&u, lists) in shown.iter().filter(|(&u, s)| listed(u) && s.iter().any(earned)) {
        let graded = lists
            .iter()
            .filter(|list| earned(list))
            .map(|list| list.iter().filter_map(|(id, g)| Some((*index.get(id)?, *g))).collect())
            .collect();
        shown_lists.insert(u, graded);
    }
    // Everyone's next actions: the labels of visitors whose shown lists yield no list.
    let mut next: FxHashMap<u32, FxHashMap<u32, f32>> = FxHashMap::default();
    for r in log.rows.iter().filter(|r| r.ts_ms >= cut_ms && role[r.user as usize] == Role::Listed) {
        let g = next.entry(r.user).or_default().entry(r.item).or_default();
        *g = g.max(grade(r.kind, r.value()));
    }

    // The cut's models: only the drawn and sampled visitors' rows, with only those
    // visitors in the user table (ALS keeps a vector per user).
    let past = log.subset_users(|r| r.ts_ms < cut_ms && role[r.user as usize] != Role::None);
    let cut_config = TrainingConfig { validation_users: 0, ..config.clone() };
    let mut bundle = {
        let mut step = |phase: &str, f: f32| progress(&format!("ranker: {phase}"), 0.6 * f);
        train_bundle(&past, &cut_config, (0, 0), &mut step)?
    };
    bundle.engagement = Engagement::new(engagement::window(cut_ms), &served.before_cut, products);
    drop(past);
    let mut first = vec![i64::MAX; log.items.len()];
    for r in log.rows.iter().filter(|r| r.ts_ms < cut_ms) {
        first[r.item as usize] = first[r.item as usize].min(r.ts_ms);
    }
    let first_event = |id: &ProductId| index.get(id).map(|&i| first[i as usize]).filter(|&t| t < i64::MAX);
    let catalogue = catalogue_at(products, cut_ms, first_event);
    let engine = Engine::new(catalogue, RankingConfig { exploration: 0.0, ..ranking.clone() });
    engine.activate(PreparedModel::new("ranker-cut", Arc::new(bundle)));
    // Every event before the cut feeds live popularity; the listed visitors' also their
    // online state.
    for (k, r) in log.rows.iter().enumerate() {
        if k % REPLAY_CHUNK == 0 && !progress("ranker: replay", 0.6 + 0.2 * k as f32 / log.len() as f32) {
            return Err(TrainError::Cancelled);
        }
        if r.ts_ms >= cut_ms {
            continue;
        }
        let e = log.event(r);
        if role[r.user as usize] == Role::Listed {
            engine.observe(&e);
        } else {
            engine.observe_popularity(&e);
        }
    }
    engine.refresh();
    let model = engine.model();
    let scoring = engine.ranking();
    let filters = Filters::default();
    let req = ListRequest { limit: LIST_LEN, filters: &filters, now_ms: cut_ms };
    let mut lists = Vec::new();
    for (k, chunk) in chosen.chunks(LIST_CHUNK).enumerate() {
        let done = (k * LIST_CHUNK) as f32 / chosen.len() as f32;
        if !progress("ranker: lists", 0.8 + 0.2 * done) {
            return Err(TrainError::Cancelled);
        }
        let built: Vec<Vec<TrainingList>> = chunk
            .par_iter()
            .map(|&u| {
                let (served, done) = (shown_lists.get(&u), next.get(&u));
                if served.is_none() && done.is_none() {
                    return Vec::new();
                }
                let cands = engine.candidate_features(&model, &scoring, &log.users[u as usize], &req);
                // A served list keeps only what was shown, and orders something only if it
                // holds an item passed over besides one acted on.
                let list_of = |grades: &FxHashMap<u32, f32>, shown_only: bool| {
                    let grade_of = |id: &ProductId| index.get(id).and_then(|i| grades.get(i)).copied();
                    let kept = cands
                        .iter()
                        .filter(|(id, _)| !shown_only || grade_of(id).is_some())
                        .cloned()
                        .collect();
                    let list = TrainingList::new(u64::from(u), kept, |id| grade_of(id).unwrap_or(0.0));
                    let informative = !shown_only || list.labels.contains(&0.0);
                    (informative && list.labels.iter().any(|&l| l > 0.0)).then_some(list)
                };
                let from_served: Vec<TrainingList> =
                    served.into_iter().flatten().filter_map(|g| list_of(g, true)).collect();
                if from_served.is_empty() {
                    done.and_then(|g| list_of(g, false)).into_iter().collect()
                } else {
                    from_served
                }
            })
            .collect();
        lists.extend(built.into_iter().flatten());
    }
    Ok(CutLists { cut_ms, visitors, lists })
}

/// What a visitor is to ranker training.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// Left out (no events before the cut, or not drawn).
    None,
    /// Their events before the cut train the cut's models.
    Trained,
    /// As `Trained`, and they get a training list.
    Listed,
}

/// Ranker training on `log` (see the module docs): `Ok(Err(reason))` when there is too
/// little to learn from or training failed (the models train on without a ranker); `Err`
/// only when the job was cancelled.
pub fn train_ranker(
    log: &TrainingLog,
    products: &[Product],
    config: &TrainingConfig,
    ranking: &RankingConfig,
    draw: &Draw,
    served: &Served,
    progress: Progress,
) -> Result<Result<Gated, String>, TrainError> {
    let trained = cut_lists(log, products, config, ranking, draw, served, progress).and_then(|lists| {
        Ok(match lists.too_few() {
            Some(reason) => Err(reason),
            None => Ok(fit_and_gate(lists.lists, &config.ranker.params())?),
        })
    });
    match trained {
        Err(TrainError::Cancelled) => Err(TrainError::Cancelled),
        Err(e) => Ok(Err(format!("ranker training failed: {e}"))),
        Ok(outcome) => Ok(outcome),
    }
}

#[cfg(test)]
#[path = "learn_tests.rs"]
mod tests;
