//! Offline features: what became of products when they were shown. The training job sums,
//! per product, how often each was shown in served lists and the clicks, add-to-carts and
//! purchases attributed to it there (the impression store's daily exposure totals) over
//! the [`DAYS`] whole UTC days before the day of a reference time — the cut for the ranker's
//! training lists, the job's time for the model it serves — and ships them in the bundle
//! ([`Engagement`]). When a model is attached they become smoothed rates ([`Rates`]): a
//! category's pulled toward the shop's, a product's toward its category's, each as if it
//! had been shown [`PRIOR_SHOWN`] more times at that rate.
//!
//! Only whole days before the reference day count: the reference day itself holds what
//! happened after the cut, and a training feature must not see it. Showings count per day
//! of the window that holds any totals, so that a window partly pruned by the impression
//! log's retention (the cut's, in a shop with a long history) reads like a whole one.
//! Products are keyed by id, not by model item: whether a product has a model item at the
//! cut depends on events after it.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use vitrina_core::{
    ports::{Exposure, Exposures},
    Product, ProductId,
};

/// Whole UTC days summed.
pub const DAYS: i64 = 28;
/// Showings' worth of prior each rate is smoothed with.
pub const PRIOR_SHOWN: f64 = 50.0;
const DAY_MS: i64 = 86_400_000;

/// The UTC days `[from, to)` (days since 1970-01-01) the totals of reference time `at_ms`
/// cover: the [`DAYS`] whole days before its day.
pub fn window(at_ms: i64) -> (i64, i64) {
    let day = at_ms.div_euclid(DAY_MS);
    (day - DAYS, day)
}

/// Click, add-to-cart and purchase rates per showing of `e`, smoothed toward `prior`.
fn rates(e: &Exposure, prior: [f64; 3]) -> [f64; 3] {
    let n = e.impressions as f64 + PRIOR_SHOWN;
    let k = [e.clicks, e.add_to_carts, e.purchases];
    std::array::from_fn(|i| (k[i] as f64 + PRIOR_SHOWN * prior[i]) / n)
}

/// The totals a bundle carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Engagement {
    /// The UTC days `[from, to)` summed.
    pub days: (i64, i64),
    /// Days of `days` that hold any totals: showings are per such day.
    pub days_shown: u32,
    /// Per category name, what its products added up to.
    pub categories: Vec<(String, Exposure)>,
    /// Per product shown: `(product, index into categories, totals)`, by product id.
    pub products: Vec<(ProductId, u32, Exposure)>,
}

impl Engagement {
    /// The totals `shown` over `days`, each product in its category of the catalogue
    /// `products` (one no longer in it is left out). `None` when nothing was shown.
    pub fn new(days: (i64, i64), shown: &Exposures, products: &[Product]) -> Option<Self> {
        let category: FxHashMap<&ProductId, &str> =
            products.iter().map(|p| (&p.id, p.category.as_str())).collect();
        let mut categories: Vec<(String, Exposure)> = Vec::new();
        let mut category_index: FxHashMap<&str, u32> = FxHashMap::default();
        let mut per_product = Vec::new();
        for (id, totals) in shown.products.iter().filter(|(_, t)| t.impressions > 0) {
            let Some(&name) = category.get(id) else { continue };
            let c = *category_index.entry(name).or_insert_with(|| {
                categories.push((name.to_string(), Exposure::default()));
                categories.len() as u32 - 1
            });
            categories[c as usize].1.add(totals);
            per_product.push((id.clone(), c, *totals));
        }
        per_product.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        (shown.days > 0 && !categories.is_empty()).then_some(Engagement {
            days,
            days_shown: shown.days,
            categories,
            products: per_product,
        })
    }
}

/// Features per candidate, in [`crate::features::NAMES`] order: `ln(1 + showings per day)`
/// of the product, its click, add-to-cart and purchase rates, its category's click and
/// purchase rates.
pub type Shown = [f32; 6];

/// An [`Engagement`] as smoothed rates, over a catalogue's item and category indices.
#[derive(Debug, Default)]
pub struct Rates {
    /// Per catalogue item shown: `ln(1 + showings per day)` and its three rates.
    items: FxHashMap<u32, [f32; 4]>,
    /// Per catalogue category: its three rates.
    categories: FxHashMap<u32, [f32; 3]>,
    /// The shop's three rates: the prior of a category never shown.
    shop: [f32; 3],
}

impl Rates {
    /// `item` and `category` give a product's and a category name's index in the catalogue,
    /// where it has one.
    pub fn new(
        e: &Engagement,
        item: impl Fn(&ProductId) -> Option<u32>,
        category: impl Fn(&str) -> Option<u32>,
    ) -> Self {
        let mut total = Exposure::default();
        e.categories.iter().for_each(|(_, c)| total.add(c));
        let n = total.impressions.max(1) as f64;
        let shop = [total.clicks as f64 / n, total.add_to_carts as f64 / n, total.purchases as f64 / n];
        let by_index: Vec<[f64; 3]> = e.categories.iter().map(|(_, c)| rates(c, shop)).collect();
        let per_day = f64::from(e.days_shown.max(1));
        let items = e
            .products
            .iter()
            .filter_map(|(id, c, counts)| {
                let [a, b, d] = rates(counts, *by_index.get(*c as usize)?);
                let shown = (counts.impressions as f64 / per_day).ln_1p();
                Some((item(id)?, [shown as f32, a as f32, b as f32, d as f32]))
            })
            .collect();
        let categories = e
            .categories
            .iter()
            .zip(&by_index)
            .filter_map(|((name, _), r)| Some((category(name)?, r.map(|x| x as f32))))
            .collect();
        Rates { items, categories, shop: shop.map(|x| x as f32) }
    }

    /// The features of catalogue item `item` of catalogue category `category`: a product
    /// never shown has its category's rates, 0 showings.
    pub fn of(&self, item: u32, category: u32) -> Shown {
        let cat = self.categories.get(&category).copied().unwrap_or(self.shop);
        let [shown, click, cart, purchase] =
            self.items.get(&item).copied().unwrap_or([0.0, cat[0], cat[1], cat[2]]);
        [shown, click, cart, purchase, cat[0], cat[2]]
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn product(id: &str, category: &str) -> Product {
        let now = Utc::now();
        Product {
            id: ProductId::parse(id).unwrap(),
            name: id.into(),
            category: category.into(),
            price: "1.00".parse().unwrap(),
            attributes: Default::default(),
            in_stock: true,
            hidden: false,
            created_at: now,
            updated_at: now,
        }
    }

    fn shown(id: &str, impressions: u64, clicks: u64, purchases: u64) -> (ProductId, Exposure) {
        let e = Exposure { impressions, clicks, purchases, ..Exposure::default() };
        (ProductId::parse(id).unwrap(), e)
    }

    #[test]
    fn the_window_is_the_whole_days_before_the_reference_day() {
        let day = 20_000;
        let noon = day * DAY_MS + DAY_MS / 2;
        assert_eq!(window(noon), (day - DAYS, day));
        assert_eq!(window(day * DAY_MS), (day - DAYS, day));
        assert_eq!(window(day * DAY_MS - 1), (day - 1 - DAYS, day - 1));
    }

    fn exposures(days: u32, products: Vec<(ProductId, Exposure)>) -> Exposures {
        Exposures { days, products }
    }

    #[test]
    fn rates_are_smoothed_toward_the_category_and_the_category_toward_the_shop() {
        let products =
            [product("a", "shoes"), product("b", "shoes"), product("c", "hats"), product("d", "hats")];
        // gone is no longer in the catalogue; b is unknown to the catalogue the rates are
        // attached to, so it counts for shoes only.
        let totals = exposures(
            4,
            vec![
                shown("a", 100, 10, 2),
                shown("b", 100, 30, 0),
                shown("c", 200, 2, 0),
                shown("gone", 9, 9, 9),
            ],
        );
        let e = Engagement::new((1, 2), &totals, &products).unwrap();
        assert_eq!(e.categories.len(), 2);
        assert_eq!(e.products.iter().map(|(p, _, _)| p.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        let index = |id: &ProductId| ["a", "c", "d"].iter().position(|p| *p == id.as_str()).map(|i| i as u32);
        let rates = Rates::new(&e, index, |name| match name {
            "shoes" => Some(7),
            "hats" => Some(8),
            _ => None,
        });
        // shop: 42 clicks and 2 purchases in 400 showings
        let shop = [42.0 / 400.0, 0.0, 2.0 / 400.0];
        let shoes = [(40.0 + 50.0 * shop[0]) / 250.0, (2.0 + 50.0 * shop[2]) / 250.0];
        let a = rates.of(0, 7);
        let close = |x: f32, y: f64| (f64::from(x) - y).abs() < 1e-6;
        // 100 showings over the 4 days with totals
        assert!(close(a[0], 26f64.ln()), "{a:?}");
        assert!(close(a[1], (10.0 + 50.0 * shoes[0]) / 150.0), "{a:?}");
        assert!(close(a[2], 0.0), "{a:?}");
        assert!(close(a[3], (2.0 + 50.0 * shoes[1]) / 150.0), "{a:?}");
        assert!(close(a[4], shoes[0]) && close(a[5], shoes[1]), "{a:?}");
        // d, a hat never shown: its category's rates, no showings.
        let hats_click = (2.0 + 50.0 * shop[0]) / 250.0;
        let d = rates.of(2, 8);
        assert_eq!(d[0], 0.0);
        assert!(close(d[1], hats_click) && close(d[4], hats_click), "{d:?}");
        // A product of a category never shown: the shop's rates.
        let new = rates.of(5, 99);
        assert!(close(new[1], shop[0]) && close(new[5], shop[2]), "{new:?}");
    }

    #[test]
    fn nothing_shown_is_no_engagement() {
        let products = [product("a", "shoes")];
        assert_eq!(Engagement::new((1, 2), &exposures(0, Vec::new()), &products), None);
        assert_eq!(Engagement::new((1, 2), &exposures(1, vec![shown("a", 0, 0, 0)]), &products), None);
        assert!(Engagement::new((1, 2), &exposures(1, vec![shown("a", 1, 0, 0)]), &products).is_some());
    }
}
