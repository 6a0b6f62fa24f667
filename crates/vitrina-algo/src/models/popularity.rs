//! Popularity and trending: one global score per item.
//!
//! Trained on the interaction matrix: with [`crate::TimeDecay`] applied when the matrix was
//! built, the column sums are a trending score (recent interactions count more).

use serde::{Deserialize, Serialize};

use crate::matrix::{CsrMatrix, Interaction, MatrixOptions, TimeDecay};
use crate::Result;

/// How popularity is counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PopularityParams {
    /// Count distinct users (`true`) or sum interaction weights (`false`, needed for decay).
    pub count_users: bool,
}

/// Global item scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    pub(crate) params: PopularityParams,
    pub(crate) scores: Vec<f32>,
}

impl Popularity {
    /// Column sums (or user counts) of `matrix`.
    pub fn train(matrix: &CsrMatrix, params: &PopularityParams) -> Self {
        let scores = if params.count_users {
            matrix.column_counts().into_iter().map(|c| c as f32).collect()
        } else {
            matrix.column_sums()
        };
        Self { params: params.clone(), scores }
    }

    /// Trending: interactions summed with `decay^(age_days)` before `decay.reference_ts`.
    pub fn trending(interactions: &[Interaction], n_items: usize, decay: TimeDecay) -> Result<Self> {
        let opts = MatrixOptions { n_items: Some(n_items), decay: Some(decay), ..MatrixOptions::default() };
        let m = CsrMatrix::from_interactions(interactions, &opts)?;
        Ok(Self::train(&m, &PopularityParams::default()))
    }

    pub fn params(&self) -> &PopularityParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.scores.len()
    }

    /// The global scores, item order.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    pub(crate) fn score_into(&self, _history: &[(u32, f32)], out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;

    #[test]
    fn trending_prefers_recent() {
        let day = 86_400;
        let x = |user, item, ts| Interaction { user, item, weight: 1.0, ts };
        let data = [x(0, 0, 0), x(1, 0, 0), x(2, 1, 10 * day)];
        let decay = TimeDecay { factor: 0.5, reference_ts: 10 * day };
        let trending = Popularity::trending(&data, 2, decay).unwrap();
        assert!(trending.scores()[1] > trending.scores()[0]);
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let plain = Popularity::train(&m, &PopularityParams { count_users: true });
        assert_eq!(plain.scores(), &[2.0, 1.0]);
        let top = Model::Popularity(plain).recommend(&[(0, 1.0)], 5);
        assert_eq!(top, vec![(1, 1.0)]);
    }
}
