//! The ordering a ranker's trees start from: the single feature that ranks the training lists
//! best, standardised. Boosting from zero, a handful of early-stopped trees cut a strong
//! feature into a few dozen leaves and rank the rows within a leaf as ties; starting from the
//! feature itself, the trees only correct it, and a ranker whose trees add nothing on the
//! validation lists is that feature's ordering rather than a coarse copy of it.

use serde::{Deserialize, Serialize};

use super::RankingSet;

/// How far below the lowest standardised value a missing one scores.
const MISSING_BELOW: f32 = 1.0;

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
            Some(v) if !v.is_nan() => self.scale * (v - self.mean),
            _ => self.missing,
        }
    }

    /// Every value finite and the feature in range.
    pub fn is_sound(&self, n_features: usize) -> bool {
        self.feature < n_features
            && self.mean.is_finite()
            && self.scale.is_finite()
            && self.scale != 0.0
            && self.missing.is_finite()
    }

    /// The feature and direction whose standardised values give the best mean NDCG@k on `set`,
    /// if one ranks better than the lists' own row order does.
    pub fn choose(set: &RankingSet, k: usize) -> Option<Self> {
        let mut best = (set.mean_ndcg(&vec![0.0; set.n_rows()], k), None);
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
                let scores: Vec<f32> = (0..set.n_rows()).map(|r| base.score(set.row(r))).collect();
                let ndcg = set.mean_ndcg(&scores, k);
                if ndcg > best.0 {
                    best = (ndcg, Some(base));
                }
            }
        }
        best.1
    }
}
