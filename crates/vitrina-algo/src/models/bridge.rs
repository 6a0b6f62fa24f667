//! Gap filling from the user's time order: which item most likely sits *between* two
//! consecutive items of the history? With `F` the row-normalised next-item transition
//! matrix, a pair `(a, b)` of neighbours in the history votes for `x` with the posterior
//! `F[a][x]·F[x][b] / Σ_y F[a][y]·F[y][b]` (a path a → x → b of a first-order Markov chain),
//! and the last item votes `F[last][x]·tail` for what comes next.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cooc::keep_top;
use crate::error::{invalid, Result};
use crate::matrix::CsrMatrix;

/// Bridge-model hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BridgeParams {
    /// Added to every row total before normalising (damps rare items).
    pub shrink: f32,
    /// Transitions kept per item.
    pub k: usize,
    /// Weight of the forward vote of the most recent item.
    pub tail: f32,
    /// Smoothing added to each pair's path mass before dividing.
    pub epsilon: f32,
}

impl Default for BridgeParams {
    fn default() -> Self {
        Self { shrink: 2.0, k: 300, tail: 0.0, epsilon: 1e-4 }
    }
}

/// A trained bridge model: the forward matrix and its transpose.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    pub(crate) params: BridgeParams,
    pub(crate) forward: CsrMatrix,
    pub(crate) backward: CsrMatrix,
}

impl Bridge {
    /// Trains from time-ordered item sequences (one per user, oldest first).
    pub fn train(sequences: &[Vec<u32>], n_items: usize, params: &BridgeParams) -> Result<Self> {
        if ![params.shrink, params.tail, params.epsilon].iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(invalid("bridge params must be finite and >= 0"));
        }
        if sequences.iter().flatten().any(|&i| i as usize >= n_items) {
            return Err(invalid("sequence item id outside the catalogue"));
        }
        let mut pairs: Vec<Vec<u32>> = vec![Vec::new(); n_items];
        for seq in sequences {
            for w in seq.windows(2) {
                if w[0] != w[1] {
                    pairs[w[0] as usize].push(w[1]);
                }
            }
        }
        let rows: Vec<(Vec<u32>, Vec<f32>)> = pairs
            .into_par_iter()
            .map(|mut next| {
                let total = next.len() as f32 + params.shrink;
                next.sort_unstable();
                let mut cands: Vec<(u32, f32)> = Vec::new();
                for b in next {
                    match cands.last_mut() {
                        Some(last) if last.0 == b => last.1 += 1.0,
                        _ => cands.push((b, 1.0)),
                    }
                }
                cands.iter_mut().for_each(|c| c.1 /= total);
                keep_top(cands, params.k)
            })
            .collect();
        let forward = CsrMatrix::from_rows(n_items, rows);
        let backward = forward.transpose();
        Ok(Self { params: params.clone(), forward, backward })
    }

    pub fn params(&self) -> &BridgeParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.forward.n_rows()
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        let n = self.n_items();
        let mut into_b = vec![0f32; n];
        for w in history.windows(2) {
            let (a, b) = (w[0].0 as usize, w[1].0 as usize);
            if a >= n || b >= n {
                continue;
            }
            let (pred, pv) = self.backward.row(b); // x with F[x][b]
            for (&x, &v) in pred.iter().zip(pv) {
                into_b[x as usize] = v;
            }
            let (succ, sv) = self.forward.row(a);
            let mass: f32 = succ.iter().zip(sv).map(|(&x, &v)| v * into_b[x as usize]).sum();
            if mass > 0.0 {
                let scale = w[1].1 / (mass + self.params.epsilon);
                for (&x, &v) in succ.iter().zip(sv) {
                    out[x as usize] += scale * v * into_b[x as usize];
                }
            }
            for &x in pred {
                into_b[x as usize] = 0.0;
            }
        }
        if self.params.tail > 0.0 {
            if let Some(&(last, w)) = history.last() {
                super::accumulate_sparse(&self.forward, &[(last, w * self.params.tail)], out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;

    #[test]
    fn fills_the_gap_between_neighbours() {
        // everyone walks 0 → 1 → 2 or 0 → 3 → 4; a user with [0, 2] is missing 1
        let seqs = vec![vec![0, 1, 2], vec![0, 1, 2], vec![0, 3, 4], vec![0, 3, 4], vec![0, 3, 4]];
        let b = Bridge::train(&seqs, 5, &BridgeParams::default()).unwrap();
        let top = Model::Bridge(b).recommend(&[(0, 1.0), (2, 1.0)], 1);
        assert_eq!(top[0].0, 1);
        assert!(Bridge::train(&[vec![7]], 5, &BridgeParams::default()).is_err());
    }
}
