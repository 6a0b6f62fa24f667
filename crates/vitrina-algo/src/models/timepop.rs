//! Popularity at the user's time: item popularity within time bins, read at the bins where
//! the user was active (kernel-smoothed), so a user gets what was popular when they were
//! around. Without timestamps in the history it falls back to the latest bins ("trending").
//!
//! Only bins that end before the user's cut (their latest event) are read: a bin that holds
//! the cut, or comes after it, holds events from the user's future, and reading it leaks
//! what the user is about to do into their scores.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::matrix::{CsrMatrix, Interaction, MatrixOptions};

/// Time-aware popularity hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimePopularityParams {
    /// Width of a time bin in days.
    pub bin_days: f32,
    /// Kernel weight multiplier per bin of distance (0 = own bin only).
    pub spread: f32,
    /// Bins on each side the kernel reaches.
    pub reach: usize,
}

impl Default for TimePopularityParams {
    fn default() -> Self {
        Self { bin_days: 7.0, spread: 0.5, reach: 2 }
    }
}

/// A trained time-aware popularity model.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePopularity {
    pub(crate) params: TimePopularityParams,
    pub(crate) origin: i64,
    /// bins × items, each row the share of that bin's interactions per item.
    pub(crate) shares: CsrMatrix,
}

impl TimePopularity {
    /// Trains from timestamped interactions over `n_items` items.
    pub fn train(
        interactions: &[Interaction],
        n_items: usize,
        params: &TimePopularityParams,
    ) -> Result<Self> {
        if !(params.bin_days > 0.0
            && params.bin_days.is_finite()
            && params.spread.is_finite()
            && params.spread >= 0.0)
        {
            return Err(invalid("time popularity bin_days must be > 0 and spread >= 0"));
        }
        let origin = interactions.iter().map(|x| x.ts).min().unwrap_or(0);
        let width = (f64::from(params.bin_days) * 86_400.0).max(1.0);
        let binned: Vec<Interaction> = interactions
            .iter()
            .map(|x| Interaction {
                user: ((x.ts - origin) as f64 / width) as u32,
                item: x.item,
                weight: 1.0,
                ts: 0,
            })
            .collect();
        let opts = MatrixOptions { n_items: Some(n_items), ..Default::default() };
        let counts = CsrMatrix::from_interactions(&binned, &opts)?;
        let rows = (0..counts.n_rows())
            .map(|b| {
                let (idx, val) = counts.row(b);
                let total: f32 = val.iter().sum();
                (idx.to_vec(), val.iter().map(|v| v / total.max(1.0)).collect())
            })
            .collect();
        Ok(Self { params: params.clone(), origin, shares: CsrMatrix::from_rows(n_items, rows) })
    }

    pub fn params(&self) -> &TimePopularityParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.shares.n_cols()
    }

    /// The bin `ts` falls in, counted from the first training bin; past the last training
    /// bin it goes on counting, so where a visitor stands does not depend on how far the
    /// training data reaches.
    fn bin(&self, ts: i64) -> usize {
        let width = (f64::from(self.params.bin_days) * 86_400.0).max(1.0);
        ((ts - self.origin) as f64 / width).max(0.0) as usize
    }

    /// Scores from the bins of `times` (the history's timestamps), reading only bins that end
    /// before the latest of them; no timestamps = the latest bin.
    pub(crate) fn score_at(&self, times: &[i64], out: &mut [f32]) {
        let n_bins = self.shares.n_rows();
        if n_bins == 0 {
            return;
        }
        // bins `< end` are readable
        let end = match times.iter().max() {
            None => n_bins,
            Some(&cut) => self.bin(cut).min(n_bins),
        };
        if end == 0 {
            return;
        }
        let mut h = vec![0f32; n_bins];
        let centres: Vec<usize> =
            if times.is_empty() { vec![n_bins - 1] } else { times.iter().map(|&t| self.bin(t)).collect() };
        let per = 1.0 / centres.len() as f32;
        for c in centres {
            let lo = c.saturating_sub(self.params.reach);
            let hi = c.saturating_add(self.params.reach).min(end - 1);
            if lo > hi {
                continue;
            }
            for (b, hb) in h.iter_mut().enumerate().take(hi + 1).skip(lo) {
                *hb += per * self.params.spread.powi(b.abs_diff(c) as i32);
            }
        }
        for (b, &w) in h.iter().enumerate() {
            if w > 0.0 {
                let (idx, val) = self.shares.row(b);
                for (&j, &v) in idx.iter().zip(val) {
                    out[j as usize] += w * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;

    #[test]
    fn recommends_what_was_popular_when_the_user_was_active() {
        let day = 86_400;
        let x = |user, item, ts| Interaction { user, item, weight: 1.0, ts };
        // item 0 is popular in week 0, item 1 in week 10
        let data = [x(0, 0, 0), x(1, 0, day), x(2, 1, 70 * day), x(3, 1, 71 * day), x(4, 1, 72 * day)];
        let params = TimePopularityParams { bin_days: 7.0, spread: 0.5, reach: 1 };
        let m = Model::TimePopularity(TimePopularity::train(&data, 3, &params).unwrap());
        let mut out = Vec::new();
        // a visitor in week 1 reads week 0; one in week 11 reads week 10
        m.score_into_at(&[(2, 1.0)], &[9 * day], &mut out);
        assert!(out[0] > out[1]);
        m.score_into_at(&[(2, 1.0)], &[77 * day], &mut out);
        assert!(out[1] > out[0]);
        // no timestamps: the latest bin (trending now)
        assert_eq!(m.recommend(&[], 1)[0].0, 1);
        let bad = TimePopularityParams { bin_days: 0.0, ..params.clone() };
        assert!(TimePopularity::train(&data, 3, &bad).is_err());
    }

    #[test]
    fn no_bin_from_the_visitors_future_is_read() {
        let day = 86_400;
        let x = |user, item, ts| Interaction { user, item, weight: 1.0, ts };
        let params = TimePopularityParams { bin_days: 7.0, spread: 0.8, reach: 3 };
        let past = [x(0, 0, 0), x(1, 1, 8 * day), x(2, 2, 9 * day)];
        let scores = |later: &[Interaction]| {
            let data: Vec<Interaction> = past.iter().chain(later).cloned().collect();
            let m = Model::TimePopularity(TimePopularity::train(&data, 4, &params).unwrap());
            let mut out = Vec::new();
            // the visitor's cut is day 15 (week 2): weeks 0 and 1 are readable
            m.score_into_at(&[(1, 1.0)], &[8 * day, 15 * day], &mut out);
            out
        };
        let base = scores(&[x(3, 3, 16 * day)]);
        assert!(base[0] > 0.0 && base[1] > 0.0, "{base:?}");
        // what happens in the cut's own week or later, whatever and whenever, changes nothing
        for later in [
            vec![],
            vec![x(3, 3, 30 * day)],
            vec![x(3, 0, 14 * day), x(4, 3, 15 * day)],
            vec![x(5, 2, 60 * day)],
        ] {
            assert_eq!(scores(&later), base, "{later:?}");
        }
        // a visitor whose only events are in the first bin reads nothing
        let m = Model::TimePopularity(TimePopularity::train(&past, 4, &params).unwrap());
        let mut out = Vec::new();
        m.score_into_at(&[(0, 1.0)], &[day], &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
