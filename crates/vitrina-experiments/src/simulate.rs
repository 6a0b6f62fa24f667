//! A simulated shop with a known, hidden click model, to test experiments end to end.
//!
//! The probability that a visitor `v` clicks product `p` shown at position `k` (1-based)
//! by candidate source `s` under policy `π` is
//!
//! ```text
//! base · bias(k) · engagement(v) · affinity(v, category(p)) · quality(p) · source(s) · lift(π)
//! ```
//!
//! with `bias(k) = 1 / log2(k + 1)`, engagement uniform in `[0.7, 1.3]`, affinity 2 for
//! the visitor's favourite category and 1 otherwise, quality uniform in `[0.25, 1.75]`,
//! [`SOURCES`] multipliers, and `base` calibrated so that the [`SimPolicy::Random`] policy
//! has exactly the configured CTR. A click leads to an add-to-cart with probability 0.25,
//! and an add-to-cart to a purchase (worth the product's price) with probability 0.4.
//!
//! Because lists are uniform samples of a policy's pool, visitors are drawn uniformly and
//! sources independently, [`Shop::true_ctr`] is exact: the expected item-level CTR.

pub mod feature_shop;

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::attribution::{attribute, Impression, Outcome, OutcomeKind, ShownItem};
use crate::bandit::reallocate;
use crate::model::{Experiment, Mode};
use crate::stats::{normal_quantile, summarise_counts};

/// Candidate sources: name, share of the slots, click multiplier.
pub const SOURCES: [(&str, f64, f64); 3] =
    [("collaborative_filtering", 0.4, 1.2), ("content_based", 0.3, 1.0), ("trending", 0.3, 0.8)];
pub const CART_GIVEN_CLICK: f64 = 0.25;
pub const PURCHASE_GIVEN_CART: f64 = 0.4;
/// Share of outcomes sent without their recommendation id.
pub const WITHOUT_RECOMMENDATION_ID: f64 = 0.3;
const FAVOURITE_AFFINITY: f64 = 2.0;
/// Simulated seconds between two served lists.
pub const SECONDS_PER_LIST: i64 = 2;
/// Clicks come 2 s to 2 min after the list was served (add-to-carts and purchases later).
pub const MAX_CLICK_DELAY_SECONDS: i64 = 120;

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub visitors: usize,
    pub products: usize,
    pub categories: usize,
    pub list_len: usize,
    pub seed: u64,
    /// Item-level CTR of the [`SimPolicy::Random`] policy.
    pub random_ctr: f64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig { visitors: 20_000, products: 500, categories: 10, list_len: 10, seed: 1, random_ctr: 0.05 }
    }
}

/// How a simulated recommender variant fills a list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimPolicy {
    /// Distinct products uniformly at random.
    Random,
    /// Distinct products uniformly among the `pool` best by quality.
    TopQuality { pool: usize },
    /// Like `Random`, with every click probability multiplied by `factor`: a stand-in
    /// for "a better model" when only the true margin matters.
    Lift { factor: f64 },
}

/// The hidden truth of the simulated shop.
#[derive(Debug, Clone)]
pub struct Shop {
    pub config: SimConfig,
    engagement: Vec<f64>,
    favourite: Vec<usize>,
    category: Vec<usize>,
    quality: Vec<f64>,
    price: Vec<f64>,
    by_quality: Vec<usize>,
    base: f64,
}

/// What the simulator knows an outcome came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub recommendation_id: String,
    pub variant: String,
    pub source: String,
    pub position: u32,
}

#[derive(Debug, Clone)]
pub struct SimRun {
    pub impressions: Vec<Impression>,
    pub outcomes: Vec<Outcome>,
    /// Ground truth of `outcomes`, index by index.
    pub truth: Vec<Truth>,
    /// Lists served per variant, overall and over the last 20% of the run.
    pub served: Vec<u64>,
    pub served_last_20: Vec<u64>,
    /// The same as shares.
    pub share: Vec<f64>,
    pub share_last_20: Vec<f64>,
    /// Reallocations that changed the traffic.
    pub reallocations: usize,
}

impl Shop {
    pub fn new(config: SimConfig) -> Shop {
        assert!(config.visitors > 0 && config.categories > 0, "a shop needs visitors and categories");
        assert!(config.list_len > 0 && config.list_len <= config.products, "1 <= list_len <= products");
        let mut rng = StdRng::seed_from_u64(config.seed);
        let engagement = (0..config.visitors).map(|_| rng.random_range(0.7..=1.3)).collect();
        let favourite = (0..config.visitors).map(|_| rng.random_range(0..config.categories)).collect();
        let category = (0..config.products).map(|p| p % config.categories).collect();
        let quality: Vec<f64> = (0..config.products).map(|_| rng.random_range(0.25..=1.75)).collect();
        let price =
            (0..config.products).map(|_| (rng.random_range(5.0..200.0f64) * 100.0).round() / 100.0).collect();
        let mut by_quality: Vec<usize> = (0..config.products).collect();
        by_quality.sort_by(|&a, &b| quality[b].total_cmp(&quality[a]));
        let mut shop =
            Shop { config, engagement, favourite, category, quality, price, by_quality, base: 1.0 };
        shop.base = shop.config.random_ctr / shop.true_ctr(&SimPolicy::Random);
        assert!(shop.max_click_probability(&SimPolicy::Random) < 1.0, "random_ctr too high to stay exact");
        shop
    }

    /// Expected item-level CTR of a policy (exact, see the module docs).
    pub fn true_ctr(&self, policy: &SimPolicy) -> f64 {
        let v = self.config.visitors as f64;
        // A(c): mean over visitors of engagement × affinity to category c.
        let all: f64 = self.engagement.iter().sum();
        let mut affinity = vec![0.0; self.config.categories];
        for (c, a) in affinity.iter_mut().enumerate() {
            let fav: f64 = (0..self.config.visitors)
                .filter(|&i| self.favourite[i] == c)
                .map(|i| self.engagement[i])
                .sum();
            *a = (FAVOURITE_AFFINITY * fav + (all - fav)) / v;
        }
        let pool = self.pool(policy);
        let items: f64 = pool.iter().map(|&p| self.quality[p] * affinity[self.category[p]]).sum::<f64>()
            / pool.len() as f64;
        let bias: f64 =
            (1..=self.config.list_len).map(position_bias).sum::<f64>() / self.config.list_len as f64;
        let source: f64 = SOURCES.iter().map(|(_, share, mult)| share * mult).sum();
        self.base * bias * items * source * lift(policy)
    }

    /// The largest click probability the policy can produce (must stay below 1 for
    /// [`Shop::true_ctr`] to be exact; larger values are clamped to 1 when simulating).
    pub fn max_click_probability(&self, policy: &SimPolicy) -> f64 {
        let source = SOURCES.iter().map(|s| s.2).fold(0.0, f64::max);
        self.base * 1.3 * FAVOURITE_AFFINITY * 1.75 * source * lift(policy)
    }

    fn pool(&self, policy: &SimPolicy) -> &[usize] {
        match *policy {
            SimPolicy::TopQuality { pool } => {
                &self.by_quality[..pool.clamp(self.config.list_len, self.config.products)]
            }
            SimPolicy::Random | SimPolicy::Lift { .. } => &self.by_quality,
        }
    }

    fn click_probability(
        &self,
        visitor: usize,
        product: usize,
        position: u32,
        source: usize,
        policy: &SimPolicy,
    ) -> f64 {
        let affinity =
            if self.favourite[visitor] == self.category[product] { FAVOURITE_AFFINITY } else { 1.0 };
        let p = self.base
            * position_bias(position as usize)
            * self.engagement[visitor]
            * affinity
            * self.quality[product]
            * SOURCES[source].2
            * lift(policy);
        p.min(1.0)
    }
}

fn position_bias(position: usize) -> f64 {
    1.0 / ((position + 1) as f64).log2()
}

fn lift(policy: &SimPolicy) -> f64 {
    match *policy {
        SimPolicy::Lift { factor } => factor,
        _ => 1.0,
    }
}

fn pick_source(rng: &mut StdRng) -> usize {
    let mut u: f64 = rng.random();
    for (i, (_, share, _)) in SOURCES.iter().enumerate() {
        if u < *share {
            return i;
        }
        u -= share;
    }
    SOURCES.len() - 1
}

/// The simulation's clock origin.
pub fn sim_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01 is representable")
}

/// Serves `lists` lists of `experiment` (variant `i` behaves as `policies[i]`), each to a
/// uniformly drawn visitor assigned by the experiment's current traffic, with the hidden
/// model's clicks, add-to-carts and purchases. In bandit mode the experiment is
/// reallocated every `realloc_every` lists from the outcomes that have happened by then,
/// judging only lists older than the longest click delay (a server should do the same:
/// lists too young to have been clicked bias the bandit against the variant that just
/// gained traffic).
pub fn run(
    shop: &Shop,
    experiment: &mut Experiment,
    policies: &[SimPolicy],
    lists: usize,
    realloc_every: usize,
    seed: u64,
) -> SimRun {
    assert_eq!(policies.len(), experiment.variants.len(), "one policy per variant");
    let mut rng = StdRng::seed_from_u64(seed);
    let k = policies.len();
    let mut run = SimRun {
        impressions: Vec::with_capacity(lists),
        outcomes: Vec::new(),
        truth: Vec::new(),
        served: vec![0; k],
        served_last_20: vec![0; k],
        share: vec![0.0; k],
        share_last_20: vec![0.0; k],
        reallocations: 0,
    };
    // Outcomes that have not happened yet at the current simulated time.
    let mut future: Vec<(Outcome, Truth)> = Vec::new();
    let last_20 = lists - lists / 5;
    for i in 0..lists {
        let now = sim_start() + Duration::seconds(i as i64 * SECONDS_PER_LIST);
        if experiment.mode == Mode::Bandit && realloc_every > 0 && i > 0 && i % realloc_every == 0 {
            let (due, later): (Vec<_>, Vec<_>) = future.drain(..).partition(|(o, _)| o.at <= now);
            future = later;
            for (o, t) in due {
                run.outcomes.push(o);
                run.truth.push(t);
            }
            // Judge only lists whose clicks have all had time to arrive: counting the newest
            // lists as unclicked would make the variant that just gained traffic look worse.
            let mature = now - Duration::seconds(MAX_CLICK_DELAY_SECONDS);
            let judged = run.impressions.partition_point(|imp| imp.at <= mature);
            let attributions = attribute(&run.impressions, &run.outcomes, experiment.attribution_window());
            let results = summarise_counts(experiment, &run.impressions[..judged], &attributions);
            if reallocate(experiment, &results, now, seed ^ i as u64).is_some() {
                run.reallocations += 1;
            }
        }
        let visitor = rng.random_range(0..shop.config.visitors);
        let visitor_id = format!("visitor-{visitor}");
        let variant = crate::assign::assign(&experiment.traffic, &experiment.salt, &visitor_id);
        run.served[variant] += 1;
        if i >= last_20 {
            run.served_last_20[variant] += 1;
        }
        let policy = &policies[variant];
        let pool = shop.pool(policy);
        let rec_id = format!("{}-rec-{i}", experiment.id);
        let variant_name = experiment.variants[variant].name.clone();
        let mut items = Vec::with_capacity(shop.config.list_len);
        for (slot, pick) in
            rand::seq::index::sample(&mut rng, pool.len(), shop.config.list_len).into_iter().enumerate()
        {
            let (product, position, source) = (pool[pick], slot as u32 + 1, pick_source(&mut rng));
            let item = ShownItem {
                product_id: format!("product-{product}"),
                source: SOURCES[source].0.to_owned(),
                position,
            };
            let mut at = now;
            let steps = [
                (
                    OutcomeKind::Click,
                    shop.click_probability(visitor, product, position, source, policy),
                    2..MAX_CLICK_DELAY_SECONDS + 1,
                ),
                (OutcomeKind::AddToCart, CART_GIVEN_CLICK, 10..1200),
                (OutcomeKind::Purchase, PURCHASE_GIVEN_CART, 60..7200),
            ];
            for (kind, probability, delay) in steps {
                if !rng.random_bool(probability) {
                    break;
                }
                at += Duration::seconds(rng.random_range(delay));
                let outcome = Outcome {
                    event_id: format!("{}-ev-{i}-{slot}-{kind:?}", experiment.id),
                    visitor: visitor_id.clone(),
                    kind,
                    product_id: item.product_id.clone(),
                    recommendation_id: (!rng.random_bool(WITHOUT_RECOMMENDATION_ID)).then(|| rec_id.clone()),
                    value: if kind == OutcomeKind::Purchase { shop.price[product] } else { 0.0 },
                    at,
                };
                let truth = Truth {
                    recommendation_id: rec_id.clone(),
                    variant: variant_name.clone(),
                    source: item.source.clone(),
                    position,
                };
                future.push((outcome, truth));
            }
            items.push(item);
        }
        run.impressions.push(Impression {
            recommendation_id: rec_id,
            visitor: visitor_id,
            experiment: Some(experiment.id.clone()),
            variant: Some(variant_name),
            at: now,
            items,
        });
    }
    for (o, t) in future {
        run.outcomes.push(o);
        run.truth.push(t);
    }
    let share = |counts: &[u64]| {
        let total = counts.iter().sum::<u64>().max(1) as f64;
        counts.iter().map(|&c| c as f64 / total).collect::<Vec<_>>()
    };
    (run.share, run.share_last_20) = (share(&run.served), share(&run.served_last_20));
    run
}

/// Item impressions per arm for a two-sided two-proportion z-test at level `alpha` to
/// detect `p_control` vs `p_variant` with probability `power` (the standard formula with
/// the pooled SE under H0 and unpooled under H1). `u64::MAX` for equal or invalid rates.
pub fn required_impressions(p_control: f64, p_variant: f64, alpha: f64, power: f64) -> u64 {
    let valid = |p: f64| p > 0.0 && p < 1.0;
    if !(valid(p_control) && valid(p_variant) && valid(alpha) && valid(power)) || p_control == p_variant {
        return u64::MAX;
    }
    let (za, zb) = (normal_quantile(1.0 - alpha / 2.0), normal_quantile(power));
    let pbar = (p_control + p_variant) / 2.0;
    let spread = (p_control * (1.0 - p_control) + p_variant * (1.0 - p_variant)).sqrt();
    let n = (za * (2.0 * pbar * (1.0 - pbar)).sqrt() + zb * spread).powi(2) / (p_control - p_variant).powi(2);
    n.ceil() as u64
}

#[cfg(test)]
mod tests;
