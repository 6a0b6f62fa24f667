//! Automatic correction of candidate-source weights from their measured performance.
//!
//! For each source with enough impressions, its weight is multiplied by the ratio of its
//! goal rate to the overall rate, clamped to `[1 − step, 1 + step]`. The source's rate is
//! smoothed towards the overall rate by a Beta (for revenue: a normal-mean) prior worth
//! `max(min_impressions, 1)` impressions, so a source with little data moves less.
//! Weights stay within `[0, MAX_WEIGHT]`. Every adjustment is a [`WeightChange`] holding
//! the weights before and after, so it can be logged and reverted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Goal;
use crate::stats::SliceResult;

/// Largest weight an adjustment produces.
pub const MAX_WEIGHT: f64 = 100.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightChange {
    pub at: DateTime<Utc>,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    pub reason: String,
}

/// [`adjust_weights_at`] stamped with the current time.
pub fn adjust_weights(
    current: &BTreeMap<String, f64>,
    by_source: &[SliceResult],
    goal: Goal,
    min_impressions: u64,
    step: f64,
) -> Option<WeightChange> {
    adjust_weights_at(current, by_source, goal, min_impressions, step, Utc::now())
}

/// New weights for the sources in `current` from their results in `by_source` (slices
/// with the same key are summed, so the slices of several variants may be passed
/// together). Sources without results or with fewer than `min_impressions` impressions
/// keep their weight; sources in `by_source` but not in `current` only count towards the
/// overall rate. `None` when nothing changes, there is no signal (overall rate 0), or
/// `step` is not in `[0, 1)`.
pub fn adjust_weights_at(
    current: &BTreeMap<String, f64>,
    by_source: &[SliceResult],
    goal: Goal,
    min_impressions: u64,
    step: f64,
    now: DateTime<Utc>,
) -> Option<WeightChange> {
    if !(0.0..1.0).contains(&step) {
        return None;
    }
    let mut slices: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for s in by_source {
        let value = match s.metrics.goal_count(goal) {
            Some(count) => count.min(s.metrics.impressions) as f64,
            None if s.metrics.revenue.is_finite() => s.metrics.revenue.max(0.0),
            None => 0.0,
        };
        let e = slices.entry(s.key.as_str()).or_default();
        (e.0, e.1) = (e.0 + value, e.1 + s.metrics.impressions);
    }
    let (total, n): (f64, u64) = slices.values().fold((0.0, 0), |(v, n), s| (v + s.0, n + s.1));
    if n == 0 || !total.is_finite() || total <= 0.0 {
        return None;
    }
    let overall = total / n as f64;
    let prior = min_impressions.max(1) as f64;

    let mut after = current.clone();
    let mut notes = Vec::new();
    for (source, weight) in after.iter_mut() {
        let Some(&(value, n)) = slices.get(source.as_str()) else { continue };
        if n < min_impressions || !weight.is_finite() {
            continue;
        }
        let smoothed = (value + overall * prior) / (n as f64 + prior);
        let factor = (smoothed / overall).clamp(1.0 - step, 1.0 + step);
        let new = (*weight * factor).clamp(0.0, MAX_WEIGHT);
        if (new - *weight).abs() > 1e-12 {
            notes.push(format!("{source} {:.4} ×{factor:.3}", value / n as f64));
            *weight = new;
        }
    }
    if notes.is_empty() {
        return None;
    }
    let reason = format!("{goal} by source (overall {overall:.4}): {}", notes.join(", "));
    Some(WeightChange { at: now, before: current.clone(), after, reason })
}

/// The weights before `change`.
pub fn revert(change: &WeightChange) -> BTreeMap<String, f64> {
    change.before.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metrics;

    fn slice(key: &str, impressions: u64, clicks: u64) -> SliceResult {
        SliceResult { key: key.into(), metrics: Metrics { impressions, clicks, ..Metrics::default() } }
    }

    fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn better_sources_gain_worse_lose_within_the_step() {
        let current = weights(&[("cf", 1.0), ("trending", 1.0), ("new", 2.0), ("unseen", 0.5)]);
        let slices = [slice("cf", 10_000, 800), slice("trending", 10_000, 400), slice("new", 50, 10)];
        let change = adjust_weights(&current, &slices, Goal::Ctr, 1000, 0.2).unwrap();
        assert_eq!(change.after["cf"], 1.2, "bounded by the step");
        assert!(change.after["trending"] < 1.0 && change.after["trending"] >= 0.8);
        assert_eq!(change.after["new"], 2.0, "below min_impressions");
        assert_eq!(change.after["unseen"], 0.5, "no results");
        assert_eq!(change.before, current);
        assert!(change.reason.starts_with("ctr by source"), "{}", change.reason);
        assert_eq!(revert(&change), current);
    }

    #[test]
    fn small_samples_move_less() {
        let current = weights(&[("a", 1.0), ("b", 1.0)]);
        // "a" clicks 5.5% against 5% for "b", measured on 100,000 or on 1,000 impressions.
        let b = slice("b", 1_000_000, 50_000);
        let big = adjust_weights(&current, &[slice("a", 100_000, 5500), b.clone()], Goal::Ctr, 1000, 0.5);
        let small = adjust_weights(&current, &[slice("a", 1000, 55), b], Goal::Ctr, 1000, 0.5);
        let (big, small) = (big.unwrap().after["a"], small.unwrap().after["a"]);
        assert!(big > small && small > 1.0, "{big} {small}");
    }

    #[test]
    fn no_change_gives_none_and_weights_stay_bounded() {
        let current = weights(&[("a", 1.0), ("b", 1.0)]);
        let equal = [slice("a", 5000, 250), slice("b", 5000, 250)];
        assert_eq!(adjust_weights(&current, &equal, Goal::Ctr, 1000, 0.2), None);
        assert_eq!(adjust_weights(&current, &[slice("a", 5000, 0)], Goal::Ctr, 1000, 0.2), None, "no signal");
        assert_eq!(adjust_weights(&current, &[slice("a", 5000, 100)], Goal::Ctr, 1000, 1.5), None);
        let high = weights(&[("a", 99.0), ("b", 1.0)]);
        let change =
            adjust_weights(&high, &[slice("a", 5000, 500), slice("b", 5000, 10)], Goal::Ctr, 100, 0.5);
        assert_eq!(change.unwrap().after["a"], MAX_WEIGHT);
    }

    #[test]
    fn revenue_goal_and_summed_slices() {
        let current = weights(&[("a", 1.0), ("b", 1.0)]);
        let rev = |key: &str, n, revenue| SliceResult {
            key: key.into(),
            metrics: Metrics { impressions: n, revenue, ..Metrics::default() },
        };
        // "a" appears for two variants; together it earns 3 per item against 1 for "b".
        let slices = [rev("a", 5000, 10_000.0), rev("a", 5000, 20_000.0), rev("b", 10_000, 10_000.0)];
        let change = adjust_weights(&current, &slices, Goal::RevenuePerMille, 1000, 0.1).unwrap();
        assert_eq!((change.after["a"], change.after["b"]), (1.1, 0.9));
    }
}
