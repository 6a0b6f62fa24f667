//! EASE (Steck 2019): closed-form item×item model `B = I − P·diag(P)⁻¹` with
//! `P = (XᵀX + λI)⁻¹` (λ at least a tiny fraction of the largest diagonal entry, so a singular
//! Gram matrix stays solvable), solved by a Cholesky inverse in faer. Dense `n×n`, so catalogues above
//! [`EaseParams::max_items`] are refused.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, AlgoError, Result};
use crate::matrix::{CsrMatrix, Interaction};

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
    /// Session weighting of the Gram matrix: a user's two items count
    /// `floor + (1 − floor)·exp(−|Δt| / session_seconds)` towards their co-occurrence, so items
    /// taken in the same session tie more strongly than items months apart. 0 = off (plain
    /// EASE); needs interaction times ([`Ease::train_timed`]).
    pub session_seconds: f32,
    /// The weight of a co-occurrence whose two items are far apart in time (0 ≤ floor ≤ 1).
    pub session_floor: f32,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self {
            lambda: 500.0,
            max_items: 30_000,
            popularity_reg: 0.0,
            session_seconds: 0.0,
            session_floor: 0.5,
        }
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
    /// Trains on a user×item matrix (session weighting off: there are no times).
    pub fn train(matrix: &CsrMatrix, params: &EaseParams) -> Result<Self> {
        Self::fit(matrix, None, params)
    }

    /// Trains on a user×item matrix whose entries took place at the time the `interactions`
    /// give for them (the earliest if several do); with `session_seconds > 0` co-occurrences are weighted
    /// by how close in time the two items were (see [`EaseParams::session_seconds`]).
    pub fn train_timed(
        matrix: &CsrMatrix,
        interactions: &[Interaction],
        params: &EaseParams,
    ) -> Result<Self> {
        if params.session_seconds > 0.0 {
            let times = entry_times(matrix, interactions);
            Self::fit(matrix, Some(&times), params)
        } else {
            Self::fit(matrix, None, params)
        }
    }

    fn fit(matrix: &CsrMatrix, times: Option<&[Option<i64>]>, params: &EaseParams) -> Result<Self> {
        let n = matrix.n_cols();
        if n > params.max_items {
            return Err(AlgoError::CatalogueTooLarge { model: "ease", items: n, limit: params.max_items });
        }
        let ok = params.lambda > 0.0
            && params.lambda.is_finite()
            && params.popularity_reg >= 0.0
            && params.popularity_reg.is_finite()
            && params.session_seconds >= 0.0
            && params.session_seconds.is_finite()
            && (0.0..=1.0).contains(&params.session_floor);
        if !ok {
            return Err(invalid(
                "ease lambda must be finite and > 0, popularity_reg >= 0, session_seconds >= 0, \
                 session_floor within [0, 1]",
            ));
        }
        if n == 0 {
            return Ok(Self { params: params.clone(), n_items: 0, weights: Vec::new() });
        }
        let session = times.map(|t| Session {
            times: t,
            seconds: f64::from(params.session_seconds),
            floor: f64::from(params.session_floor),
        });
        let g = gram_matrix(matrix, f64::from(params.popularity_reg), session);
        let p = ridge_inverse(g, f64::from(params.lambda))?;
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
        self.sparse(k, |w| w > 0.0)
    }

    /// The `k` weights of largest magnitude of each row, negative ones too, as a sparse
    /// item→item model: closer to the dense model's scores than [`Ease::to_sparse`], for a
    /// scorer that sums signed contributions (a negative weight says "taken with i, rarely
    /// also j").
    pub fn to_sparse_signed(&self, k: usize) -> super::ItemKnn {
        self.sparse(k, |w| w != 0.0)
    }

    /// Each row's `k` weights of largest magnitude among those `admit` lets through (ties
    /// by item index).
    fn sparse(&self, k: usize, admit: impl Fn(f32) -> bool + Sync) -> super::ItemKnn {
        let n = self.n_items;
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let row = &self.weights[i * n..(i + 1) * n];
                let mut cands: Vec<(u32, f32)> =
                    row.iter().enumerate().filter(|(_, w)| admit(**w)).map(|(j, &w)| (j as u32, w)).collect();
                if cands.len() > k {
                    let larger =
                        |a: &(u32, f32), b: &(u32, f32)| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0));
                    cands.select_nth_unstable_by(k.saturating_sub(1), larger);
                    cands.truncate(k);
                }
                cands.sort_unstable_by_key(|c| c.0);
                cands.into_iter().unzip()
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

/// Times of a matrix's entries (aligned with its CSR storage) for session weighting.
#[derive(Clone, Copy)]
struct Session<'a> {
    times: &'a [Option<i64>],
    seconds: f64,
    floor: f64,
}

impl Session<'_> {
    /// Weight of a pair of entries; an entry without a time counts as far from everything.
    fn kernel(&self, a: Option<i64>, b: Option<i64>) -> f64 {
        match (a, b) {
            (Some(a), Some(b)) => {
                let apart = (a - b).unsigned_abs() as f64;
                self.floor + (1.0 - self.floor) * (-apart / self.seconds).exp()
            }
            _ => self.floor,
        }
    }
}

/// For each stored entry of `matrix` (aligned with its CSR storage), the earliest time
/// `interactions` give for that (user, item), if any.
fn entry_times(matrix: &CsrMatrix, interactions: &[Interaction]) -> Vec<Option<i64>> {
    let mut times: Vec<Option<i64>> = vec![None; matrix.nnz()];
    for x in interactions {
        let (items, _) = matrix.row(x.user as usize);
        if let Ok(pos) = items.binary_search(&x.item) {
            let slot = &mut times[matrix.indptr()[x.user as usize] + pos];
            *slot = Some(slot.map_or(x.ts, |t| t.min(x.ts)));
        }
    }
    times
}

/// The smallest ridge, relative to the Gram matrix's largest diagonal entry, that the solve
/// uses: a λ far below the data's scale (valid input) would leave a singular Gram matrix
/// singular in floating point, and its Cholesky factorisation would fail.
const MIN_RELATIVE_RIDGE: f64 = 1e-9;

/// `(G + ridge·I)⁻¹` with `ridge = max(λ, MIN_RELATIVE_RIDGE·max Gᵢᵢ)`; should rounding still
/// make a pivot non-positive, the ridge grows a thousandfold, up to three times, before the
/// solve is declared a numerical failure.
fn ridge_inverse(mut g: Mat<f64>, lambda: f64) -> Result<Mat<f64>> {
    let n = g.nrows();
    let scale = (0..n).map(|i| g[(i, i)]).fold(0.0, f64::max);
    let mut ridge = lambda.max(scale * MIN_RELATIVE_RIDGE);
    let (mut added, mut retries) = (0.0, 0);
    loop {
        for i in 0..n {
            g[(i, i)] += ridge - added;
        }
        added = ridge;
        match g.llt(Side::Lower) {
            Ok(l) => return Ok(l.inverse()),
            Err(e) if retries == 3 => {
                return Err(AlgoError::Numerical(format!("ease cholesky failed at ridge {ridge:e}: {e:?}")))
            }
            Err(_) => (ridge, retries) = (ridge * 1e3, retries + 1),
        }
    }
}

/// `XᵀX` as a dense faer matrix, each diagonal entry raised by `popularity_reg·Gᵢᵢ`; with
/// `session`, each user's pair of items is weighted by the session kernel of their times. The
/// ridge λ is added by [`ridge_inverse`].
fn gram_matrix(matrix: &CsrMatrix, popularity_reg: f64, session: Option<Session<'_>>) -> Mat<f64> {
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
                match session {
                    None => {
                        for (&i, &xui) in items.iter().zip(vals) {
                            col[i as usize] += f64::from(xuj) * f64::from(xui);
                        }
                    }
                    Some(s) => {
                        let start = matrix.indptr()[u as usize];
                        let row_times = &s.times[start..start + items.len()];
                        let tj = items.binary_search(&(j as u32)).ok().and_then(|p| row_times[p]);
                        for ((&i, &xui), &ti) in items.iter().zip(vals).zip(row_times) {
                            let k = if i as usize == j { 1.0 } else { s.kernel(ti, tj) };
                            col[i as usize] += f64::from(xuj) * f64::from(xui) * k;
                        }
                    }
                }
            }
            col[j] += popularity_reg * col[j];
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
    use crate::matrix::MatrixOptions;

    /// Dense reference: Gauss–Jordan inverse of XᵀX + λI, then B = I − P/diag(P).
    fn reference(x: &[Vec<f64>], n: usize, lambda: f64) -> Vec<f64> {
        reference_from_gram(|i, j| x.iter().map(|r| r[i] * r[j]).sum::<f64>(), n, lambda)
    }

    /// The same from any Gram matrix `g(i, j)`.
    fn reference_from_gram(g: impl Fn(usize, usize) -> f64, n: usize, lambda: f64) -> Vec<f64> {
        let mut a = vec![0f64; n * 2 * n];
        for i in 0..n {
            for j in 0..n {
                a[i * 2 * n + j] = g(i, j) + if i == j { lambda } else { 0.0 };
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
        assert_weights_match(&ease, &b, n);
    }

    /// The signed sparse model keeps each row's largest weights by magnitude, negative ones
    /// among them, with the dense model's values; the plain one keeps positive weights only.
    #[test]
    fn the_signed_sparse_model_keeps_the_largest_weights_of_either_sign() {
        let n = 6;
        let mut data = Vec::new();
        for u in 0..12u32 {
            for i in 0..n as u32 {
                if (u * 7 + i * 3) % 5 < 2 || u % n as u32 == i {
                    data.push(Interaction { user: u, item: i, weight: 1.0, ts: 0 });
                }
            }
        }
        let m =
            CsrMatrix::from_interactions(&data, &MatrixOptions { n_items: Some(n), ..Default::default() })
                .unwrap();
        let ease = Ease::train(&m, &EaseParams { lambda: 1.0, ..Default::default() }).unwrap();
        let k = 3;
        let (signed, plain) = (ease.to_sparse_signed(k), ease.to_sparse(k));
        let mut saw_negative = false;
        for i in 0..n as u32 {
            let mut row: Vec<(u32, f32)> = (0..n as u32)
                .filter(|&j| j != i)
                .map(|j| (j, ease.weight(i, j).unwrap()))
                .filter(|x| x.1 != 0.0)
                .collect();
            row.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            let (idx, w) = signed.neighbours(i);
            let mut kept: Vec<(u32, f32)> = idx.iter().copied().zip(w.iter().copied()).collect();
            kept.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            assert_eq!(kept, row[..k.min(row.len())], "row {i}");
            saw_negative |= kept.iter().any(|x| x.1 < 0.0);
            assert!(plain.neighbours(i).1.iter().all(|&w| w > 0.0), "row {i}");
        }
        assert!(saw_negative, "the fixture has negative weights among the largest: {:?}", ease.weights);
    }

    /// Two items always taken together make a singular Gram matrix; with λ the smallest
    /// positive f32 the solve still succeeds and each item recommends the other.
    #[test]
    fn items_always_taken_together_recommend_each_other_at_a_tiny_lambda() {
        let data = [0, 1].map(|item| Interaction { user: 5, item, weight: 1.0, ts: 0 });
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let ease = Ease::train(&m, &EaseParams { lambda: f32::from_bits(1), ..Default::default() }).unwrap();
        assert!(ease.weight(0, 1).unwrap() > 0.9 && ease.weight(1, 0).unwrap() > 0.9, "{:?}", ease.weights);
    }

    /// A pivot that rounding leaves non-positive at the first ridge gets a larger one;
    /// a matrix no ridge mends is a numerical failure, not a panic.
    #[test]
    fn the_ridge_grows_until_the_solve_succeeds_or_gives_up() {
        // Scale 1 → first ridge 1e-9: the second pivot is −2e-6 + 1e-9, then −1e-6; 1e-3 solves.
        let g = Mat::from_fn(2, 2, |i, j| {
            if i != j {
                0.0
            } else if i == 0 {
                1.0
            } else {
                -2e-6
            }
        });
        let p = ridge_inverse(g, 1e-12).unwrap();
        assert!((p[(1, 1)] - 1.0 / (1e-3 - 2e-6)).abs() < 1e-6 * p[(1, 1)], "{:?}", p[(1, 1)]);
        let hopeless = Mat::from_fn(2, 2, |i, _| if i == 0 { 1.0 } else { f64::NAN });
        let err = ridge_inverse(hopeless, 1.0).unwrap_err();
        assert!(matches!(err, AlgoError::Numerical(ref m) if m.contains("ease cholesky failed")), "{err}");
    }

    proptest::proptest! {
        /// Any valid λ, however far below the data's scale (down to the smallest positive
        /// f32), on any small matrix of weights 0–100, session-weighted or not, trains to
        /// finite weights: a singular Gram matrix is valid input, not a numerical failure
        /// (a fuzzer's training job once failed so).
        #[test]
        fn any_valid_lambda_trains_to_finite_weights(
            cells in proptest::collection::vec((0u32..6, 0u32..5, 0i32..=1000, 0i64..1000), 1..20),
            lambda in proptest::sample::select(vec![f32::from_bits(1), 1e-30, 1e-10, 1e-3, 0.1, 500.0]),
            session_seconds in proptest::sample::select(vec![0.0f32, 1.0, 100.0, 1e9]),
            session_floor in proptest::sample::select(vec![0.0f32, 0.5, 1.0]),
        ) {
            let data: Vec<Interaction> = cells
                .iter()
                .map(|&(user, item, w, ts)| Interaction { user, item, weight: w as f32 / 10.0, ts })
                .collect();
            let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
            let params = EaseParams { lambda, session_seconds, session_floor, ..Default::default() };
            let ease = Ease::train_timed(&m, &data, &params).unwrap();
            proptest::prop_assert!(ease.weights.iter().all(|w| w.is_finite()));
            proptest::prop_assert_eq!(ease.params().lambda, lambda);
        }
    }

    #[test]
    fn refuses_large_catalogue_with_clear_error() {
        let data = [Interaction { user: 0, item: 10, weight: 1.0, ts: 0 }];
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let err =
            Ease::train(&m, &EaseParams { lambda: 1.0, max_items: 5, ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("11 items, limit is 5"), "{err}");
    }

    fn timed(rows: &[&[(u32, i64)]]) -> Vec<Interaction> {
        rows.iter()
            .enumerate()
            .flat_map(|(u, row)| {
                row.iter().map(move |&(item, ts)| Interaction { user: u as u32, item, weight: 1.0, ts })
            })
            .collect()
    }

    /// Every weight of `ease` within 1e-5 of the dense reference `b` (n×n, row-major).
    fn assert_weights_match(ease: &Ease, b: &[f64], n: usize) {
        for i in 0..n {
            for j in 0..n {
                let got = f64::from(ease.weight(i as u32, j as u32).unwrap());
                assert!((got - b[i * n + j]).abs() < 1e-5, "B[{i}][{j}] {got} vs {}", b[i * n + j]);
            }
        }
    }

    fn matrix_of(data: &[Interaction], n: usize) -> CsrMatrix {
        CsrMatrix::from_interactions(data, &MatrixOptions { n_items: Some(n), ..Default::default() }).unwrap()
    }

    #[test]
    fn session_gram_matches_dense_reference() {
        let rows: [&[(u32, i64)]; 5] = [
            &[(0, 0), (1, 30), (2, 4_000)],
            &[(0, 100), (2, 160), (3, 90_000)],
            &[(1, 5), (3, 5), (4, 700)],
            &[(0, 0), (4, 60), (1, 61), (2, 1_000_000)],
            &[(2, 10), (3, 20), (4, 30)],
        ];
        let data = timed(&rows);
        // User 3's item 2 has no time: its pairs count the floor, its diagonal 1.
        let untimed = (3u32, 2u32);
        let times: Vec<Interaction> = data.iter().copied().filter(|x| (x.user, x.item) != untimed).collect();
        let n = 5;
        let params =
            EaseParams { lambda: 1.5, session_seconds: 120.0, session_floor: 0.25, ..Default::default() };
        let weight = |u: usize, a: (usize, i64), b: (usize, i64)| {
            let timeless = [a.0, b.0].iter().any(|&i| (u as u32, i as u32) == untimed);
            match (a.0 == b.0, timeless) {
                (true, _) => 1.0,
                (false, true) => 0.25,
                (false, false) => 0.25 + 0.75 * (-((a.1 - b.1).abs() as f64) / 120.0).exp(),
            }
        };
        let entry =
            |row: &[(u32, i64)], i: usize| row.iter().find(|(it, _)| *it as usize == i).map(|x| (i, x.1));
        let gram = |i: usize, j: usize| {
            rows.iter()
                .enumerate()
                .filter_map(|(u, row)| Some(weight(u, entry(row, i)?, entry(row, j)?)))
                .sum::<f64>()
        };
        let b = reference_from_gram(gram, n, 1.5);
        let ease = Ease::train_timed(&matrix_of(&data, n), &times, &params).unwrap();
        assert_weights_match(&ease, &b, n);
    }

    #[test]
    fn same_time_everywhere_is_plain_ease_and_sessions_tie_items_taken_together() {
        // Items 1 and 2 are equally often taken with item 0; item 1 in the same minute,
        // item 2 a month later.
        let mut rows: Vec<Vec<(u32, i64)>> = Vec::new();
        for u in 0..6i64 {
            rows.push(vec![(0, u * 1_000), (1, u * 1_000 + 20), (3, u * 1_000 + 40)]);
            rows.push(vec![(0, u * 1_000), (2, u * 1_000 + 2_592_000), (3, u * 1_000 + 40)]);
        }
        let refs: Vec<&[(u32, i64)]> = rows.iter().map(Vec::as_slice).collect();
        let data = timed(&refs);
        let m = matrix_of(&data, 4);
        let session =
            EaseParams { lambda: 2.0, session_seconds: 300.0, session_floor: 0.2, ..Default::default() };
        let plain = Ease::train(&m, &EaseParams { lambda: 2.0, ..Default::default() }).unwrap();
        assert_eq!(plain.weight(0, 1), plain.weight(0, 2), "plain EASE cannot tell them apart");
        let timed_model = Ease::train_timed(&m, &data, &session).unwrap();
        let (with_1, with_2) = (timed_model.weight(0, 1).unwrap(), timed_model.weight(0, 2).unwrap());
        assert!(with_1 > with_2 + 0.05, "same-session item {with_1} vs a month apart {with_2}");

        let same_time: Vec<Interaction> = data.iter().map(|x| Interaction { ts: 7, ..*x }).collect();
        let flat = Ease::train_timed(&m, &same_time, &session).unwrap();
        for (a, b) in flat.weights.iter().zip(&plain.weights) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn refuses_session_floor_outside_unit_interval() {
        let data = timed(&[&[(0, 0), (1, 5)]]);
        let params =
            EaseParams { lambda: 1.0, session_seconds: 60.0, session_floor: 1.5, ..Default::default() };
        let err = Ease::train_timed(&matrix_of(&data, 2), &data, &params).unwrap_err();
        assert!(err.to_string().contains("session_floor"), "{err}");
    }
}
