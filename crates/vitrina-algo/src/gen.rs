//! Seeded synthetic shop events for demos, load tests and training benchmarks.
//!
//! A pure function of [`GenParams`]: items get a power-law (Zipf) popularity and a category;
//! users get a log-normal activity level and one to three favourite categories; users come
//! back in sessions, and within a session each viewed product may go down a funnel
//! view → like / add to cart → remove from cart or purchase. Same seed, same events.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::matrix::Interaction;

/// What a shop's visitor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    View,
    Click,
    Like,
    AddToCart,
    RemoveFromCart,
    Purchase,
}

impl ActivityType {
    /// The API's name (`view`, `add_to_cart`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::Like => "like",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Purchase => "purchase",
        }
    }

    /// A sensible default training weight (removing from the cart counts nothing).
    pub fn default_weight(self) -> f32 {
        match self {
            Self::View => 1.0,
            Self::Click => 1.5,
            Self::Like => 2.0,
            Self::AddToCart => 2.5,
            Self::RemoveFromCart => 0.0,
            Self::Purchase => 5.0,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GenParams {
    pub users: usize,
    pub items: usize,
    /// Exact number of events to return.
    pub events: usize,
    pub seed: u64,
    pub categories: usize,
    /// Zipf exponent of item popularity.
    pub popularity_exponent: f64,
    /// σ of the users' log-normal activity.
    pub activity_sigma: f64,
    /// First possible timestamp, unix seconds.
    pub start_ts: i64,
    /// Length of the period events fall in.
    pub days: u32,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            users: 1_000,
            items: 500,
            events: 20_000,
            seed: 42,
            categories: 20,
            popularity_exponent: 1.0,
            activity_sigma: 1.2,
            start_ts: 1_704_067_200, // 2024-01-01T00:00:00Z
            days: 90,
        }
    }
}

/// A generated product.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenItem {
    pub id: u32,
    pub category: u32,
    /// Price in cents.
    pub price_cents: u32,
}

/// A generated event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenEvent {
    pub user: u32,
    pub item: u32,
    pub activity: ActivityType,
    pub ts: i64,
    /// Per-run session number.
    pub session: u32,
}

/// The catalogue and the events, sorted by time (ties keep generation order).
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub items: Vec<GenItem>,
    pub events: Vec<GenEvent>,
}

impl Generated {
    /// The events as weighted interactions (weights from `weight`, zero-weight ones dropped).
    pub fn interactions(&self, weight: impl Fn(ActivityType) -> f32) -> Vec<Interaction> {
        self.events
            .iter()
            .map(|e| Interaction { user: e.user, item: e.item, weight: weight(e.activity), ts: e.ts })
            .filter(|x| x.weight > 0.0)
            .collect()
    }
}

/// Cumulative-weight sampler.
struct Sampler(Vec<f64>);

impl Sampler {
    fn new(weights: impl Iterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        Self(
            weights
                .map(|w| {
                    acc += w;
                    acc
                })
                .collect(),
        )
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = self.0.last().copied().unwrap_or(0.0);
        let x = rng.random::<f64>() * total;
        self.0.partition_point(|&c| c <= x).min(self.0.len().saturating_sub(1))
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates the catalogue and events for `params`.
pub fn generate(params: &GenParams) -> Result<Generated> {
    if params.users == 0 || params.items == 0 || params.categories == 0 || params.days == 0 {
        return Err(invalid("users, items, categories and days must be > 0"));
    }
    if params.users > u32::MAX as usize || params.items > u32::MAX as usize {
        return Err(invalid("users and items must fit in u32"));
    }
    if !(params.popularity_exponent.is_finite()
        && params.activity_sigma.is_finite()
        && params.activity_sigma >= 0.0)
    {
        return Err(invalid("popularity exponent and activity sigma must be finite"));
    }
    let mut rng = StdRng::seed_from_u64(params.seed);
    // Catalogue: a random popularity rank per item, categories of Zipf-like sizes.
    let mut rank: Vec<usize> = (0..params.items).collect();
    for i in (1..rank.len()).rev() {
        rank.swap(i, rng.random_range(0..=i));
    }
    let cat_sampler = Sampler::new((0..params.categories).map(|c| 1.0 / (c as f64 + 1.0)));
    let items: Vec<GenItem> = (0..params.items)
        .map(|i| GenItem {
            id: i as u32,
            category: cat_sampler.sample(&mut rng) as u32,
            price_cents: (normal(&mut rng) * 0.9 + 8.0).exp().clamp(100.0, 10_000_000.0) as u32,
        })
        .collect();
    let pop: Vec<f64> =
        rank.iter().map(|&r| 1.0 / (r as f64 + 1.0).powf(params.popularity_exponent)).collect();
    let global = Sampler::new(pop.iter().copied());
    let mut by_cat: Vec<Vec<u32>> = vec![Vec::new(); params.categories];
    for it in &items {
        by_cat[it.category as usize].push(it.id);
    }
    let cat_samplers: Vec<Sampler> =
        by_cat.iter().map(|ids| Sampler::new(ids.iter().map(|&i| pop[i as usize]))).collect();
    // Users: log-normal activity, 1–3 favourite categories.
    let activity = Sampler::new((0..params.users).map(|_| (params.activity_sigma * normal(&mut rng)).exp()));
    let favourites: Vec<Vec<u32>> = (0..params.users)
        .map(|_| (0..rng.random_range(1..=3)).map(|_| cat_sampler.sample(&mut rng) as u32).collect())
        .collect();
    let span = i64::from(params.days) * 86_400;
    let mut events = Vec::with_capacity(params.events);
    let mut session = 0u32;
    while events.len() < params.events {
        let user = activity.sample(&mut rng);
        let mut ts = params.start_ts + rng.random_range(0..span);
        let views = 1 + (-(rng.random::<f64>().max(1e-12)).ln() * 5.0) as usize;
        let mut cart: Vec<u32> = Vec::new();
        for _ in 0..views {
            let fav = &favourites[user];
            let item = if rng.random::<f64>() < 0.7 {
                let c = fav[rng.random_range(0..fav.len())] as usize;
                if by_cat[c].is_empty() {
                    global.sample(&mut rng) as u32
                } else {
                    by_cat[c][cat_samplers[c].sample(&mut rng)]
                }
            } else {
                global.sample(&mut rng) as u32
            };
            let mut push = |activity, ts: &mut i64, rng: &mut StdRng| {
                events.push(GenEvent { user: user as u32, item, activity, ts: *ts, session });
                *ts += rng.random_range(5..120);
            };
            if rng.random::<f64>() < 0.15 {
                push(ActivityType::Click, &mut ts, &mut rng);
            }
            push(ActivityType::View, &mut ts, &mut rng);
            if rng.random::<f64>() < 0.08 {
                push(ActivityType::Like, &mut ts, &mut rng);
            }
            if rng.random::<f64>() < 0.12 {
                push(ActivityType::AddToCart, &mut ts, &mut rng);
                cart.push(item);
            }
        }
        for item in cart {
            let r = rng.random::<f64>();
            let activity = if r < 0.25 {
                ActivityType::RemoveFromCart
            } else if r < 0.70 {
                ActivityType::Purchase
            } else {
                continue;
            };
            events.push(GenEvent { user: user as u32, item, activity, ts, session });
            ts += rng.random_range(5..60);
        }
        session = session.wrapping_add(1);
    }
    events.truncate(params.events);
    events.sort_by_key(|e| e.ts);
    Ok(Generated { items, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small() -> GenParams {
        GenParams { users: 200, items: 100, events: 5_000, seed: 7, ..Default::default() }
    }

    #[test]
    fn deterministic_exact_count_and_in_range() {
        let a = generate(&small()).unwrap();
        assert_eq!(a, generate(&small()).unwrap());
        assert_eq!(a.events.len(), 5_000);
        assert_eq!(a.items.len(), 100);
        assert!(a.events.iter().all(|e| (e.user as usize) < 200 && (e.item as usize) < 100));
        assert!(a.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        let other = generate(&GenParams { seed: 8, ..small() }).unwrap();
        assert_ne!(a.events, other.events);
    }

    #[test]
    fn funnel_and_popularity_look_like_a_shop() {
        let g = generate(&GenParams { events: 50_000, ..small() }).unwrap();
        let mut by_type: HashMap<ActivityType, usize> = HashMap::new();
        let mut by_item = vec![0usize; 100];
        for e in &g.events {
            *by_type.entry(e.activity).or_default() += 1;
            by_item[e.item as usize] += 1;
        }
        let n = |t| by_type.get(&t).copied().unwrap_or(0);
        assert!(n(ActivityType::View) > n(ActivityType::AddToCart));
        assert!(n(ActivityType::AddToCart) > n(ActivityType::Purchase));
        assert!(n(ActivityType::Purchase) > 0 && n(ActivityType::RemoveFromCart) > 0);
        by_item.sort_unstable_by(|a, b| b.cmp(a));
        let top10: usize = by_item[..10].iter().sum();
        assert!(top10 * 4 > g.events.len(), "power law: the top 10% of items get > 25% of events");
        assert!(generate(&GenParams { users: 0, ..small() }).is_err());
    }
}
