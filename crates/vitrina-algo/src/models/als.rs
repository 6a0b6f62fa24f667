//! Implicit-feedback ALS (Hu, Koren, Volinsky 2008) with fold-in.
//!
//! Confidence `c = 1 + alpha·w`, preference 1 on observed entries. Each half-iteration
//! solves `(YᵀY + Yᵀ(C−I)Y + λI)·x = YᵀC·1` per row, in parallel with rayon, by a few
//! warm-started conjugate-gradient steps (`cg_steps > 0`, as the `implicit` library does)
//! or exactly by Cholesky (`cg_steps = 0`). Items are solved before users in every iteration
//! so the final user vectors match the final item vectors, and [`Als::fold_in`] — an exact
//! solve with the precomputed `YᵀY` — reproduces them for a user whose data did not change.

use rand::{rngs::StdRng, Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use pulp::{Simd, WithSimd};

use crate::linalg::{cholesky_solve, dot, gram, saxpy, sdot, smatvec};
use crate::matrix::CsrMatrix;

/// ALS hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    /// λ, added to the diagonal (at least [`MIN_REGULARIZATION`]).
    pub regularization: f32,
    /// Confidence slope: `c = 1 + alpha·w`.
    pub alpha: f32,
    /// Scale λ by the row's number of interactions (ALS-WR).
    pub frequency_scaled_regularization: bool,
    /// Conjugate-gradient steps per solve; 0 solves exactly by Cholesky.
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            iterations: 15,
            regularization: 0.01,
            alpha: 1.0,
            frequency_scaled_regularization: false,
            cg_steps: 3,
            seed: 42,
        }
    }
}

impl AlsParams {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.factors == 0 || self.factors > 4096 {
            return Err(invalid("als factors must be in 1..=4096"));
        }
        if !(self.regularization >= 0.0 && self.regularization.is_finite()) {
            return Err(invalid("als regularization must be finite and >= 0"));
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(invalid("als alpha must be finite and >= 0"));
        }
        Ok(())
    }
}

/// A trained ALS model.
#[derive(Debug, Clone, PartialEq)]
pub struct Als {
    pub(crate) params: AlsParams,
    pub(crate) n_users: usize,
    pub(crate) n_items: usize,
    pub(crate) user_factors: Vec<f32>,
    pub(crate) item_factors: Vec<f32>,
    /// `YᵀY` of the final item factors, for fold-in.
    pub(crate) yty: Vec<f32>,
}

impl Als {
    /// Trains on a user×item matrix; `progress(done, total)` is called after each iteration.
    pub fn train(
        matrix: &CsrMatrix,
        params: &AlsParams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        Self::train_until(matrix, params, &mut |done, total| {
            progress(done, total);
            true
        })?
        .ok_or_else(|| invalid("als training stopped"))
    }

    /// [`Als::train`] that stops after any iteration where `progress` returns `false`,
    /// returning `None`.
    pub fn train_until(
        matrix: &CsrMatrix,
        params: &AlsParams,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Option<Self>> {
        params.validate()?;
        let f = params.factors;
        let (n_users, n_items) = (matrix.n_rows(), matrix.n_cols());
        let xt = matrix.transpose();
        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut init = |n: usize| -> Vec<f32> { (0..n * f).map(|_| rng.random::<f32>() * 0.01).collect() };
        let mut user_factors = init(n_users);
        let mut item_factors = init(n_items);
        for it in 0..params.iterations {
            let gu = gram(&user_factors, f);
            solve_side(&xt, &user_factors, &mut item_factors, &gu, params)?;
            let gi = gram(&item_factors, f);
            solve_side(matrix, &item_factors, &mut user_factors, &gi, params)?;
            if !progress(it + 1, params.iterations) {
                return Ok(None);
            }
        }
        let yty = gram(&item_factors, f);
        Ok(Some(Self { params: params.clone(), n_users, n_items, user_factors, item_factors, yty }))
    }

    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    pub fn n_users(&self) -> usize {
        self.n_users
    }

    pub fn factors(&self) -> usize {
        self.params.factors
    }

    /// The training-time vector of user `u`.
    pub fn user_factors(&self, u: u32) -> Option<&[f32]> {
        let f = self.params.factors;
        self.user_factors.get(u as usize * f..(u as usize + 1) * f)
    }

    /// The model without its training-time user vectors: what serving needs (it folds
    /// users in from their current events), a fraction of the memory.
    pub fn without_users(mut self) -> Self {
        self.user_factors = Vec::new();
        self.n_users = 0;
        self
    }

    /// All item vectors, row-major (`n_items × factors`).
    pub fn item_matrix(&self) -> &[f32] {
        &self.item_factors
    }

    /// The vector of item `i`.
    pub fn item_factors(&self, i: u32) -> Option<&[f32]> {
        let f = self.params.factors;
        self.item_factors.get(i as usize * f..(i as usize + 1) * f)
    }

    /// `history` with unknown items and non-finite weights dropped and repeated items'
    /// weights added, by item.
    fn merged_history(&self, history: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let mut items: Vec<(u32, f32)> =
            history.iter().copied().filter(|&(i, w)| (i as usize) < self.n_items && w.is_finite()).collect();
        items.sort_unstable_by_key(|x| x.0);
        items.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 += b.1;
                true
            } else {
                false
            }
        });
        items
    }

    /// A user vector from `history` alone (exact solve against the fixed item factors);
    /// repeated items add their weights, unknown items are ignored.
    pub fn fold_in(&self, history: &[(u32, f32)]) -> Vec<f32> {
        let f = self.params.factors;
        let items = self.merged_history(history);
        let mut a = vec![0f64; f * f];
        let mut b = vec![0f64; f];
        solve_exact(&items, &self.item_factors, &self.yty, &self.params, &mut a, &mut b)
    }

    /// [`Als::fold_in`] by `steps` conjugate-gradient steps from zero, in `f32`: close to the
    /// exact solve at a fraction of its cost (no `f×f` system is built); what serving uses.
    pub fn fold_in_approx(&self, history: &[(u32, f32)], steps: usize) -> Vec<f32> {
        let f = self.params.factors;
        let items = self.merged_history(history);
        let (idx, val): (Vec<u32>, Vec<f32>) = items.into_iter().unzip();
        let mut x = vec![0f32; f];
        if idx.is_empty() {
            return x;
        }
        let mut scratch = vec![0f32; 4 * f];
        let params = AlsParams { cg_steps: steps.max(1), ..self.params.clone() };
        pulp::Arch::new().dispatch(Cg {
            idx: &idx,
            val: &val,
            other: &self.item_factors,
            gram: &self.yty,
            params: &params,
            x: &mut x,
            scratch: &mut scratch,
        });
        x
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        let u = self.fold_in(history);
        let f = self.params.factors;
        out.par_iter_mut()
            .with_min_len(4096)
            .zip(self.item_factors.par_chunks_exact(f).with_min_len(4096))
            .for_each(|(o, y)| *o = dot(&u, y));
    }
}

/// The smallest λ the solves use: without a ridge, a row with fewer items than factors is a
/// singular system, and conjugate gradients on it can grow the factors until they overflow.
const MIN_REGULARIZATION: f32 = 1e-6;

fn reg_for(params: &AlsParams, n: usize) -> f32 {
    let reg = params.regularization.max(MIN_REGULARIZATION);
    if params.frequency_scaled_regularization {
        reg * n.max(1) as f32
    } else {
        reg
    }
}

/// Solves every row of `rows` against `other` (the fixed side) into `target`.
fn solve_side(
    rows: &CsrMatrix,
    other: &[f32],
    target: &mut [f32],
    gram: &[f32],
    params: &AlsParams,
) -> Result<()> {
    let f = params.factors;
    let failed = std::sync::atomic::AtomicBool::new(false);
    let arch = pulp::Arch::new();
    target.par_chunks_mut(f).enumerate().for_each_init(
        || (vec![0f64; f * f], vec![0f64; f], vec![0f32; 4 * f]),
        |(a, b, scratch), (r, x)| {
            let (idx, val) = rows.row(r);
            if idx.is_empty() {
                x.fill(0.0);
                return;
            }
            if params.cg_steps == 0 {
                let items: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
                let v = solve_exact(&items, other, gram, params, a, b);
                if v.iter().any(|z| !z.is_finite()) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                x.copy_from_slice(&v);
            } else {
                arch.dispatch(Cg { idx, val, other, gram, params, x, scratch });
            }
        },
    );
    if failed.into_inner() {
        return Err(crate::AlgoError::Numerical("als system not positive definite".into()));
    }
    Ok(())
}

/// Exact solve by Cholesky in `f64`. Returns zeros if the system is singular.
fn solve_exact(
    items: &[(u32, f32)],
    other: &[f32],
    gram: &[f32],
    params: &AlsParams,
    a: &mut [f64],
    b: &mut [f64],
) -> Vec<f32> {
    let f = params.factors;
    let lambda = f64::from(reg_for(params, items.len()));
    for (ai, gi) in a.iter_mut().zip(gram) {
        *ai = f64::from(*gi);
    }
    b.fill(0.0);
    for k in 0..f {
        a[k * f + k] += lambda;
    }
    for &(i, w) in items {
        let y = &other[i as usize * f..(i as usize + 1) * f];
        let c = 1.0 + f64::from(params.alpha) * f64::from(w);
        for r in 0..f {
            let yr = f64::from(y[r]);
            b[r] += c * yr;
            let s = (c - 1.0) * yr;
            if s != 0.0 {
                let row = &mut a[r * f..(r + 1) * f];
                for (ak, yk) in row.iter_mut().zip(y) {
                    *ak += s * f64::from(*yk);
                }
            }
        }
    }
    if cholesky_solve(a, b, f) {
        b.iter().map(|&v| v as f32).collect()
    } else {
        vec![0.0; f]
    }
}

/// A few conjugate-gradient steps warm-started from `x`, for one row, in explicit SIMD.
struct Cg<'a> {
    idx: &'a [u32],
    val: &'a [f32],
    other: &'a [f32],
    gram: &'a [f32],
    params: &'a AlsParams,
    x: &'a mut [f32],
    scratch: &'a mut [f32],
}

impl WithSimd for Cg<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Cg { idx, val, other, gram, params, x, scratch } = self;
        let f = params.factors;
        let lambda = reg_for(params, idx.len());
        let (r, rest) = scratch.split_at_mut(f);
        let (p, rest) = rest.split_at_mut(f);
        let (ap, _) = rest.split_at_mut(f);
        // r = b − A·x, with b = Σ c·y and A·x = (YᵀY + λI)x + Σ (c−1)(y·x)y
        smatvec(simd, gram, x, r);
        for (ri, xi) in r.iter_mut().zip(x.iter()) {
            *ri = -*ri - lambda * xi;
        }
        for (&i, &w) in idx.iter().zip(val) {
            let y = &other[i as usize * f..(i as usize + 1) * f];
            let c = 1.0 + params.alpha * w;
            saxpy(simd, c - (c - 1.0) * sdot(simd, y, x), y, r);
        }
        p.copy_from_slice(r);
        let mut rs_old = sdot(simd, r, r);
        for _ in 0..params.cg_steps {
            if rs_old < 1e-20 {
                break;
            }
            smatvec(simd, gram, p, ap);
            saxpy(simd, lambda, p, ap);
            for (&i, &w) in idx.iter().zip(val) {
                let y = &other[i as usize * f..(i as usize + 1) * f];
                saxpy(simd, params.alpha * w * sdot(simd, y, p), y, ap);
            }
            let pap = sdot(simd, p, ap);
            if pap <= 0.0 || !pap.is_finite() {
                break;
            }
            let step = rs_old / pap;
            saxpy(simd, step, p, x);
            saxpy(simd, -step, ap, r);
            let rs_new = sdot(simd, r, r);
            let beta = rs_new / rs_old;
            for (pi, ri) in p.iter_mut().zip(r.iter()) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Interaction, MatrixOptions};
    use crate::topk::top_k;

    fn missing(u: u32) -> u32 {
        u % 2 + 2 * ((u / 2) % 10)
    }

    /// Two planted user groups, each liking its own half of the catalogue.
    fn planted() -> CsrMatrix {
        let mut data = Vec::new();
        for u in 0..40u32 {
            let group = u % 2;
            for i in 0..20u32 {
                // every user misses one item of their half, to be recovered
                if i % 2 == group && i != missing(u) {
                    data.push(Interaction { user: u, item: i, weight: 1.0, ts: 0 });
                }
            }
        }
        CsrMatrix::from_interactions(&data, &MatrixOptions { n_items: Some(20), ..Default::default() })
            .unwrap()
    }

    /// No regularisation with the largest confidence slope, on a matrix where most visitors
    /// have fewer items than factors: conjugate gradients once grew these factors to infinity.
    #[test]
    fn unregularised_singular_systems_stay_finite() {
        let cells = [
            (0, 0, 100.0),
            (0, 2, 100.0),
            (1, 0, 0.0),
            (1, 1, 1e-6),
            (1, 2, 100.0),
            (2, 1, 1.0),
            (2, 2, 0.5),
            (2, 6, 100.0),
            (3, 0, 0.5),
            (3, 1, 1e-6),
            (3, 3, 100.0),
            (3, 4, 100.0),
            (3, 5, 1e-6),
            (3, 6, 100.0),
        ];
        let data: Vec<Interaction> =
            cells.iter().map(|&(user, item, weight)| Interaction { user, item, weight, ts: 0 }).collect();
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let params = AlsParams {
            factors: 64,
            iterations: 100,
            regularization: 0.0,
            alpha: 1e6,
            frequency_scaled_regularization: true,
            cg_steps: 100,
            seed: 78,
        };
        let als = Als::train(&m, &params, &mut |_, _| {}).unwrap();
        assert!(als.user_factors.iter().chain(&als.item_factors).all(|v| v.is_finite()));
    }

    #[test]
    fn recovers_planted_low_rank_structure() {
        let m = planted();
        let params =
            AlsParams { factors: 2, iterations: 10, regularization: 0.1, alpha: 5.0, ..Default::default() };
        let mut calls = Vec::new();
        let als = Als::train(&m, &params, &mut |d, t| calls.push((d, t))).unwrap();
        assert_eq!(calls.last(), Some(&(10, 10)));
        for u in 0..40u32 {
            let hist = m.row_pairs(u as usize);
            let mut out = vec![0.0; 20];
            als.score_into(&hist, &mut out);
            let seen: Vec<u32> = hist.iter().map(|h| h.0).collect();
            let best = top_k(&out, 1, &seen)[0].0;
            assert_eq!(best, missing(u), "user {u}");
        }
    }

    #[test]
    fn fold_in_equals_training_vector_with_exact_solver() {
        let m = planted();
        let params = AlsParams { factors: 6, iterations: 4, cg_steps: 0, ..Default::default() };
        let als = Als::train(&m, &params, &mut |_, _| {}).unwrap();
        for u in [0u32, 7, 39] {
            let folded = als.fold_in(&m.row_pairs(u as usize));
            let trained = als.user_factors(u).unwrap();
            for (a, b) in folded.iter().zip(trained) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn approximate_fold_in_is_close_to_the_exact_one() {
        let m = planted();
        let params = AlsParams { factors: 8, iterations: 6, ..Default::default() };
        let als = Als::train(&m, &params, &mut |_, _| {}).unwrap();
        for u in [1usize, 11, 23] {
            let exact = als.fold_in(&m.row_pairs(u));
            let approx = als.fold_in_approx(&m.row_pairs(u), 8);
            let err: f32 = exact.iter().zip(&approx).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
            let norm: f32 = exact.iter().map(|b| b * b).sum::<f32>().sqrt();
            assert!(err <= 0.02 * norm + 1e-6, "user {u}: err {err} norm {norm}");
        }
        assert!(als.fold_in_approx(&[], 8).iter().all(|x| *x == 0.0));
    }

    #[test]
    fn fold_in_close_to_training_vector_with_cg() {
        let m = planted();
        let params = AlsParams { factors: 4, iterations: 15, cg_steps: 3, ..Default::default() };
        let als = Als::train(&m, &params, &mut |_, _| {}).unwrap();
        let folded = als.fold_in(&m.row_pairs(3));
        let trained = als.user_factors(3).unwrap();
        let err: f32 = folded.iter().zip(trained).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
        let norm: f32 = trained.iter().map(|b| b * b).sum::<f32>().sqrt();
        assert!(err <= 0.05 * norm + 1e-5, "err {err} norm {norm}");
    }

    #[test]
    fn rejects_bad_params_and_ignores_unknown_items() {
        let m = planted();
        let bad = AlsParams { factors: 0, ..Default::default() };
        assert!(Als::train(&m, &bad, &mut |_, _| {}).is_err());
        let als =
            Als::train(&m, &AlsParams { factors: 2, iterations: 1, ..Default::default() }, &mut |_, _| {})
                .unwrap();
        let v = als.fold_in(&[(1000, 1.0), (1, f32::NAN)]);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
