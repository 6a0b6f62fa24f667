//! Interactions → a weighted user×item CSR matrix (`f32`).
//!
//! Built from `(user, item, weight, ts)` triplets with an optional time decay
//! `decay^(age_days)` relative to a reference time, and a configurable policy for
//! repeated `(user, item)` pairs. Column indices are sorted within each row.

use rayon::prelude::*;

use crate::error::{invalid, Result};

/// One interaction: `user` did something worth `weight` to `item` at `ts` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    pub ts: i64,
}

/// What to do with repeated `(user, item)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// Add their (decayed) weights: the usual choice for training on event logs.
    #[default]
    Sum,
    /// Keep the first one in input order only: what evaluation protocols use.
    First,
}

/// Exponential time decay: an interaction `age_days` before `reference_ts` is multiplied by
/// `factor^age_days`. Interactions after the reference are not boosted (age clamps at 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeDecay {
    /// Per-day multiplier in `(0, 1]`.
    pub factor: f32,
    /// The "now" ages are measured from, unix seconds.
    pub reference_ts: i64,
}

impl TimeDecay {
    /// The multiplier for an interaction at `ts`.
    pub fn weight(&self, ts: i64) -> f32 {
        let age_days = ((self.reference_ts - ts).max(0) as f64) / 86_400.0;
        (f64::from(self.factor)).powf(age_days) as f32
    }
}

/// How to build a [`CsrMatrix`] from interactions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MatrixOptions {
    /// Number of rows; `None` = `1 + max user id`.
    pub n_users: Option<usize>,
    /// Number of columns; `None` = `1 + max item id`.
    pub n_items: Option<usize>,
    pub duplicates: Duplicates,
    pub decay: Option<TimeDecay>,
}

/// A compressed-sparse-row `f32` matrix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl CsrMatrix {
    /// Builds the user×item matrix from interactions.
    ///
    /// Fails on a non-finite or negative weight, a decay factor outside `(0, 1]`, or an id
    /// outside the declared shape.
    pub fn from_interactions(interactions: &[Interaction], opts: &MatrixOptions) -> Result<Self> {
        if let Some(d) = opts.decay {
            if !(d.factor > 0.0 && d.factor <= 1.0) {
                return Err(invalid(format!("decay factor must be in (0, 1], got {}", d.factor)));
            }
        }
        let max_user = interactions.iter().map(|x| x.user as usize + 1).max().unwrap_or(0);
        let max_item = interactions.iter().map(|x| x.item as usize + 1).max().unwrap_or(0);
        let n_rows = opts.n_users.unwrap_or(max_user);
        let n_cols = opts.n_items.unwrap_or(max_item);
        if max_user > n_rows || max_item > n_cols {
            return Err(invalid(format!(
                "ids exceed the declared shape {n_rows}x{n_cols} (need {max_user}x{max_item})"
            )));
        }
        if let Some(bad) = interactions.iter().find(|x| !x.weight.is_finite() || x.weight < 0.0) {
            return Err(invalid(format!("weight must be finite and >= 0, got {}", bad.weight)));
        }
        // Stable counting sort by user keeps input order within a row.
        let mut counts = vec![0usize; n_rows + 1];
        for x in interactions {
            counts[x.user as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut order = vec![0usize; interactions.len()];
        let mut next = counts.clone();
        for (k, x) in interactions.iter().enumerate() {
            order[next[x.user as usize]] = k;
            next[x.user as usize] += 1;
        }
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n_rows)
            .into_par_iter()
            .map(|u| {
                let mut entries: Vec<(u32, f32, usize)> = order[counts[u]..counts[u + 1]]
                    .iter()
                    .enumerate()
                    .map(|(pos, &k)| {
                        let x = &interactions[k];
                        let w = opts.decay.map_or(x.weight, |d| x.weight * d.weight(x.ts));
                        (x.item, w, pos)
                    })
                    .collect();
                entries.sort_by_key(|&(item, _, pos)| (item, pos));
                let mut idx = Vec::with_capacity(entries.len());
                let mut val: Vec<f32> = Vec::with_capacity(entries.len());
                for (item, w, _) in entries {
                    if idx.last() == Some(&item) {
                        if opts.duplicates == Duplicates::Sum {
                            *val.last_mut().expect("pushed together") += w;
                        }
                    } else {
                        idx.push(item);
                        val.push(w);
                    }
                }
                (idx, val)
            })
            .collect();
        Ok(Self::from_rows(n_cols, rows))
    }

    /// Assembles a matrix from per-row sorted, deduplicated `(indices, values)`.
    pub(crate) fn from_rows(n_cols: usize, rows: Vec<(Vec<u32>, Vec<f32>)>) -> Self {
        let n_rows = rows.len();
        let nnz = rows.iter().map(|r| r.0.len()).sum();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::with_capacity(nnz);
        let mut values = Vec::with_capacity(nnz);
        indptr.push(0);
        for (i, v) in rows {
            indices.extend_from_slice(&i);
            values.extend_from_slice(&v);
            indptr.push(indices.len());
        }
        Self { n_rows, n_cols, indptr, indices, values }
    }

    /// Rebuilds from raw parts, validating them (used by artefact loading).
    pub fn from_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        let ok = indptr.len() == n_rows + 1
            && indptr.first() == Some(&0)
            && indptr.last() == Some(&indices.len())
            && indices.len() == values.len()
            && indptr.windows(2).all(|w| w[0] <= w[1])
            && indices.iter().all(|&c| (c as usize) < n_cols);
        if !ok {
            return Err(invalid("inconsistent CSR parts"));
        }
        Ok(Self { n_rows, n_cols, indptr, indices, values })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`'s column indices and values; empty for an out-of-range row.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        if r >= self.n_rows {
            return (&[], &[]);
        }
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Number of entries in row `r`.
    pub fn row_len(&self, r: usize) -> usize {
        self.row(r).0.len()
    }

    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The transpose (item×user), rows sorted.
    pub fn transpose(&self) -> Self {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            let (idx, val) = self.row(r);
            for (&c, &v) in idx.iter().zip(val) {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                values[*slot] = v;
                *slot += 1;
            }
        }
        Self { n_rows: self.n_cols, n_cols: self.n_rows, indptr: counts, indices, values }
    }

    /// Sum of each column's values.
    pub fn column_sums(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n_cols];
        for (&c, &v) in self.indices.iter().zip(&self.values) {
            out[c as usize] += v;
        }
        out
    }

    /// Number of entries per column.
    pub fn column_counts(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.n_cols];
        for &c in &self.indices {
            out[c as usize] += 1;
        }
        out
    }

    /// Row `r` as `(item, weight)` pairs, the shape models score from.
    pub fn row_pairs(&self, r: usize) -> Vec<(u32, f32)> {
        let (i, v) = self.row(r);
        i.iter().copied().zip(v.iter().copied()).collect()
    }
}

/// Each user's items in time order (oldest first; ties keep input order), for the
/// sequential models. Users without interactions get an empty list.
pub fn user_sequences(interactions: &[Interaction], n_users: usize) -> Vec<Vec<u32>> {
    let mut per_user: Vec<Vec<(i64, usize, u32)>> = vec![Vec::new(); n_users];
    for (k, x) in interactions.iter().enumerate() {
        if let Some(v) = per_user.get_mut(x.user as usize) {
            v.push((x.ts, k, x.item));
        }
    }
    per_user
        .into_par_iter()
        .map(|mut v| {
            v.sort_unstable();
            v.into_iter().map(|(_, _, item)| item).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(user: u32, item: u32, weight: f32, ts: i64) -> Interaction {
        Interaction { user, item, weight, ts }
    }

    #[test]
    fn builds_sorted_rows_and_sums_duplicates() {
        let data = [x(0, 2, 1.0, 0), x(0, 1, 2.0, 1), x(1, 0, 1.0, 2), x(0, 2, 3.0, 3)];
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        assert_eq!((m.n_rows(), m.n_cols(), m.nnz()), (2, 3, 3));
        assert_eq!(m.row(0), (&[1u32, 2][..], &[2.0f32, 4.0][..]));
        assert_eq!(m.row(1), (&[0u32][..], &[1.0f32][..]));
        assert_eq!(m.row(9).0.len(), 0);
    }

    #[test]
    fn first_only_keeps_first_in_input_order() {
        let data = [x(0, 2, 1.0, 5), x(0, 2, 3.0, 1)];
        let opts = MatrixOptions { duplicates: Duplicates::First, ..Default::default() };
        let m = CsrMatrix::from_interactions(&data, &opts).unwrap();
        assert_eq!(m.row(0).1, &[1.0]);
    }

    #[test]
    fn decay_halves_per_day_at_half() {
        let day = 86_400;
        let data = [x(0, 0, 1.0, 10 * day), x(0, 1, 1.0, 8 * day), x(0, 2, 1.0, 12 * day)];
        let decay = TimeDecay { factor: 0.5, reference_ts: 10 * day };
        let opts = MatrixOptions { decay: Some(decay), ..Default::default() };
        let m = CsrMatrix::from_interactions(&data, &opts).unwrap();
        assert_eq!(m.row(0).1, &[1.0, 0.25, 1.0]);
    }

    #[test]
    fn rejects_bad_input() {
        let nan = [x(0, 0, f32::NAN, 0)];
        assert!(CsrMatrix::from_interactions(&nan, &MatrixOptions::default()).is_err());
        let ok = [x(3, 0, 1.0, 0)];
        let small = MatrixOptions { n_users: Some(2), ..Default::default() };
        assert!(CsrMatrix::from_interactions(&ok, &small).is_err());
        let bad_decay =
            MatrixOptions { decay: Some(TimeDecay { factor: 1.5, reference_ts: 0 }), ..Default::default() };
        assert!(CsrMatrix::from_interactions(&ok, &bad_decay).is_err());
    }

    #[test]
    fn sequences_are_time_ordered_with_stable_ties() {
        let data = [x(0, 5, 1.0, 9), x(0, 6, 1.0, 3), x(0, 7, 1.0, 3), x(1, 1, 1.0, 0)];
        assert_eq!(user_sequences(&data, 3), vec![vec![6, 7, 5], vec![1], vec![]]);
    }

    #[test]
    fn transpose_round_trips() {
        let data = [x(0, 2, 1.0, 0), x(1, 1, 2.0, 1), x(2, 2, 5.0, 2), x(1, 0, 1.5, 0)];
        let m = CsrMatrix::from_interactions(&data, &MatrixOptions::default()).unwrap();
        let t = m.transpose();
        assert_eq!(t.row(2), (&[0u32, 2][..], &[1.0f32, 5.0][..]));
        assert_eq!(t.transpose(), m);
    }
}
