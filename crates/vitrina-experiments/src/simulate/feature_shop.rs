//! A simulated shop whose visitors click by what a learned ranker can see, to test the
//! ranker against the blend over the API (`vitrina simulate`).
//!
//! The abstract [`Shop`](super::Shop) draws its lists itself; this one only answers what a
//! visitor does with a list somebody else served. Visitor `v` clicks product `p` shown at
//! position `k` (1-based) with probability
//!
//! ```text
//! min(0.95, base · bias(k) · engagement(v) · affinity(v, category(p)) · price_fit(v, p) · freshness(p) · quality(p))
//! ```
//!
//! - `bias(k) = 1 / log2(k + 1)`, engagement uniform in `[0.7, 1.3]`;
//! - affinity [`FAVOURITE_AFFINITY`] for the visitor's favourite category, 1 otherwise;
//! - `price_fit = exp(−(ln price − ln preferred price)² / (2 · PRICE_SPREAD²))`: every
//!   visitor has a price band, and a product far outside it is hardly clicked;
//! - `freshness = 1 + FRESHNESS_BOOST · exp(−age in days / FRESHNESS_DAYS)`: new products
//!   draw more clicks;
//! - quality uniform in `[0.25, 1.75]`, hidden, seen only through the clicks it draws;
//! - `base` calibrated so that a list of products drawn uniformly at random has the
//!   configured item-level CTR.
//!
//! A click leads to an add-to-cart with probability [`CART_GIVEN_CLICK`], and that to a
//! purchase with probability [`PURCHASE_GIVEN_CART`]. Before the simulation, every visitor
//! browses: [`FeatureShop::history`] draws product views with probability proportional to
//! the same attraction (no position), so a visitor's history shows their category and their
//! price band — the ranker's `category_affinity` and `log_price_vs_visitor` features.
//! Nothing here does I/O: the caller sends the catalogue, the history and the responses.

use rand::{distr::weighted::WeightedIndex, prelude::Distribution, rngs::StdRng, Rng, SeedableRng};

use super::{position_bias, CART_GIVEN_CLICK, PURCHASE_GIVEN_CART};

/// How much more the favourite category attracts.
pub const FAVOURITE_AFFINITY: f64 = 2.5;
/// Width of a visitor's price band, in natural-log units of price.
pub const PRICE_SPREAD: f64 = 0.6;
/// How much more a brand-new product attracts than an old one, on top of 1.
pub const FRESHNESS_BOOST: f64 = 2.0;
/// How fast a product's freshness fades.
pub const FRESHNESS_DAYS: f64 = 10.0;
/// Products are published up to this many days before the simulation starts.
pub const MAX_AGE_DAYS: f64 = 120.0;
/// Prices are log-uniform between these.
pub const PRICE_RANGE: (f64, f64) = (5.0, 500.0);
/// The browsing history is spread over this many days before the simulation starts.
pub const HISTORY_DAYS: f64 = 30.0;
/// Highest click probability.
const MAX_CLICK: f64 = 0.95;

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureShopConfig {
    pub visitors: usize,
    pub products: usize,
    pub categories: usize,
    /// Product views each visitor's history holds.
    pub history_views: usize,
    /// Item-level CTR of lists of `list_len` products drawn uniformly at random.
    pub random_ctr: f64,
    pub list_len: usize,
    pub seed: u64,
}

impl Default for FeatureShopConfig {
    fn default() -> Self {
        Self {
            visitors: 2_000,
            products: 400,
            categories: 8,
            history_views: 15,
            random_ctr: 0.03,
            list_len: 10,
            seed: 1,
        }
    }
}

/// A product of the simulated catalogue, as a shop would send it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimProduct {
    pub id: String,
    pub category: String,
    /// Rounded to cents.
    pub price: f64,
    /// Days before the simulation starts that it was published.
    pub age_days: f64,
}

/// What a visitor did with one shown product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    Click,
    AddToCart,
    Purchase,
}

/// One event of a visitor's browsing history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub product: usize,
    /// `view`, `add_to_cart` or `purchase`.
    pub activity: &'static str,
    /// Days before the simulation starts.
    pub days_ago: f64,
}

/// The hidden truth of the simulated shop.
#[derive(Debug, Clone)]
pub struct FeatureShop {
    pub config: FeatureShopConfig,
    products: Vec<SimProduct>,
    quality: Vec<f64>,
    category: Vec<usize>,
    log_price: Vec<f64>,
    favourite: Vec<usize>,
    preferred_log_price: Vec<f64>,
    engagement: Vec<f64>,
    base: f64,
}

impl FeatureShop {
    pub fn new(config: FeatureShopConfig) -> Self {
        assert!(config.visitors > 0 && config.products > 0 && config.categories > 0, "an empty shop");
        assert!(config.random_ctr > 0.0 && config.random_ctr < 1.0, "random_ctr is a probability");
        let mut rng = StdRng::seed_from_u64(config.seed);
        let (lo, hi) = (PRICE_RANGE.0.ln(), PRICE_RANGE.1.ln());
        let category: Vec<usize> =
            (0..config.products).map(|_| rng.random_range(0..config.categories)).collect();
        let log_price: Vec<f64> = (0..config.products)
            .map(|_| ((rng.random_range(lo..hi)).exp() * 100.0).round() / 100.0)
            .map(f64::ln)
            .collect();
        let products = (0..config.products)
            .map(|p| SimProduct {
                id: product_id(p),
                category: format!("sim-category-{}", category[p]),
                price: log_price[p].exp(),
                age_days: rng.random_range(0.0..MAX_AGE_DAYS),
            })
            .collect();
        let quality = (0..config.products).map(|_| rng.random_range(0.25..=1.75)).collect();
        let favourite = (0..config.visitors).map(|_| rng.random_range(0..config.categories)).collect();
        let preferred_log_price = (0..config.visitors).map(|_| rng.random_range(lo..hi)).collect();
        let engagement = (0..config.visitors).map(|_| rng.random_range(0.7..=1.3)).collect();
        let mut shop = Self {
            config,
            products,
            quality,
            category,
            log_price,
            favourite,
            preferred_log_price,
            engagement,
            base: 1.0,
        };
        shop.base = shop.config.random_ctr / shop.random_list_ctr();
        shop
    }

    pub fn products(&self) -> &[SimProduct] {
        &self.products
    }

    /// The index of a product id this shop made, if it is one.
    pub fn product_index(&self, id: &str) -> Option<usize> {
        id.strip_prefix(PRODUCT_PREFIX).and_then(|n| n.parse().ok()).filter(|&p| p < self.products.len())
    }

    /// How much visitor `v` is drawn to product `p`, leaving out the position.
    pub fn attraction(&self, v: usize, p: usize) -> f64 {
        let affinity = if self.favourite[v] == self.category[p] { FAVOURITE_AFFINITY } else { 1.0 };
        let off = self.log_price[p] - self.preferred_log_price[v];
        let price_fit = (-off * off / (2.0 * PRICE_SPREAD * PRICE_SPREAD)).exp();
        let freshness = 1.0 + FRESHNESS_BOOST * (-self.products[p].age_days / FRESHNESS_DAYS).exp();
        self.engagement[v] * affinity * price_fit * freshness * self.quality[p]
    }

    /// The probability that visitor `v` clicks product `p` shown at `position` (1-based).
    pub fn click_probability(&self, v: usize, p: usize, position: usize) -> f64 {
        (self.base * position_bias(position) * self.attraction(v, p)).min(MAX_CLICK)
    }

    /// What visitor `v` does with a served list (product indices, best first): for each
    /// position that drew a response, the furthest the visitor went.
    pub fn respond(&self, v: usize, shown: &[usize], rng: &mut impl Rng) -> Vec<(usize, Response)> {
        let mut out = Vec::new();
        for (i, &p) in shown.iter().enumerate() {
            if !rng.random_bool(self.click_probability(v, p, i + 1)) {
                continue;
            }
            let response = if !rng.random_bool(CART_GIVEN_CLICK) {
                Response::Click
            } else if !rng.random_bool(PURCHASE_GIVEN_CART) {
                Response::AddToCart
            } else {
                Response::Purchase
            };
            out.push((i, response));
        }
        out
    }

    /// Visitor `v`'s browsing before the simulation: `history_views` views drawn by
    /// attraction among the products published by then (a view with none is left out),
    /// some going on to the cart and a purchase, oldest first.
    pub fn history(&self, v: usize, rng: &mut impl Rng) -> Vec<HistoryEvent> {
        let attraction: Vec<f64> = (0..self.products.len()).map(|p| self.attraction(v, p)).collect();
        let mut days: Vec<f64> =
            (0..self.config.history_views).map(|_| rng.random_range(0.0..HISTORY_DAYS)).collect();
        days.sort_by(|a, b| b.total_cmp(a));
        let mut out = Vec::new();
        for days_ago in days {
            let published =
                self.products
                    .iter()
                    .zip(&attraction)
                    .map(|(p, &a)| if p.age_days > days_ago { a } else { 0.0 });
            let Ok(pick) = WeightedIndex::new(published) else { continue };
            let product = pick.sample(rng);
            out.push(HistoryEvent { product, activity: "view", days_ago });
            if rng.random_bool(CART_GIVEN_CLICK / 2.0) {
                out.push(HistoryEvent { product, activity: "add_to_cart", days_ago });
                if rng.random_bool(PURCHASE_GIVEN_CART) {
                    out.push(HistoryEvent { product, activity: "purchase", days_ago });
                }
            }
        }
        out
    }

    /// Mean click probability of a product drawn uniformly at random (with `base` = 1),
    /// over the positions of a `list_len`-item list.
    fn random_list_ctr(&self) -> f64 {
        let n = self.config.list_len.max(1);
        let bias: f64 = (1..=n).map(position_bias).sum::<f64>() / n as f64;
        let mut sum = 0.0;
        for v in 0..self.config.visitors {
            sum += (0..self.products.len()).map(|p| self.attraction(v, p)).sum::<f64>();
        }
        bias * sum / (self.config.visitors * self.products.len()) as f64
    }
}

const PRODUCT_PREFIX: &str = "sim-product-";

/// The id of product `p`.
pub fn product_id(p: usize) -> String {
    format!("{PRODUCT_PREFIX}{p}")
}

/// The id of visitor `v`.
pub fn visitor_id(v: usize) -> String {
    format!("sim-visitor-{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `n` products visitor `v` is most drawn to, best first: what a ranker that knew
    /// the hidden model would serve.
    fn oracle(s: &FeatureShop, v: usize, n: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..s.products.len()).collect();
        all.sort_by(|&a, &b| s.attraction(v, b).total_cmp(&s.attraction(v, a)).then(a.cmp(&b)));
        all.truncate(n);
        all
    }

    /// Expected item-level CTR of the oracle's lists (exact, over every visitor).
    fn oracle_ctr(s: &FeatureShop) -> f64 {
        let n = s.config.list_len;
        let per_visitor = |v: usize| {
            oracle(s, v, n).iter().enumerate().map(|(i, &p)| s.click_probability(v, p, i + 1)).sum::<f64>()
                / n as f64
        };
        (0..s.config.visitors).map(per_visitor).sum::<f64>() / s.config.visitors as f64
    }

    fn shop() -> FeatureShop {
        FeatureShop::new(FeatureShopConfig { visitors: 300, products: 120, ..Default::default() })
    }

    #[test]
    fn random_lists_have_the_configured_ctr() {
        let s = shop();
        let mut rng = StdRng::seed_from_u64(9);
        let (mut clicks, mut shown) = (0usize, 0usize);
        for _ in 0..20_000 {
            let v = rng.random_range(0..s.config.visitors);
            let list: Vec<usize> = rand::seq::index::sample(&mut rng, s.products.len(), 10).into_vec();
            clicks += s.respond(v, &list, &mut rng).len();
            shown += list.len();
        }
        let ctr = clicks as f64 / shown as f64;
        // 200,000 Bernoulli trials around 0.03: the standard error is under 0.0004.
        assert!((ctr - 0.03).abs() < 0.002, "random CTR {ctr}");
    }

    #[test]
    fn what_the_ranker_can_see_moves_clicks() {
        let s = shop();
        let v = 0;
        let by_attraction = oracle(&s, v, s.products.len());
        let (best, worst) = (by_attraction[0], by_attraction[by_attraction.len() - 1]);
        assert!(s.click_probability(v, best, 1) > 20.0 * s.click_probability(v, worst, 1));
        // The oracle's lists beat random ones by far, and the history leans to the visitor's
        // category and price band.
        let best = oracle_ctr(&s);
        assert!(best > 5.0 * s.config.random_ctr, "oracle CTR {best}");
        let mut rng = StdRng::seed_from_u64(3);
        let (mut in_favourite, mut near_price, mut views) = (0, 0, 0);
        for v in 0..s.config.visitors {
            for e in s.history(v, &mut rng).into_iter().filter(|e| e.activity == "view") {
                assert!(
                    s.products[e.product].age_days > e.days_ago,
                    "a view before the product was published"
                );
                views += 1;
                in_favourite += usize::from(s.category[e.product] == s.favourite[v]);
                near_price += usize::from(
                    (s.log_price[e.product] - s.preferred_log_price[v]).abs() < 2.0 * PRICE_SPREAD,
                );
            }
        }
        // a view falls before every product's publication only when all are newer than it
        assert!(views > s.config.visitors * s.config.history_views * 9 / 10, "{views}");
        // Uniform views would put 1/8 in the favourite category and under half (about 45 %)
        // within two spreads of the preferred price (a band of 2.4 out of ln 100 ≈ 4.6).
        assert!(in_favourite as f64 > 0.2 * views as f64, "{in_favourite} of {views}");
        assert!(near_price as f64 > 0.8 * views as f64, "{near_price} of {views}");
    }

    #[test]
    fn the_same_seed_makes_the_same_shop() {
        let (a, b) = (shop(), shop());
        assert_eq!(a.products, b.products);
        assert_eq!(a.product_index(&a.products[7].id), Some(7));
        assert_eq!(a.product_index("sim-product-120"), None);
        assert_eq!(a.product_index("product-1"), None);
        let history = |s: &FeatureShop| s.history(5, &mut StdRng::seed_from_u64(1));
        assert_eq!(history(&a), history(&b));
    }
}
