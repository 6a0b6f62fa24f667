//! Serving-time recommendation: the visitor's recent events → candidates from item
//! neighbours and popularity → business rules → a ranked, explained list.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};

use crate::{train::CoVisitationModel, ActivityType, Product, ProductId, StoredActivity};

/// Where a recommended item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A neighbour of items the visitor interacted with.
    CollaborativeFiltering,
    /// Popular overall (or in the requested category), for visitors with little history.
    Popular,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CollaborativeFiltering => "collaborative_filtering",
            Self::Popular => "popular",
        }
    }
}

/// One item of a recommendation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommended {
    pub product: Arc<Product>,
    pub score: f32,
    /// How strongly the visitor's own history supports the item, 0–1.
    pub confidence: f32,
    pub reason: Reason,
    /// The visitor's event that contributed most, for `collaborative_filtering`.
    pub because: Option<(ProductId, ActivityType)>,
}

/// A computed list, as cached and served.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationList {
    pub items: Vec<Recommended>,
    pub model_version: String,
    pub generated_at: DateTime<Utc>,
}

/// Read access to the catalogue at serving time.
pub trait ProductLookup {
    fn product(&self, id: &ProductId) -> Option<Arc<Product>>;
}

impl ProductLookup for HashMap<ProductId, Arc<Product>> {
    fn product(&self, id: &ProductId) -> Option<Arc<Product>> {
        self.get(id).cloned()
    }
}

/// Filters a request may add to the business rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub category: Option<String>,
    pub exclude: HashSet<ProductId>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
}

impl Filters {
    fn allows(&self, p: &Product) -> bool {
        let price = p.price.to_f64();
        p.is_available()
            && !self.exclude.contains(&p.id)
            && self.category.as_deref().is_none_or(|c| c == p.category)
            && self.min_price.is_none_or(|m| price >= m)
            && self.max_price.is_none_or(|m| price <= m)
    }
}

/// Weight of the popularity prior added to every candidate's score.
const POPULARITY_WEIGHT: f32 = 0.1;

/// Ranks items for a visitor. `history` is the visitor's recent events, newest first.
///
/// Rules: never an item the visitor already interacted with (purchased, carted, viewed…),
/// never an unavailable product or one the filters exclude, no duplicates, scores sorted
/// descending with ties broken by product id.
pub fn recommend(
    model: &CoVisitationModel,
    catalog: &dyn ProductLookup,
    history: &[StoredActivity],
    filters: &Filters,
    limit: usize,
    now: DateTime<Utc>,
) -> Vec<Recommended> {
    let mut profile: HashMap<&ProductId, (f32, ActivityType)> = HashMap::new();
    let mut seen: HashSet<&ProductId> = HashSet::new();
    for stored in history {
        let e = &stored.event;
        let Some(p) = &e.product_id else { continue };
        seen.insert(p);
        let w = model.config.event_weight(e) * model.config.decay(e.timestamp, now);
        let entry = profile.entry(p).or_insert((0.0, e.activity_type));
        entry.0 += w;
        if model.config.weight(e.activity_type) > model.config.weight(entry.1) {
            entry.1 = e.activity_type;
        }
    }
    let total: f32 = profile.values().map(|(w, _)| w.max(0.0)).sum();

    // Candidate → (collaborative score, strongest contribution and its source).
    let mut cf: HashMap<&ProductId, (f32, f32, &ProductId, ActivityType)> = HashMap::new();
    for (&p, &(w, kind)) in &profile {
        if w <= 0.0 {
            continue;
        }
        for (q, sim) in model.neighbours.get(p).into_iter().flatten() {
            let c = w * sim;
            let e = cf.entry(q).or_insert((0.0, 0.0, p, kind));
            e.0 += c;
            if c > e.1 || (c == e.1 && p < e.2) {
                (e.1, e.2, e.3) = (c, p, kind);
            }
        }
    }
    let pop_max = model.popularity_max().max(f32::MIN_POSITIVE);
    let popularity: HashMap<&ProductId, f32> = model.popular.iter().map(|(p, w)| (p, w / pop_max)).collect();

    let mut out: Vec<Recommended> = Vec::new();
    for (q, (score, _, src, kind)) in &cf {
        if seen.contains(q) {
            continue;
        }
        let Some(product) = catalog.product(q).filter(|p| filters.allows(p)) else { continue };
        let prior = popularity.get(q).copied().unwrap_or(0.0);
        out.push(Recommended {
            product,
            score: score + POPULARITY_WEIGHT * prior,
            confidence: if total > 0.0 { (score / total).clamp(0.0, 1.0) } else { 0.0 },
            reason: Reason::CollaborativeFiltering,
            because: Some(((*src).clone(), *kind)),
        });
    }
    sort(&mut out);
    out.truncate(limit);
    if out.len() < limit {
        let mut taken: HashSet<ProductId> = out.iter().map(|r| r.product.id.clone()).collect();
        for (q, w) in &model.popular {
            if out.len() >= limit {
                break;
            }
            if seen.contains(q) || taken.contains(q) {
                continue;
            }
            let Some(product) = catalog.product(q).filter(|p| filters.allows(p)) else { continue };
            taken.insert(q.clone());
            let prior = w / pop_max;
            out.push(Recommended {
                product,
                score: POPULARITY_WEIGHT * prior,
                confidence: 0.0,
                reason: Reason::Popular,
                because: None,
            });
        }
    }
    out
}

fn sort(items: &mut [Recommended]) {
    items.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.product.id.cmp(&b.product.id)));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Map;

    use super::*;
    use crate::{
        time::from_millis,
        train::{ModelBuilder, TrainingConfig},
        ActivityInput, NewActivity, Price,
    };

    const T0: i64 = 1_700_000_000_000;

    fn product(id: &str, category: &str, in_stock: bool, hidden: bool) -> Arc<Product> {
        Arc::new(Product {
            id: ProductId::parse(id).unwrap(),
            name: format!("name of {id}"),
            category: category.into(),
            price: "10.00".parse::<Price>().unwrap(),
            attributes: Map::new(),
            in_stock,
            hidden,
            created_at: from_millis(T0),
            updated_at: from_millis(T0),
        })
    }

    fn ev(seq: u64, user: &str, kind: &str, p: &str) -> StoredActivity {
        let input = ActivityInput {
            user_id: Some(user.into()),
            activity_type: Some(kind.into()),
            product_id: Some(p.into()),
            timestamp: Some(serde_json::json!(T0 + seq as i64)),
            ..Default::default()
        };
        let event = NewActivity::validate(input, from_millis(T0 + 1_000)).unwrap();
        StoredActivity { seq, event, received_at: from_millis(T0) }
    }

    fn catalog(ids: &[(&str, &str)]) -> HashMap<ProductId, Arc<Product>> {
        ids.iter().map(|(id, c)| (ProductId::parse(id).unwrap(), product(id, c, true, false))).collect()
    }

    fn model(events: &[StoredActivity]) -> CoVisitationModel {
        let mut b = ModelBuilder::new(TrainingConfig::default());
        events.iter().for_each(|e| b.add(e));
        b.build(&mut |_| {}).0
    }

    fn ids(list: &[Recommended]) -> Vec<&str> {
        list.iter().map(|r| r.product.id.as_str()).collect()
    }

    #[test]
    fn a_viewed_item_brings_its_neighbours_with_a_reason() {
        let log = [ev(1, "a", "view", "p1"), ev(2, "a", "view", "p2"), ev(3, "b", "view", "p3")];
        let m = model(&log);
        let cat = catalog(&[("p1", "x"), ("p2", "x"), ("p3", "y")]);
        let history = [ev(10, "new", "view", "p1")];
        let list = recommend(&m, &cat, &history, &Filters::default(), 10, from_millis(T0));
        assert_eq!(ids(&list), ["p2", "p3"]);
        assert_eq!(list[0].reason, Reason::CollaborativeFiltering);
        assert_eq!(list[0].because, Some((ProductId::parse("p1").unwrap(), ActivityType::View)));
        assert_eq!(list[1].reason, Reason::Popular);
    }

    #[test]
    fn a_visitor_without_history_gets_popular_items() {
        let log = [ev(1, "a", "purchase", "p2"), ev(2, "b", "view", "p1")];
        let cat = catalog(&[("p1", "x"), ("p2", "x")]);
        let list = recommend(&model(&log), &cat, &[], &Filters::default(), 10, from_millis(T0));
        assert_eq!(ids(&list), ["p2", "p1"]);
        assert!(list.iter().all(|r| r.reason == Reason::Popular));
    }

    /// (log of (user, product, kind), catalogue of (in stock, hidden, category),
    /// history of (product, kind), limit)
    type Case = (Vec<(u8, u8, u8)>, Vec<(bool, bool, u8)>, Vec<(u8, u8)>, usize);

    fn arb_case() -> impl Strategy<Value = Case> {
        (
            prop::collection::vec((0u8..6, 0u8..12, 0u8..6), 0..60),
            prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..3), 12),
            prop::collection::vec((0u8..12, 0u8..6), 0..8),
            1usize..15,
        )
    }

    proptest! {
        #[test]
        fn lists_respect_every_rule((log, products, history, limit) in arb_case(), category in prop::option::of(0u8..3)) {
            const KINDS: [&str; 6] = ["view", "click", "like", "add_to_cart", "purchase", "remove_from_cart"];
            let log: Vec<_> = log.iter().enumerate()
                .map(|(i, (u, p, k))| ev(i as u64, &format!("u{u}"), KINDS[*k as usize], &format!("p{p}")))
                .collect();
            let cat: HashMap<_, _> = products.iter().enumerate()
                .map(|(i, (stock, hidden, c))| {
                    let p = product(&format!("p{i}"), &format!("c{c}"), *stock, *hidden);
                    (p.id.clone(), p)
                })
                .collect();
            let history: Vec<_> = history.iter().enumerate()
                .map(|(i, (p, k))| ev(100 + i as u64, "me", KINDS[*k as usize], &format!("p{p}")))
                .collect();
            let filters = Filters { category: category.map(|c| format!("c{c}")), ..Default::default() };
            let list = recommend(&model(&log), &cat, &history, &filters, limit, from_millis(T0));

            prop_assert!(list.len() <= limit);
            let mut unique = HashSet::new();
            for (i, r) in list.iter().enumerate() {
                prop_assert!(r.score.is_finite() && r.score >= 0.0);
                prop_assert!((0.0..=1.0).contains(&r.confidence));
                prop_assert!(r.product.is_available());
                prop_assert!(unique.insert(r.product.id.clone()), "duplicate {}", r.product.id);
                prop_assert!(!history.iter().any(|h| h.event.product_id.as_ref() == Some(&r.product.id)));
                if let Some(c) = &filters.category { prop_assert_eq!(&r.product.category, c); }
                if i > 0 && list[i - 1].reason == r.reason {
                    prop_assert!(list[i - 1].score >= r.score);
                }
            }
        }
    }
}
