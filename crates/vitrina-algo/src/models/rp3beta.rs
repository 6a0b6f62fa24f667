//! RP3beta (Paudel et al. 2017, as benchmarked by Dacrema et al. 2019): a three-step random
//! walk item → user → item with transition probabilities raised to `alpha`, divided by the
//! target's popularity to the power `beta`; top-K per item.

use serde::{Deserialize, Serialize};

use super::cooc::item_item_top_k;
use crate::error::{invalid, Result};
use crate::matrix::CsrMatrix;

/// RP3beta hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rp3BetaParams {
    pub alpha: f32,
    pub beta: f32,
    /// Neighbours kept per item.
    pub k: usize,
}

impl Default for Rp3BetaParams {
    fn default() -> Self {
        Self { alpha: 1.0, beta: 0.5, k: 200 }
    }
}

/// A trained RP3beta model: sparse item×item transition weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Rp3Beta {
    pub(crate) params: Rp3BetaParams,
    pub(crate) weights: CsrMatrix,
}

impl Rp3Beta {
    /// Trains on a user×item matrix.
    pub fn train(matrix: &CsrMatrix, params: &Rp3BetaParams) -> Result<Self> {
        if !(params.alpha.is_finite() && params.beta.is_finite() && params.alpha > 0.0) {
            return Err(invalid("rp3beta alpha must be > 0 and beta finite"));
        }
        let xt = matrix.transpose();
        let user_deg: Vec<f32> = (0..matrix.n_rows()).map(|u| matrix.row(u).1.iter().sum::<f32>()).collect();
        let item_deg: Vec<f32> = (0..xt.n_rows()).map(|i| xt.row(i).1.iter().sum::<f32>()).collect();
        let a = params.alpha;
        let user_weight: Vec<f32> =
            user_deg.iter().map(|&d| if d > 0.0 { d.powf(-a) } else { 0.0 }).collect();
        let item_in: Vec<f32> = item_deg.iter().map(|&d| if d > 0.0 { d.powf(-a) } else { 0.0 }).collect();
        let item_out: Vec<f32> =
            item_deg.iter().map(|&d| if d > 0.0 { d.powf(-params.beta) } else { 0.0 }).collect();
        let weights =
            item_item_top_k(matrix, &xt, &user_weight, params.k, |i, j, co| co * item_in[i] * item_out[j]);
        Ok(Self { params: params.clone(), weights })
    }

    pub fn params(&self) -> &Rp3BetaParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.weights.n_rows()
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        super::accumulate_sparse(&self.weights, history, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Interaction, MatrixOptions};

    #[test]
    fn known_answer_on_tiny_graph() {
        // users: 0 -> {0,1}, 1 -> {0,1,2}
        let data: Vec<Interaction> = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
            .iter()
            .map(|&(user, item)| Interaction { user, item, weight: 1.0, ts: 0 })
            .collect();
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let rp3 = Rp3Beta::train(&m, &Rp3BetaParams { alpha: 1.0, beta: 0.0, k: 10 }).unwrap();
        // W[0][1] = (1/2)·(1/2 + 1/3), W[0][2] = (1/2)·(1/3)
        let (idx, w) = rp3.weights.row(0);
        assert_eq!(idx, &[1, 2]);
        assert!((w[0] - 0.5 * (0.5 + 1.0 / 3.0)).abs() < 1e-6);
        assert!((w[1] - 0.5 / 3.0).abs() < 1e-6);
    }
}
