//! Shared item×item co-occurrence kernel: for every item `i` (in parallel) it accumulates
//! `co(i, j) = Σ_u uw(u)·x_ui·x_uj` in a dense scratch row, maps each entry through a
//! caller's function and keeps the `k` largest — the core of item-kNN and RP3beta.

use rayon::prelude::*;

use crate::matrix::CsrMatrix;

/// Returns the item×item matrix of the `k` best `value(i, j, co)` per row (positive values
/// only, `j != i`), rows sorted by column.
pub(crate) fn item_item_top_k<F>(
    x: &CsrMatrix,
    xt: &CsrMatrix,
    user_weight: &[f32],
    k: usize,
    value: F,
) -> CsrMatrix
where
    F: Fn(usize, usize, f32) -> f32 + Sync,
{
    let n = x.n_cols();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n], Vec::<u32>::new()),
            |(acc, touched), i| {
                let (users, xu) = xt.row(i);
                for (&u, &xui) in users.iter().zip(xu) {
                    let uw = user_weight.get(u as usize).copied().unwrap_or(1.0) * xui;
                    let (items, vals) = x.row(u as usize);
                    for (&j, &xuj) in items.iter().zip(vals) {
                        let slot = &mut acc[j as usize];
                        if *slot == 0.0 {
                            touched.push(j);
                        }
                        *slot += uw * xuj;
                    }
                }
                let mut cands: Vec<(u32, f32)> = Vec::with_capacity(touched.len());
                for &j in touched.iter() {
                    let co = acc[j as usize];
                    acc[j as usize] = 0.0;
                    if j as usize != i && co != 0.0 {
                        let v = value(i, j as usize, co);
                        if v > 0.0 && v.is_finite() {
                            cands.push((j, v));
                        }
                    }
                }
                touched.clear();
                keep_top(cands, k)
            },
        )
        .collect();
    CsrMatrix::from_rows(n, rows)
}

/// Keeps the `k` largest by value, returned sorted by column index.
pub(crate) fn keep_top(mut cands: Vec<(u32, f32)>, k: usize) -> (Vec<u32>, Vec<f32>) {
    if cands.len() > k {
        cands.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        cands.truncate(k);
    }
    cands.sort_unstable_by_key(|c| c.0);
    cands.into_iter().unzip()
}
