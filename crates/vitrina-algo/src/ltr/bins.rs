//! Feature quantisation: each feature's values are cut into at most `max_bins` bins at
//! quantile thresholds, so a tree split is a bin boundary and finding the best split is a
//! pass over a small histogram instead of a sort. Bin 0 holds the missing values (NaN).

/// A training set's features, binned column by column.
#[derive(Debug, Clone)]
pub(crate) struct Binned {
    /// Per feature, the ascending upper bounds of bins `1..=thresholds.len()`; a value above
    /// the last bound falls into bin `thresholds.len() + 1`.
    pub thresholds: Vec<Vec<f32>>,
    /// Per feature, each row's bin (column-major, `n_rows` per feature).
    pub bins: Vec<Vec<u8>>,
}

impl Binned {
    /// Bins `features` (row-major, `n_features` per row, NaN = missing).
    pub fn new(features: &[f32], n_features: usize, max_bins: usize) -> Self {
        let n_rows = features.len().checked_div(n_features).unwrap_or(0);
        let max_bins = max_bins.clamp(2, 255);
        let mut thresholds = Vec::with_capacity(n_features);
        let mut bins = Vec::with_capacity(n_features);
        for f in 0..n_features {
            let column: Vec<f32> = (0..n_rows).map(|r| features[r * n_features + f]).collect();
            let t = cut_points(&column, max_bins);
            bins.push(column.iter().map(|&v| bin_of(&t, v)).collect());
            thresholds.push(t);
        }
        Self { thresholds, bins }
    }

    /// Number of bins of feature `f`, the missing bin included.
    pub fn n_bins(&self, f: usize) -> usize {
        self.thresholds[f].len() + 2
    }
}

/// The bin of `v` given a feature's thresholds: 0 when missing, else `1 +` the number of
/// thresholds below `v` (so `v <= thresholds[b - 1]` exactly when its bin is `<= b`).
pub(crate) fn bin_of(thresholds: &[f32], v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (1 + thresholds.partition_point(|&t| t < v)) as u8
    }
}

/// Up to `max_bins - 1` distinct thresholds at the quantiles of the non-missing values; every
/// distinct value gets its own bin when there are few enough of them.
fn cut_points(column: &[f32], max_bins: usize) -> Vec<f32> {
    let mut values: Vec<f32> = column.iter().copied().filter(|v| !v.is_nan()).collect();
    values.sort_by(f32::total_cmp);
    let mut distinct = values.clone();
    distinct.dedup();
    // the largest value needs no upper bound of its own
    let wanted = max_bins - 1;
    if distinct.len() <= wanted + 1 {
        distinct.pop();
        return distinct;
    }
    let mut cuts: Vec<f32> =
        (1..=wanted).map(|i| values[(i * values.len() / (wanted + 1)).min(values.len() - 1)]).collect();
    cuts.dedup();
    if cuts.last() == values.last() {
        cuts.pop();
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_missing_gets_bin_zero() {
        let column = [3.0, 1.0, f32::NAN, 2.0, 3.0];
        let b = Binned::new(&column, 1, 16);
        assert_eq!(b.thresholds[0], vec![1.0, 2.0]);
        assert_eq!(b.bins[0], vec![3, 1, 0, 2, 3]);
        assert_eq!(b.n_bins(0), 4);
    }

    #[test]
    fn many_values_are_cut_at_quantiles_and_bins_respect_the_thresholds() {
        let column: Vec<f32> = (0..1000).map(|i| (i % 500) as f32).collect();
        let b = Binned::new(&column, 1, 8);
        assert!(b.thresholds[0].len() <= 7);
        for (&v, &bin) in column.iter().zip(&b.bins[0]) {
            let t = &b.thresholds[0];
            if usize::from(bin) <= t.len() {
                assert!(v <= t[usize::from(bin) - 1]);
            }
            if bin > 1 {
                assert!(v > t[usize::from(bin) - 2]);
            }
        }
        // roughly equal counts per bin
        let mut counts = vec![0; b.n_bins(0)];
        for &bin in &b.bins[0] {
            counts[usize::from(bin)] += 1;
        }
        assert!(counts[1..].iter().all(|&c| c > 60 && c < 200), "{counts:?}");
    }
}
