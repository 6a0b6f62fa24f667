//! The ordering a ranker's trees start from: the single feature that ranks the training lists
//! best, standardised. Boosting from zero, a handful of early-stopped trees cut a strong
//! feature into a few dozen leaves and rank the rows within a leaf as ties; starting from the
//! feature itself, the trees only correct it, and a ranker whose trees add nothing on the
//! validation lists is that feature's ordering rather than a coarse copy of it.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::RankingSet;

/// How far below the lowest standardised value a missing one scores.
const MISSING_BELOW: f32 = 1.0;
/// Largest base score in magnitude, so that with the trees' leaves (bounded by
/// `Ranker::validate`) no score overflows, whatever a ranker read from outside holds.
const MAX_SCORE: f32 = 1e30;

/// One feature as a starting score: `scale · (value − mean)`, `missing` when the value is NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    pub feature: usize,
    pub mean: f32,
    /// `±1 / standard deviation`: negative for a feature whose low values rank first (a rank).
    pub scale: f32,
    pub missing: f32,
}

impl Base {
    pub fn score(&self, row: &[f32]) -> f32 {
        match row.get(self.feature) {
            Some(v) if !v.is_nan() => (self.scale * (v - self.mean)).clamp(-MAX_SCORE, MAX_SCORE),
            _ => self.missing,
        }
    }

    /// Every value finite and the feature in range.
    pub fn is_sound(&self, n_features: usize) -> bool {
        self.feature < n_features
            && self.mean.is_finite()
            && self.scale.is_finite()
            && self.scale != 0.0
            && self.missing.abs() <= MAX_SCORE
    }

    /// The feature and direction whose standardised values give the best mean NDCG@k on `set`,
    /// if one ranks better than the lists' own row order does (ties keep that order, so in
    /// the engine's lists, which come in the blend's order, a base must beat the blend).
    pub fn choose(set: &RankingSet, k: usize) -> Option<Self> {
        let mut candidates = Vec::new();
        for f in 0..set.n_features() {
            let values = set.feature(f);
            let present: Vec<f64> = values.iter().filter(|v| !v.is_nan()).map(|&v| f64::from(v)).collect();
            if present.len() < 2 {
                continue;
            }
            let mean = present.iter().sum::<f64>() / present.len() as f64;
            let sd = (present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / present.len() as f64).sqrt();
            if !(sd > 0.0 && sd.is_finite()) {
                continue;
            }
            for sign in [1.0, -1.0] {
                let scale = (sign / sd) as f32;
                let lowest = present.iter().map(|&v| scale * (v - mean) as f32).fold(f32::INFINITY, f32::min);
                let base = Base { feature: f, mean: mean as f32, scale, missing: lowest - MISSING_BELOW };
                if base.is_sound(set.n_features()) {
                    candidates.push(base);
                }
            }
        }
        let ndcg = |base: &Base| {
            let scores: Vec<f32> = (0..set.n_rows()).map(|r| base.score(set.row(r))).collect();
            set.mean_ndcg(&scores, k)
        };
        let order = set.mean_ndcg(&vec![0.0; set.n_rows()], k);
        // In feature order, the first of equals wins: the same lists give the same base.
        let scored: Vec<(f64, Base)> = candidates.into_par_iter().map(|b| (ndcg(&b), b)).collect();
        scored.into_iter().fold((order, None), |best, (n, b)| if n > best.0 { (n, Some(b)) } else { best }).1
    }
}
