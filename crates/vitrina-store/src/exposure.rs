//! Per-product daily exposure totals (`product_exposure`), the same on every backend: what a
//! batch of recorded lists and outcomes adds, keyed so that one product's days are one range
//! of the key. Pure: the backends write the rows in their own transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use vitrina_core::{
    ports::{AttributedOutcome, Exposure, Impression},
    ProductId,
};

const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since 1970-01-01) of a time in epoch milliseconds.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The row key of `product` on `day`: `{product}/{day, six digits}`. Product ids never hold a
/// `/`, so `{product}/` … `{product}0` spans that product's days and nothing else.
pub fn key(product: &str, day: i64) -> String {
    format!("{product}/{day:06}")
}

/// The key range `[from, to)` of `product`'s days from the day of `since` on.
pub fn range(product: &str, since: DateTime<Utc>) -> (String, String) {
    (key(product, day_of(since.timestamp_millis()).max(0)), format!("{product}0"))
}

/// A batch's additions, by product and day (sorted, so that a backend writes its rows in one
/// order). Counting a shown item clones the product's shared id and makes no key: the key of
/// each row is made once, when the rows are written.
#[derive(Debug, Default)]
pub struct Delta {
    rows: BTreeMap<(ProductId, i64), Exposure>,
}

impl Delta {
    fn row(&mut self, product: &ProductId, ms: i64) -> &mut Exposure {
        self.rows.entry((product.clone(), day_of(ms))).or_default()
    }

    /// A list that was stored (not one already recorded): each item shown once.
    pub fn shown(&mut self, list: &Impression) {
        let ms = list.created_at.timestamp_millis();
        for item in &list.items {
            self.row(&item.product_id, ms).impressions += 1;
        }
    }

    /// An outcome that was stored (not one whose event was already recorded).
    pub fn outcome(&mut self, o: &AttributedOutcome) {
        self.row(&o.product_id, o.created_at.timestamp_millis()).add_outcome(o.kind, o.value);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `(key, product, day, additions)` in product and day order.
    pub fn rows(&self) -> impl Iterator<Item = (String, &str, i64, &Exposure)> {
        self.rows.iter().map(|((p, d), e)| (key(p.as_str(), *d), p.as_str(), *d, e))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use vitrina_core::{ports::ImpressionItem, ActivityType, UserId};

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn list(when: DateTime<Utc>, products: &[&str]) -> Impression {
        Impression {
            recommendation_id: "r".into(),
            user_id: UserId::parse("u").unwrap(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: when,
            items: products
                .iter()
                .enumerate()
                .map(|(k, p)| ImpressionItem {
                    product_id: ProductId::parse(p).unwrap(),
                    source: "trending".into(),
                    position: k as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn lists_and_outcomes_add_up_per_product_and_utc_day() {
        let mut d = Delta::default();
        d.shown(&list(at(3, 23), &["p1", "p2"]));
        d.shown(&list(at(4, 1), &["p1"]));
        d.shown(&list(at(4, 2), &["p1"]));
        d.outcome(&AttributedOutcome {
            event_id: "e".into(),
            recommendation_id: "r".into(),
            user_id: UserId::parse("u").unwrap(),
            variant: "default".into(),
            product_id: ProductId::parse("p1").unwrap(),
            source: "trending".into(),
            position: 0,
            kind: ActivityType::Purchase,
            value: 12.5,
            created_at: at(4, 3),
        });
        let day3 = day_of(at(3, 0).timestamp_millis());
        let rows: Vec<_> = d.rows().map(|(k, p, day, e)| (k, p.to_string(), day, *e)).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, format!("p1/{day3:06}"));
        assert_eq!((rows[0].2, rows[0].3.impressions), (day3, 1));
        assert_eq!(
            rows[1].3,
            Exposure { impressions: 2, purchases: 1, revenue: 12.5, ..Exposure::default() }
        );
        assert_eq!((rows[2].1.as_str(), rows[2].2), ("p2", day3));
    }

    #[test]
    fn a_products_range_holds_its_days_and_no_other_products() {
        let (from, to) = range("p1", at(4, 12));
        let day = day_of(at(4, 0).timestamp_millis());
        for inside in [key("p1", day), key("p1", day + 400)] {
            assert!(from <= inside && inside < to, "{inside}");
        }
        for outside in [key("p1", day - 1), key("p1x", day), key("p1-2", day), key("p10", day), key("p", day)]
        {
            assert!(!(from <= outside && outside < to), "{outside}");
        }
    }
}
