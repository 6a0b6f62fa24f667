//! Item-kNN: cosine similarity with shrinkage, top-K neighbours per item.
//!
//! `sim(i, j) = co(i, j) / (‖i‖·‖j‖ + shrink)` with `co` the weighted co-occurrence.
//! [`ItemKnnIndex`] keeps the co-occurrence counts so one user's new interactions can be
//! added and the touched items' neighbour lists refreshed without retraining.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cooc::{item_item_top_k, keep_top};
use crate::error::{invalid, Result};
use crate::matrix::CsrMatrix;

/// Item-kNN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct ItemKnnParams {
    /// Neighbours kept per item.
    pub k: usize,
    /// Added to the cosine denominator: damps similarities built on few co-occurrences.
    pub shrink: f32,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        Self { k: 100, shrink: 10.0 }
    }
}

impl ItemKnnParams {
    fn validate(&self) -> Result<()> {
        if !(self.shrink >= 0.0 && self.shrink.is_finite()) {
            return Err(invalid("item-knn shrink must be finite and >= 0"));
        }
        Ok(())
    }
}

/// A trained item-kNN model: the neighbour lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemKnn {
    pub(crate) params: ItemKnnParams,
    pub(crate) neighbours: CsrMatrix,
}

impl ItemKnn {
    /// Trains on a user×item matrix.
    pub fn train(matrix: &CsrMatrix, params: &ItemKnnParams) -> Result<Self> {
        params.validate()?;
        let xt = matrix.transpose();
        let norms: Vec<f32> =
            (0..xt.n_rows()).map(|i| xt.row(i).1.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
        let shrink = params.shrink;
        let neighbours =
            item_item_top_k(matrix, &xt, &[], params.k, |i, j, co| co / (norms[i] * norms[j] + shrink));
        Ok(Self { params: params.clone(), neighbours })
    }

    pub fn params(&self) -> &ItemKnnParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.neighbours.n_rows()
    }

    /// Item `i`'s neighbours and similarities (sorted by neighbour id).
    pub fn neighbours(&self, item: u32) -> (&[u32], &[f32]) {
        self.neighbours.row(item as usize)
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        super::accumulate_sparse(&self.neighbours, history, out);
    }
}

/// Co-occurrence counts that grow user by user; produces [`ItemKnn`] models.
#[derive(Debug, Clone, Default)]
pub struct ItemKnnIndex {
    params: ItemKnnParams,
    norms_sq: Vec<f32>,
    co: Vec<HashMap<u32, f32>>,
}

impl ItemKnnIndex {
    /// An index over `n_items` items with no users yet.
    pub fn new(n_items: usize, params: &ItemKnnParams) -> Result<Self> {
        params.validate()?;
        Ok(Self { params: params.clone(), norms_sq: vec![0.0; n_items], co: vec![HashMap::new(); n_items] })
    }

    /// Adds every row of `matrix`.
    pub fn from_matrix(matrix: &CsrMatrix, params: &ItemKnnParams) -> Result<Self> {
        let mut index = Self::new(matrix.n_cols(), params)?;
        for u in 0..matrix.n_rows() {
            index.add_user(&matrix.row_pairs(u))?;
        }
        Ok(index)
    }

    /// Adds one user's interactions (deduplicated by the caller) and returns the items whose
    /// neighbour lists changed; the catalogue grows to fit new item ids.
    pub fn add_user(&mut self, items: &[(u32, f32)]) -> Result<Vec<u32>> {
        if items.iter().any(|&(_, w)| !w.is_finite()) {
            return Err(invalid("interaction weight must be finite"));
        }
        let max = items.iter().map(|&(i, _)| i as usize + 1).max().unwrap_or(0);
        if max > self.co.len() {
            self.co.resize(max, HashMap::new());
            self.norms_sq.resize(max, 0.0);
        }
        for &(i, wi) in items {
            self.norms_sq[i as usize] += wi * wi;
            for &(j, wj) in items {
                if i != j {
                    *self.co[i as usize].entry(j).or_insert(0.0) += wi * wj;
                }
            }
        }
        let mut touched: Vec<u32> = items.iter().map(|x| x.0).collect();
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    fn row(&self, i: usize) -> (Vec<u32>, Vec<f32>) {
        let ni = self.norms_sq[i].sqrt();
        let cands = self.co[i]
            .iter()
            .map(|(&j, &co)| (j, co / (ni * self.norms_sq[j as usize].sqrt() + self.params.shrink)))
            .filter(|c| c.1 > 0.0 && c.1.is_finite())
            .collect();
        keep_top(cands, self.params.k)
    }

    /// A model with every item's neighbour list.
    pub fn model(&self) -> ItemKnn {
        let rows = (0..self.co.len()).map(|i| self.row(i)).collect();
        ItemKnn { params: self.params.clone(), neighbours: CsrMatrix::from_rows(self.co.len(), rows) }
    }

    /// Refreshes `model` for the `touched` items (and their neighbours' norms changes are
    /// ignored until their own refresh: cheap and good enough between full trainings).
    pub fn refresh(&self, model: &mut ItemKnn, touched: &[u32]) {
        let n = self.co.len();
        let mut rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
            .map(|i| {
                let (a, b) = model.neighbours.row(i);
                (a.to_vec(), b.to_vec())
            })
            .collect();
        for &t in touched {
            if let Some(r) = rows.get_mut(t as usize) {
                *r = self.row(t as usize);
            }
        }
        model.neighbours = CsrMatrix::from_rows(n, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Interaction, MatrixOptions};

    fn matrix(pairs: &[(u32, u32)]) -> CsrMatrix {
        let data: Vec<Interaction> =
            pairs.iter().map(|&(user, item)| Interaction { user, item, weight: 1.0, ts: 0 }).collect();
        CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap()
    }

    #[test]
    fn cosine_with_shrink_known_answer() {
        // item 0: users {0,1}; item 1: users {0,1,2}; item 2: user {2}
        let m = matrix(&[(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 2)]);
        let knn = ItemKnn::train(&m, &ItemKnnParams { k: 10, shrink: 1.0 }).unwrap();
        let (idx, sim) = knn.neighbours(0);
        assert_eq!(idx, &[1]);
        let expected = 2.0 / (2f32.sqrt() * 3f32.sqrt() + 1.0);
        assert!((sim[0] - expected).abs() < 1e-6);
        let (idx, _) = knn.neighbours(1);
        assert_eq!(idx, &[0, 2]);
    }

    #[test]
    fn incremental_index_matches_batch_training() {
        let pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 2), (3, 0), (3, 2)];
        let params = ItemKnnParams { k: 2, shrink: 0.5 };
        let batch = ItemKnn::train(&matrix(&pairs[..6]), &params).unwrap();
        let mut index = ItemKnnIndex::from_matrix(&matrix(&pairs[..6]), &params).unwrap();
        let mut model = index.model();
        assert_eq!(model.neighbours, batch.neighbours);
        let touched = index.add_user(&[(0, 1.0), (2, 1.0)]).unwrap();
        index.refresh(&mut model, &touched);
        let full = ItemKnn::train(&matrix(&pairs), &params).unwrap();
        for t in touched {
            assert_eq!(model.neighbours(t), full.neighbours(t));
        }
        assert!(index.add_user(&[(0, f32::NAN)]).is_err());
    }
}
