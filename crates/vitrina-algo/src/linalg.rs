//! Small dense helpers for the factor models: dot products, Gram matrices and an `f64`
//! Cholesky solve for the `factors × factors` systems of ALS.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// `Σ a[i]·b[i]`.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks..a.len().min(b.len()) {
        s += a[i] * b[i];
    }
    s
}

/// `y += a·x`.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `FᵀF` for a row-major `rows×f` factor matrix, as a row-major `f×f` matrix.
pub(crate) fn gram(factors: &[f32], f: usize) -> Vec<f32> {
    if f == 0 {
        return Vec::new();
    }
    // partial sums per fixed block, added in block order: deterministic whatever the threads
    let partials: Vec<Vec<f64>> = factors
        .par_chunks(f * 4096)
        .map(|block| pulp::Arch::new().dispatch(GramBlock { block, f }))
        .collect();
    let mut total = vec![0f64; f * f];
    for p in partials {
        for (t, x) in total.iter_mut().zip(p) {
            *t += x;
        }
    }
    total.into_iter().map(|x| x as f32).collect()
}

/// `Σ a[i]·b[i]` with explicit SIMD lanes (`S` chosen at run time by [`pulp::Arch`]).
#[inline(always)]
pub(crate) fn sdot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (ah, at) = S::as_simd_f32s(a);
    let (bh, bt) = S::as_simd_f32s(b);
    let mut acc0 = simd.splat_f32s(0.0);
    let mut acc1 = simd.splat_f32s(0.0);
    let mut pairs = ah.chunks_exact(2).zip(bh.chunks_exact(2));
    for (x, y) in pairs.by_ref() {
        acc0 = simd.mul_add_e_f32s(x[0], y[0], acc0);
        acc1 = simd.mul_add_e_f32s(x[1], y[1], acc1);
    }
    if ah.len() % 2 == 1 {
        acc0 = simd.mul_add_e_f32s(ah[ah.len() - 1], bh[bh.len() - 1], acc0);
    }
    let mut r = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
    for (x, y) in at.iter().zip(bt) {
        r += x * y;
    }
    r
}

/// `y += alpha·x` with explicit SIMD lanes.
#[inline(always)]
pub(crate) fn saxpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let (xh, xt) = S::as_simd_f32s(x);
    let (yh, yt) = S::as_mut_simd_f32s(y);
    let a = simd.splat_f32s(alpha);
    for (yi, xi) in yh.iter_mut().zip(xh) {
        *yi = simd.mul_add_e_f32s(a, *xi, *yi);
    }
    for (yi, xi) in yt.iter_mut().zip(xt) {
        *yi += alpha * xi;
    }
}

/// `out = M·v` for a symmetric row-major `n×n` matrix, with explicit SIMD lanes.
#[inline(always)]
pub(crate) fn smatvec<S: Simd>(simd: S, m: &[f32], v: &[f32], out: &mut [f32]) {
    let n = v.len();
    out.fill(0.0);
    for (j, &vj) in v.iter().enumerate() {
        saxpy(simd, vj, &m[j * n..(j + 1) * n], out);
    }
}

struct GramBlock<'a> {
    block: &'a [f32],
    f: usize,
}

impl WithSimd for GramBlock<'_> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f64> {
        let f = self.f;
        let mut acc = vec![0f32; f * f];
        for row in self.block.chunks_exact(f) {
            for (i, &ri) in row.iter().enumerate() {
                if ri != 0.0 {
                    saxpy(simd, ri, row, &mut acc[i * f..(i + 1) * f]);
                }
            }
        }
        acc.into_iter().map(f64::from).collect()
    }
}

/// Solves `A·x = b` in place for a symmetric positive definite row-major `n×n` `a`
/// (overwritten by its Cholesky factor). Returns `false` if `a` is not positive definite.
pub(crate) fn cholesky_solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_small_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, 1.0];
        assert!(cholesky_solve(&mut a, &mut b, 2));
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12);
        let mut bad = vec![0.0, 1.0, 1.0, 0.0];
        assert!(!cholesky_solve(&mut bad, &mut [1.0, 1.0], 2));
    }

    #[test]
    fn gram_matches_naive() {
        let f = 3;
        let m: Vec<f32> = (0..12).map(|x| x as f32 * 0.5 - 2.0).collect();
        let g = gram(&m, f);
        for i in 0..f {
            for j in 0..f {
                let naive: f32 = m.chunks(f).map(|r| r[i] * r[j]).sum();
                assert!((g[i * f + j] - naive).abs() < 1e-4);
            }
        }
        assert_eq!(dot(&m, &m), m.iter().map(|x| x * x).sum::<f32>());
    }
}
