//! Sequential signal: item → next-item transitions learnt from each user's time-ordered
//! history, scored from the user's most recent items.
//!
//! `T[a][b] = Σ gap_decay^(d−1)` over every pair where `b` follows `a` by `d ≤ window`
//! steps (plus `backward·…` where it precedes it), divided by `(out(a) + shrink)` and by
//! `pop(b)^beta`; the top `k` per row are kept. A user's score is
//! `Σ_k recency^k · T[h_k]` over their last `history_len` items, most recent first.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cooc::keep_top;
use crate::error::{invalid, Result};
use crate::matrix::CsrMatrix;

/// Transition-model hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct TransitionParams {
    /// How many following items count as a transition.
    pub window: usize,
    /// Weight multiplier per extra step of distance.
    pub gap_decay: f32,
    /// Weight of the reverse direction (the item before), 0 for purely forward.
    pub backward: f32,
    /// Added to a row's total before normalising.
    pub shrink: f32,
    /// Popularity debiasing exponent on the target item.
    pub beta: f32,
    /// Transitions kept per item.
    pub k: usize,
    /// Most recent items used when scoring.
    pub history_len: usize,
    /// Weight multiplier per step back in the user's history.
    pub recency: f32,
}

impl Default for TransitionParams {
    fn default() -> Self {
        Self {
            window: 3,
            gap_decay: 0.5,
            backward: 0.0,
            shrink: 5.0,
            beta: 0.0,
            k: 200,
            history_len: 5,
            recency: 0.6,
        }
    }
}

/// A trained transition model.
#[derive(Debug, Clone, PartialEq)]
pub struct Transitions {
    pub(crate) params: TransitionParams,
    pub(crate) weights: CsrMatrix,
}

impl Transitions {
    /// Trains from time-ordered item sequences (one per user, oldest first), e.g. from
    /// [`crate::matrix::user_sequences`]. Ids `>= n_items` are rejected.
    pub fn train(sequences: &[Vec<u32>], n_items: usize, params: &TransitionParams) -> Result<Self> {
        let finite = [params.gap_decay, params.backward, params.shrink, params.beta, params.recency];
        if finite.iter().any(|v| !v.is_finite() || *v < 0.0) || params.window == 0 {
            return Err(invalid("transition params must be finite, >= 0, window >= 1"));
        }
        if sequences.iter().flatten().any(|&i| i as usize >= n_items) {
            return Err(invalid("sequence item id outside the catalogue"));
        }
        // occurrences of each item: (sequence, position)
        let mut start = vec![0usize; n_items + 1];
        for &i in sequences.iter().flatten() {
            start[i as usize + 1] += 1;
        }
        for i in 0..n_items {
            start[i + 1] += start[i];
        }
        let pop: Vec<f32> = (0..n_items).map(|i| (start[i + 1] - start[i]) as f32).collect();
        let mut next = start.clone();
        let mut occ = vec![(0u32, 0u32); start[n_items]];
        for (s, seq) in sequences.iter().enumerate() {
            for (pos, &i) in seq.iter().enumerate() {
                occ[next[i as usize]] = (s as u32, pos as u32);
                next[i as usize] += 1;
            }
        }
        let gaps: Vec<f32> = (0..params.window).map(|d| params.gap_decay.powi(d as i32)).collect();
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n_items], Vec::<u32>::new()),
                |(acc, touched), a| {
                    let mut add = |b: u32, w: f32| {
                        if b as usize != a && w > 0.0 {
                            if acc[b as usize] == 0.0 {
                                touched.push(b);
                            }
                            acc[b as usize] += w;
                        }
                    };
                    for &(s, pos) in &occ[start[a]..start[a + 1]] {
                        let seq = &sequences[s as usize];
                        let pos = pos as usize;
                        for (d, &g) in gaps.iter().enumerate() {
                            if let Some(&b) = seq.get(pos + d + 1) {
                                add(b, g);
                            }
                            if params.backward > 0.0 && pos > d {
                                add(seq[pos - d - 1], params.backward * g);
                            }
                        }
                    }
                    let total: f32 = touched.iter().map(|&b| acc[b as usize]).sum();
                    let cands = touched
                        .iter()
                        .map(|&b| {
                            let v = acc[b as usize]
                                / (total + params.shrink)
                                / pop[b as usize].max(1.0).powf(params.beta);
                            acc[b as usize] = 0.0;
                            (b, v)
                        })
                        .collect();
                    touched.clear();
                    keep_top(cands, params.k)
                },
            )
            .collect();
        Ok(Self { params: params.clone(), weights: CsrMatrix::from_rows(n_items, rows) })
    }

    pub fn params(&self) -> &TransitionParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.weights.n_rows()
    }

    /// Item `a`'s successors and weights (sorted by successor id).
    pub fn successors(&self, a: u32) -> (&[u32], &[f32]) {
        self.weights.row(a as usize)
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        let mut r = 1.0f32;
        for &(item, w) in history.iter().rev().take(self.params.history_len) {
            super::accumulate_sparse(&self.weights, &[(item, w * r)], out);
            r *= self.params.recency;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;

    #[test]
    fn learns_next_item_and_scores_from_the_latest() {
        let seqs = vec![vec![0, 1, 2], vec![0, 1, 3], vec![2, 3]];
        let params = TransitionParams { window: 1, shrink: 0.0, history_len: 1, ..Default::default() };
        let t = Transitions::train(&seqs, 4, &params).unwrap();
        assert_eq!(t.successors(0), (&[1u32][..], &[1.0f32][..]));
        assert_eq!(t.successors(1), (&[2u32, 3][..], &[0.5f32, 0.5][..]));
        let m = Model::Transitions(t);
        // only the last item (2) matters with history_len 1
        assert_eq!(m.recommend(&[(0, 1.0), (2, 1.0)], 1), vec![(3, 1.0)]);
        assert!(Transitions::train(&[vec![9]], 4, &params).is_err());
    }
}
