//! EASE (Steck 2019): closed-form item×item model `B = I − P·diag(P)⁻¹` with
//! `P = (XᵀX + λI)⁻¹`, solved by a Cholesky inverse in faer. Dense `n×n`, so catalogues above
//! [`EaseParams::max_items`] are refused.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, AlgoError, Result};
use crate::matrix::CsrMatrix;

/// EASE hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EaseParams {
    /// λ, the L2 penalty on `B`.
    pub lambda: f32,
    /// Largest catalogue accepted (the model is dense: memory grows as n²).
    pub max_items: usize,
    /// Extra penalty proportional to each item's own Gram diagonal (its popularity):
    /// `λ_i = λ + popularity_reg·G_ii`, the dropout emphasis of DLAE (Steck 2020); 0 = EASE.
    pub popularity_reg: f32,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self { lambda: 500.0, max_items: 30_000, popularity_reg: 0.0 }
    }
}

/// A trained EASE model: the dense `n×n` weight matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Ease {
    pub(crate) params: EaseParams,
    pub(crate) n_items: usize,
    pub(crate) weights: Vec<f32>,
}

impl Ease {
    /// Trains on a user×item matrix.
    pub fn train(matrix: &CsrMatrix, params: &EaseParams) -> Result<Self> {
        let n = matrix.n_cols();
        if n > params.max_items {
            return Err(AlgoError::CatalogueTooLarge { model: "ease", items: n, limit: params.max_items });
        }
        let ok = params.lambda > 0.0
            && params.lambda.is_finite()
            && params.popularity_reg >= 0.0
            && params.popularity_reg.is_finite();
        if !ok {
            return Err(invalid("ease lambda must be finite and > 0, popularity_reg >= 0"));
        }
        if n == 0 {
            return Ok(Self { params: params.clone(), n_items: 0, weights: Vec::new() });
        }
        let g = gram_matrix(matrix, f64::from(params.lambda), f64::from(params.popularity_reg));
        let p = g
            .llt(Side::Lower)
            .map_err(|e| AlgoError::Numerical(format!("ease cholesky failed: {e:?}")))?
            .inverse();
        drop(g);
        let mut weights = vec![0f32; n * n];
        weights.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
            for (j, w) in row.iter_mut().enumerate() {
                *w = if i == j { 0.0 } else { (-p[(i, j)] / p[(j, j)]) as f32 };
            }
        });
        Ok(Self { params: params.clone(), n_items: n, weights })
    }

    pub fn params(&self) -> &EaseParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// `B[i][j]`.
    pub fn weight(&self, i: u32, j: u32) -> Option<f32> {
        let (i, j) = (i as usize, j as usize);
        (i < self.n_items && j < self.n_items).then(|| self.weights[i * self.n_items + j])
    }

    /// The `k` largest positive weights of each row as a sparse item→item model, scored like
    /// item-kNN: what serving keeps of EASE (a dense `n×n` matrix does not fit large shops).
    pub fn to_sparse(&self, k: usize) -> super::ItemKnn {
        let n = self.n_items;
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let row = &self.weights[i * n..(i + 1) * n];
                let cands: Vec<(u32, f32)> =
                    row.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(j, &w)| (j as u32, w)).collect();
                super::cooc::keep_top(cands, k)
            })
            .collect();
        super::ItemKnn {
            params: super::ItemKnnParams { k, shrink: 0.0 },
            neighbours: CsrMatrix::from_rows(n, rows),
        }
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        let n = self.n_items;
        for &(i, w) in history {
            if (i as usize) < n {
                crate::linalg::axpy(w, &self.weights[i as usize * n..(i as usize + 1) * n], out);
            }
        }
    }
}

/// `XᵀX + λI` as a dense faer matrix.
fn gram_matrix(matrix: &CsrMatrix, lambda: f64, popularity_reg: f64) -> Mat<f64> {
    let n = matrix.n_cols();
    let xt = matrix.transpose();
    let mut g = Mat::<f64>::zeros(n, n);
    // Column j of a symmetric matrix is row j: fill columns in parallel.
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|j| {
            let mut col = vec![0f64; n];
            let (users, xu) = xt.row(j);
            for (&u, &xuj) in users.iter().zip(xu) {
                let (items, vals) = matrix.row(u as usize);
                for (&i, &xui) in items.iter().zip(vals) {
                    col[i as usize] += f64::from(xuj) * f64::from(xui);
                }
            }
            col[j] += lambda + popularity_reg * col[j];
            col
        })
        .collect();
    for (j, col) in cols.into_iter().enumerate() {
        for (i, v) in col.into_iter().enumerate() {
            g[(i, j)] = v;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Interaction, MatrixOptions};

    /// Dense reference: Gauss–Jordan inverse of XᵀX + λI, then B = I − P/diag(P).
    fn reference(x: &[Vec<f64>], n: usize, lambda: f64) -> Vec<f64> {
        let mut a = vec![0f64; n * 2 * n];
        for i in 0..n {
            for j in 0..n {
                a[i * 2 * n + j] =
                    x.iter().map(|r| r[i] * r[j]).sum::<f64>() + if i == j { lambda } else { 0.0 };
            }
            a[i * 2 * n + n + i] = 1.0;
        }
        for c in 0..n {
            let piv = a[c * 2 * n + c];
            for k in 0..2 * n {
                a[c * 2 * n + k] /= piv;
            }
            for r in 0..n {
                if r != c {
                    let f = a[r * 2 * n + c];
                    for k in 0..2 * n {
                        a[r * 2 * n + k] -= f * a[c * 2 * n + k];
                    }
                }
            }
        }
        let p = |i: usize, j: usize| a[i * 2 * n + n + j];
        let mut b = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                b[i * n + j] = if i == j { 0.0 } else { -p(i, j) / p(j, j) };
            }
        }
        b
    }

    #[test]
    fn matches_dense_reference_solve() {
        let n = 6;
        let mut data = Vec::new();
        let mut dense = vec![vec![0f64; n]; 9];
        for (u, row) in dense.iter_mut().enumerate() {
            for (i, cell) in row.iter_mut().enumerate() {
                if (u * 7 + i * 3) % 5 < 2 || u == i {
                    data.push(Interaction { user: u as u32, item: i as u32, weight: 1.0, ts: 0 });
                    *cell = 1.0;
                }
            }
        }
        let m =
            CsrMatrix::from_interactions(&data, &MatrixOptions { n_items: Some(n), ..Default::default() })
                .unwrap();
        let ease =
            Ease::train(&m, &EaseParams { lambda: 2.0, popularity_reg: 0.0, ..Default::default() }).unwrap();
        let b = reference(&dense, n, 2.0);
        for i in 0..n {
            for j in 0..n {
                let got = f64::from(ease.weight(i as u32, j as u32).unwrap());
                assert!((got - b[i * n + j]).abs() < 1e-5, "B[{i}][{j}] {got} vs {}", b[i * n + j]);
            }
        }
    }

    #[test]
    fn refuses_large_catalogue_with_clear_error() {
        let data = [Interaction { user: 0, item: 10, weight: 1.0, ts: 0 }];
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let err =
            Ease::train(&m, &EaseParams { lambda: 1.0, max_items: 5, popularity_reg: 0.0 }).unwrap_err();
        assert!(err.to_string().contains("11 items, limit is 5"), "{err}");
    }
}
