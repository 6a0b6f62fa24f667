//! Per-variant, per-source and per-position results of an experiment, with 95% intervals
//! and a comparison of every variant with the control.
//!
//! The unit of the rates is **one shown item** (an item impression): an item counts as
//! clicked / added to cart / purchased when at least one attributed outcome of that kind
//! points at it, so every rate is a proportion in `[0, 1]`; revenue sums every attributed
//! purchase. Lists served are counted too.
//!
//! - Proportions: 95% Wilson score interval.
//! - Revenue per mille: normal approximation on the per-item revenue mean (items without
//!   a purchase contribute 0) with its sample variance, times 1000; the lower end is
//!   clamped at 0.
//! - Variant − control: Newcombe's hybrid score interval (method 10, built from the two
//!   Wilson intervals) for proportions; for revenue the unpooled normal (Welch) interval.
//! - p-value: two-sided two-proportion z-test with the pooled standard error (for revenue,
//!   the Welch z on the means). `significant` is `p < 0.05`.
//! - Probability to beat control: Beta(1 + successes, 1 + failures) posteriors compared
//!   by 20,000 Monte Carlo draws with a fixed seed (so results are reproducible); for
//!   revenue `Φ(difference / se)`.
//!
//! Caveat: these tests treat item impressions as independent while visitors are the unit
//! of randomisation; strong per-visitor heterogeneity makes them somewhat anti-conservative.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::attribution::{Attribution, Impression, OutcomeKind};
use crate::model::{Experiment, Goal};

mod compare;
mod normal;

use compare::compare;
pub use compare::{compare_means, compare_proportions, probability_to_beat};
pub use normal::{erfc, normal_cdf, normal_quantile};

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;
/// Monte Carlo draws and seed of the probability to beat the control.
pub const BEAT_CONTROL_DRAWS: usize = 20_000;
pub const BEAT_CONTROL_SEED: u64 = 0x5EED_B7A5;

/// What [`Results::method`] says.
pub const METHOD: &str = "item-level rates; 95% Wilson score intervals; difference vs control: \
    Newcombe hybrid score interval (revenue: unpooled normal); p-value: two-sided pooled \
    two-proportion z-test (revenue: Welch z); probability to beat control: Beta(1+s, 1+f) \
    posteriors, 20000 Monte Carlo draws, fixed seed (revenue: normal approximation)";

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Item impressions (shown items).
    pub impressions: u64,
    pub clicks: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub revenue: f64,
    /// Sample variance of the revenue per item impression.
    pub revenue_variance: f64,
    pub ctr: Rate,
    pub add_to_cart_rate: Rate,
    pub conversion_rate: Rate,
    /// Revenue per 1,000 item impressions.
    pub revenue_per_mille: Rate,
}

impl Metrics {
    /// Items with at least one success of a proportion goal; `None` for revenue.
    pub fn goal_count(&self, goal: Goal) -> Option<u64> {
        match goal {
            Goal::Ctr => Some(self.clicks),
            Goal::AddToCartRate => Some(self.add_to_carts),
            Goal::ConversionRate => Some(self.purchases),
            Goal::RevenuePerMille => None,
        }
    }

    pub fn goal_rate(&self, goal: Goal) -> Rate {
        match goal {
            Goal::Ctr => self.ctr,
            Goal::AddToCartRate => self.add_to_cart_rate,
            Goal::ConversionRate => self.conversion_rate,
            Goal::RevenuePerMille => self.revenue_per_mille,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceResult {
    pub key: String,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub metric: Goal,
    /// Variant − control (revenue: per mille), with its 95% interval.
    pub difference: Rate,
    /// Difference / control value; 0 when the control's value is 0.
    pub relative_lift: f64,
    pub z_score: f64,
    pub p_value: f64,
    pub probability_to_beat_control: f64,
    pub significant: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantResult {
    pub name: String,
    /// Current share of traffic.
    pub traffic: f64,
    /// Lists served.
    pub lists: u64,
    pub metrics: Metrics,
    pub by_source: Vec<SliceResult>,
    pub by_position: Vec<SliceResult>,
    /// `None` for the control itself.
    pub vs_control: Option<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub experiment_id: String,
    pub goal: Goal,
    pub control: String,
    pub variants: Vec<VariantResult>,
    pub method: String,
}

/// Raw counts of one variant or slice.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    lists: u64,
    impressions: u64,
    clicks: u64,
    carts: u64,
    purchases: u64,
    revenue: f64,
    revenue_sq: f64,
}

impl Tally {
    fn add_outcome(&mut self, o: &ItemOutcome) {
        self.clicks += u64::from(o.clicked);
        self.carts += u64::from(o.carted);
        self.purchases += u64::from(o.purchased);
        self.revenue += o.revenue;
        self.revenue_sq += o.revenue * o.revenue;
    }

    fn metrics(&self) -> Metrics {
        let n = self.impressions;
        let (revenue_per_mille, revenue_variance) = revenue_interval(self.revenue, self.revenue_sq, n);
        Metrics {
            impressions: n,
            clicks: self.clicks,
            add_to_carts: self.carts,
            purchases: self.purchases,
            revenue: self.revenue,
            revenue_variance,
            ctr: wilson(self.clicks, n),
            add_to_cart_rate: wilson(self.carts, n),
            conversion_rate: wilson(self.purchases, n),
            revenue_per_mille,
        }
    }
}

/// What happened to one shown item (recommendation id, product).
struct ItemOutcome<'a> {
    variant: usize,
    source: &'a str,
    position: u32,
    clicked: bool,
    carted: bool,
    purchased: bool,
    revenue: f64,
}

/// Results of `experiment` from its impressions (others are ignored, as are impressions
/// of a variant the experiment does not have) and the attributions to them.
pub fn summarise(
    experiment: &Experiment,
    impressions: &[Impression],
    attributions: &[Attribution],
) -> Results {
    tally(experiment, impressions, attributions, true)
}

/// [`summarise`] without the comparisons with the control (`vsControl` is `None`): all a
/// bandit reallocation needs, without the Monte Carlo draws.
pub fn summarise_counts(
    experiment: &Experiment,
    impressions: &[Impression],
    attributions: &[Attribution],
) -> Results {
    tally(experiment, impressions, attributions, false)
}

fn tally(
    experiment: &Experiment,
    impressions: &[Impression],
    attributions: &[Attribution],
    compare_all: bool,
) -> Results {
    let k = experiment.variants.len();
    let mut variants = vec![Tally::default(); k];
    let mut sources: Vec<BTreeMap<&str, Tally>> = vec![BTreeMap::new(); k];
    let mut positions: Vec<BTreeMap<u32, Tally>> = vec![BTreeMap::new(); k];
    let mut lists: HashMap<&str, usize> = HashMap::new();
    let ours = |e: &Option<String>| e.as_deref() == Some(experiment.id.as_str());
    for imp in impressions.iter().filter(|i| ours(&i.experiment)) {
        let Some(v) = imp.variant.as_deref().and_then(|n| experiment.variant_index(n)) else { continue };
        if lists.insert(&imp.recommendation_id, v).is_some() {
            continue; // the same list logged twice
        }
        variants[v].lists += 1;
        variants[v].impressions += imp.items.len() as u64;
        for item in &imp.items {
            sources[v].entry(&item.source).or_default().impressions += 1;
            positions[v].entry(item.position).or_default().impressions += 1;
        }
    }

    let mut items: HashMap<(&str, &str), ItemOutcome> = HashMap::new();
    for a in attributions.iter().filter(|a| ours(&a.experiment)) {
        let Some(&v) = lists.get(a.recommendation_id.as_str()) else { continue };
        let o = items.entry((&a.recommendation_id, &a.product_id)).or_insert(ItemOutcome {
            variant: v,
            source: &a.source,
            position: a.position,
            clicked: false,
            carted: false,
            purchased: false,
            revenue: 0.0,
        });
        match a.kind {
            OutcomeKind::Click => o.clicked = true,
            OutcomeKind::AddToCart => o.carted = true,
            OutcomeKind::Purchase => {
                o.purchased = true;
                o.revenue += if a.value.is_finite() { a.value.max(0.0) } else { 0.0 };
            }
        }
    }
    for o in items.values() {
        variants[o.variant].add_outcome(o);
        sources[o.variant].entry(o.source).or_default().add_outcome(o);
        positions[o.variant].entry(o.position).or_default().add_outcome(o);
    }

    let control = experiment.control_index();
    let goal = experiment.goal;
    let results = (0..k)
        .map(|v| VariantResult {
            name: experiment.variants[v].name.clone(),
            traffic: experiment.traffic.get(v).copied().unwrap_or(0.0),
            lists: variants[v].lists,
            metrics: variants[v].metrics(),
            by_source: sources[v]
                .iter()
                .map(|(key, t)| SliceResult { key: (*key).to_owned(), metrics: t.metrics() })
                .collect(),
            by_position: positions[v]
                .iter()
                .map(|(key, t)| SliceResult { key: key.to_string(), metrics: t.metrics() })
                .collect(),
            vs_control: (compare_all && v != control)
                .then(|| compare(goal, &variants[v], &variants[control])),
        })
        .collect();
    Results {
        experiment_id: experiment.id.clone(),
        goal,
        control: experiment.control.clone(),
        variants: results,
        method: METHOD.to_owned(),
    }
}

/// 95% Wilson score interval of `successes` out of `n` (all zeros for `n == 0`).
pub fn wilson(successes: u64, n: u64) -> Rate {
    if n == 0 {
        return Rate::default();
    }
    let (n, p) = (n as f64, successes.min(n) as f64 / n as f64);
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // The bounds are exactly 0 and 1 at the extremes; say so despite rounding.
    let low = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let high = if p == 1.0 { 1.0 } else { (centre + half).min(1.0) };
    Rate { value: p, low, high }
}

fn sample_variance(sum: f64, sum_sq: f64, n: u64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let mean = sum / n as f64;
    ((sum_sq - n as f64 * mean * mean) / (n - 1) as f64).max(0.0)
}

/// Revenue per mille with its 95% normal interval, and the per-item sample variance.
fn revenue_interval(sum: f64, sum_sq: f64, n: u64) -> (Rate, f64) {
    if n == 0 {
        return (Rate::default(), 0.0);
    }
    let mean = sum / n as f64;
    let var = sample_variance(sum, sum_sq, n);
    let half = Z95 * (var / n as f64).sqrt();
    let rate =
        Rate { value: mean * 1000.0, low: ((mean - half) * 1000.0).max(0.0), high: (mean + half) * 1000.0 };
    (rate, var)
}

#[cfg(test)]
mod tests;
