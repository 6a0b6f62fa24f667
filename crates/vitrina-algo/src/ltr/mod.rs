//! Learning to rank: gradient-boosted regression trees trained with the LambdaMART
//! objective over lists of candidates, each row a candidate's features and a graded label.
//!
//! - [`RankingSet`]: lists of rows (features row-major, NaN = missing) with graded labels;
//! - [`Ranker::train`]: boosting rounds of leaf-wise trees on quantile-binned features,
//!   starting from the single feature that ranks the training lists best ([`Base`]), with
//!   early stopping on a validation set's NDCG@k;
//! - [`Ranker::score`]: one candidate's score from its raw features (a few hundred node
//!   visits), so serving needs no binning.
//!
//! Written here rather than taken from a crate: see `docs/adr/0015-learned-ranker.md`.

mod base;
mod bins;
mod lambda;
mod tree;

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::{invalid, AlgoError, Result},
    eval::MeanStderr,
};
pub use base::Base;
pub use lambda::ndcg_at;
use tree::{Growth, Tree};

/// Lists of candidates to learn a ranking from, or to measure one on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankingSet {
    n_features: usize,
    features: Vec<f32>,
    labels: Vec<f32>,
    ends: Vec<usize>,
}

impl RankingSet {
    pub fn new(n_features: usize) -> Self {
        Self { n_features, ..Default::default() }
    }

    /// Appends one list: `features` holds `labels.len()` rows of `n_features` values each
    /// (NaN = missing, infinities rejected); labels are graded relevance, `>= 0`.
    pub fn push_list(&mut self, features: &[f32], labels: &[f32]) -> Result<()> {
        if features.len() != labels.len() * self.n_features {
            return Err(invalid(format!(
                "a list of {} rows needs {} feature values, got {}",
                labels.len(),
                labels.len() * self.n_features,
                features.len()
            )));
        }
        if features.iter().any(|v| v.is_infinite()) {
            return Err(invalid("feature values must be finite or NaN (missing)"));
        }
        if labels.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(invalid("labels must be finite and >= 0"));
        }
        self.features.extend_from_slice(features);
        self.labels.extend_from_slice(labels);
        self.ends.push(self.labels.len());
        Ok(())
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_lists(&self) -> usize {
        self.ends.len()
    }

    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    fn list(&self, i: usize) -> Range<usize> {
        (if i == 0 { 0 } else { self.ends[i - 1] })..self.ends[i]
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.features[r * self.n_features..(r + 1) * self.n_features]
    }

    /// Feature `f` of every row, in row order.
    pub fn feature(&self, f: usize) -> Vec<f32> {
        (0..self.n_rows()).map(|r| self.row(r)[f]).collect()
    }

    /// NDCG@k of each list that holds a relevant row, in list order, for the given row scores.
    pub fn ndcg_per_list(&self, scores: &[f32], k: usize) -> Vec<f64> {
        (0..self.n_lists())
            .filter_map(|i| {
                let r = self.list(i);
                ndcg_at(&scores[r.clone()], &self.labels[r], k)
            })
            .collect()
    }

    /// Mean NDCG@k over the lists that hold a relevant row, for the given row scores.
    pub fn mean_ndcg(&self, scores: &[f32], k: usize) -> f64 {
        MeanStderr::of(&self.ndcg_per_list(scores, k)).mean
    }
}

/// Most trees a ranker may have (training and reading alike).
const MAX_TREES: usize = 10_000;
/// Most leaves a tree may have.
const MAX_LEAVES: usize = 65_536;
/// Deepest a tree may be (so scoring one candidate stays a few thousand node visits).
const MAX_DEPTH: usize = 64;

/// The ranker's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RankerParams {
    /// Boosting rounds at most (early stopping may keep fewer).
    pub trees: usize,
    pub learning_rate: f32,
    pub max_leaves: usize,
    pub max_depth: usize,
    pub min_rows_in_leaf: usize,
    pub min_hessian_in_leaf: f32,
    /// L2 penalty on leaf values.
    pub l2: f32,
    /// Bins per feature (2..=255), the missing bin aside.
    pub max_bins: usize,
    /// The list depth whose NDCG the objective and early stopping look at.
    pub ndcg_at: usize,
    /// Steepness of the pairwise logistic loss.
    pub sigma: f32,
    /// Stop when the validation NDCG has not improved for this many rounds.
    pub early_stopping_rounds: usize,
    /// Start from the single feature that ranks the training lists best ([`Base`]) rather
    /// than from zero.
    pub base: bool,
}

impl Default for RankerParams {
    fn default() -> Self {
        Self {
            trees: 300,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 8,
            min_rows_in_leaf: 20,
            min_hessian_in_leaf: 1e-3,
            l2: 1.0,
            max_bins: 63,
            ndcg_at: 20,
            sigma: 1.0,
            early_stopping_rounds: 30,
            base: true,
        }
    }
}

impl RankerParams {
    fn check(&self) -> Result<()> {
        let ok = self.trees > 0
            && self.learning_rate > 0.0
            && self.learning_rate.is_finite()
            && self.max_leaves >= 2
            && (1..=MAX_DEPTH).contains(&self.max_depth)
            && self.min_rows_in_leaf >= 1
            && self.min_hessian_in_leaf >= 0.0
            && self.l2 > 0.0
            && self.l2.is_finite()
            && self.trees <= MAX_TREES
            && self.max_leaves <= MAX_LEAVES
            && (2..=255).contains(&self.max_bins)
            && self.ndcg_at >= 1
            && self.sigma > 0.0
            && self.sigma.is_finite();
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "ranker: trees (at most 10,000), learningRate, l2, minRowsInLeaf, ndcgAt and sigma must be > 0, \
                 maxLeaves in 2..=65,536, maxDepth in 1..=64, minHessianInLeaf >= 0, maxBins in 2..=255",
            ))
        }
    }
}

/// How training went: NDCG@k after each round, on the training and validation lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainReport {
    pub train_ndcg: Vec<f64>,
    pub validation_ndcg: Vec<f64>,
    /// Rounds kept (the best validation round, or all without validation).
    pub trees_kept: usize,
}

/// A trained ranker: its base feature's standardised value plus the sum of its trees' outputs
/// is a candidate's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranker {
    n_features: usize,
    /// Absent in rankers trained before it existed, and when no feature ranks better than
    /// the lists' own order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<Base>,
    trees: Vec<Tree>,
}

impl Ranker {
    /// Trains on `train`; with `validation`, keeps the round with the best validation
    /// NDCG@k (none: the base alone, when no tree improves on it) and stops
    /// `early_stopping_rounds` after it. Deterministic for the same input.
    pub fn train(
        train: &RankingSet,
        validation: Option<&RankingSet>,
        params: &RankerParams,
    ) -> Result<(Self, TrainReport)> {
        params.check()?;
        if validation.is_some_and(|v| v.n_features != train.n_features) {
            return Err(invalid("training and validation lists have different feature counts"));
        }
        let binned = bins::Binned::new(&train.features, train.n_features, params.max_bins);
        // lists where every row has the same label teach nothing
        let informative: Vec<usize> = (0..train.n_lists())
            .filter(|&i| {
                let l = &train.labels[train.list(i)];
                l.iter().any(|&x| x != l[0])
            })
            .collect();
        let rows: Vec<u32> = informative.iter().flat_map(|&i| train.list(i)).map(|r| r as u32).collect();
        let growth = Growth {
            max_leaves: params.max_leaves,
            max_depth: params.max_depth,
            min_rows_in_leaf: params.min_rows_in_leaf,
            min_hessian_in_leaf: f64::from(params.min_hessian_in_leaf),
            l2: f64::from(params.l2),
            learning_rate: f64::from(params.learning_rate),
        };
        let n = train.n_rows();
        let base = if params.base { Base::choose(train, params.ndcg_at) } else { None };
        let mut ranker = Ranker { n_features: train.n_features, base, trees: Vec::new() };
        let mut scores = ranker.score_set(train);
        let (mut grad, mut hess) = (vec![0f32; n], vec![0f32; n]);
        let mut valid_scores = validation.map_or_else(Vec::new, |v| ranker.score_set(v));
        let mut report = TrainReport::default();
        // With a base, no tree at all is a candidate: the base alone may be the best round.
        let mut best = match (validation, &ranker.base) {
            (Some(v), Some(_)) => (v.mean_ndcg(&valid_scores, params.ndcg_at), 0usize),
            _ => (f64::NEG_INFINITY, 0),
        };
        for round in 0..params.trees {
            gradients(train, &informative, &scores, params, &mut grad, &mut hess);
            let (tree, values) = tree::grow(&binned, rows.clone(), &grad, &hess, &growth);
            let grew = !tree.splits.is_empty();
            for (s, v) in scores.iter_mut().zip(&values) {
                *s += v;
            }
            if let Some(v) = validation {
                valid_scores.par_iter_mut().enumerate().for_each(|(r, s)| *s += tree.predict(v.row(r)));
            }
            ranker.trees.push(tree);
            report.train_ndcg.push(train.mean_ndcg(&scores, params.ndcg_at));
            if let Some(v) = validation {
                let ndcg = v.mean_ndcg(&valid_scores, params.ndcg_at);
                report.validation_ndcg.push(ndcg);
                if ndcg > best.0 {
                    best = (ndcg, round + 1);
                } else if round + 1 - best.1 >= params.early_stopping_rounds {
                    break;
                }
            }
            if !grew {
                break;
            }
        }
        if validation.is_some() {
            ranker.trees.truncate(best.1);
        }
        report.trees_kept = ranker.trees.len();
        Ok((ranker, report))
    }

    /// The score of one candidate from its `n_features` raw values (NaN = missing; a row
    /// shorter than that reads the absent values as missing).
    pub fn score(&self, row: &[f32]) -> f32 {
        debug_assert_eq!(row.len(), self.n_features);
        self.base.map_or(0.0, |b| b.score(row)) + self.trees.iter().map(|t| t.predict(row)).sum::<f32>()
    }

    /// Scores every row of a set, in row order.
    pub fn score_set(&self, set: &RankingSet) -> Vec<f32> {
        (0..set.n_rows()).map(|r| self.score(set.row(r))).collect()
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// The feature the trees start from, if any.
    pub fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }

    /// Each feature's total split gain across the trees (its share in what the ranker learnt).
    pub fn importance(&self) -> Vec<f64> {
        let mut gain = vec![0f64; self.n_features];
        for s in self.trees.iter().flat_map(|t| &t.splits) {
            gain[s.feature as usize] += f64::from(s.gain);
        }
        gain
    }

    /// Checks a ranker read from outside (an artefact): every feature index in range and
    /// every tree walk ending at a leaf, so scoring can neither index out of bounds nor loop.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(AlgoError::Artefact(format!("ranker: {m}")));
        if self.trees.len() > MAX_TREES {
            return bad("more trees than a ranker may have");
        }
        if self.base.is_some_and(|b| !b.is_sound(self.n_features)) {
            return bad("its base reads a feature it does not have or is not finite");
        }
        let mut largest_sum = 0f64;
        for t in &self.trees {
            if t.leaves.is_empty() || t.leaves.len() != t.splits.len() + 1 || t.leaves.len() > MAX_LEAVES {
                return bad("a tree's leaves do not match its splits");
            }
            if t.leaves.iter().any(|v| !v.is_finite()) {
                return bad("a leaf value is not finite");
            }
            largest_sum += t.leaves.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
            for (i, s) in t.splits.iter().enumerate() {
                if s.feature as usize >= self.n_features {
                    return bad("a split reads a feature the ranker does not have");
                }
                if s.threshold.is_nan() {
                    return bad("a split threshold is NaN");
                }
                for child in [s.left, s.right] {
                    let fine = if child >= 0 {
                        (child as usize) > i && (child as usize) < t.splits.len()
                    } else {
                        ((!child) as usize) < t.leaves.len()
                    };
                    if !fine {
                        return bad("a split points outside its tree");
                    }
                }
            }
            if tree::depth(t) > MAX_DEPTH {
                return bad("a tree is deeper than a ranker's may be");
            }
        }
        // no sum of leaves can overflow a score
        if largest_sum > 1e30 {
            return bad("leaf values too large");
        }
        Ok(())
    }
}

/// Writes the LambdaMART gradients of the informative lists (others keep zeros).
fn gradients(
    set: &RankingSet,
    informative: &[usize],
    scores: &[f32],
    params: &RankerParams,
    grad: &mut [f32],
    hess: &mut [f32],
) {
    let mut parts = Vec::with_capacity(informative.len());
    let (mut g_rest, mut h_rest, mut offset) = (grad, hess, 0usize);
    for &i in informative {
        let r = set.list(i);
        let (_, g) = std::mem::take(&mut g_rest).split_at_mut(r.start - offset);
        let (_, h) = std::mem::take(&mut h_rest).split_at_mut(r.start - offset);
        let (g_list, g_tail) = g.split_at_mut(r.len());
        let (h_list, h_tail) = h.split_at_mut(r.len());
        parts.push((r.clone(), g_list, h_list));
        (g_rest, h_rest, offset) = (g_tail, h_tail, r.end);
    }
    let (k, sigma) = (params.ndcg_at, f64::from(params.sigma));
    parts.into_par_iter().for_each(|(r, g, h)| {
        lambda::list_gradients(&scores[r.clone()], &set.labels[r], k, sigma, g, h);
    });
}

#[cfg(test)]
mod tests;
