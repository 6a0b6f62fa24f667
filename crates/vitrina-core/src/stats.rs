//! Per-user recommendation stats: impressions, attributed clicks and conversions.
//!
//! Attribution: a `click`, `add_to_cart` or `purchase` counts for the impression named by
//! its `metadata.recommendationId` when that impression showed the product; otherwise for
//! the latest impression of the product shown to the user within the attribution window
//! before the event. Each event is attributed at most once.

use std::collections::BTreeMap;

use chrono::Duration;
use serde::Serialize;

use crate::{ports::Impression, ActivityType, StoredActivity};

/// How long after an impression an event without a `recommendationId` is still attributed.
pub const ATTRIBUTION_WINDOW_HOURS: i64 = 24;

/// Counts for one slice (all, or one algorithm and variant).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub impressions: u64,
    pub clicks: u64,
    pub add_to_carts: u64,
    pub conversions: u64,
    pub ctr: f64,
    pub conversion_rate: f64,
}

impl Counts {
    fn finish(&mut self) {
        let n = self.impressions.max(1) as f64;
        self.ctr = if self.impressions > 0 { self.clicks as f64 / n } else { 0.0 };
        self.conversion_rate = if self.impressions > 0 { self.conversions as f64 / n } else { 0.0 };
    }
}

/// Counts for one algorithm (item source) within one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceCounts {
    pub algorithm: String,
    pub variant: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The stats of one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStats {
    /// Recommendation lists served.
    pub lists: u64,
    #[serde(flatten)]
    pub total: Counts,
    pub by_algorithm: Vec<SliceCounts>,
}

/// Computes stats from a user's impressions and events over the same period.
pub fn user_stats(impressions: &[Impression], events: &[StoredActivity]) -> UserStats {
    let mut slices: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for imp in impressions {
        for item in &imp.items {
            slices.entry((item.source.clone(), imp.variant.clone())).or_default().impressions += 1;
            total.impressions += 1;
        }
    }
    let window = Duration::hours(ATTRIBUTION_WINDOW_HOURS);
    for stored in events {
        let e = &stored.event;
        let Some(product) = &e.product_id else { continue };
        if !matches!(e.activity_type, ActivityType::Click | ActivityType::AddToCart | ActivityType::Purchase)
        {
            continue;
        }
        let shows = |imp: &&Impression| imp.items.iter().any(|i| &i.product_id == product);
        let by_id = e
            .recommendation_id()
            .and_then(|id| impressions.iter().find(|imp| imp.recommendation_id == id))
            .filter(shows);
        let by_window = || {
            impressions
                .iter()
                .filter(|imp| imp.created_at <= e.timestamp && e.timestamp - imp.created_at <= window)
                .filter(shows)
                .max_by_key(|imp| imp.created_at)
        };
        let Some(imp) = by_id.or_else(by_window) else { continue };
        let Some(item) = imp.items.iter().find(|i| &i.product_id == product) else { continue };
        let slice = slices.entry((item.source.clone(), imp.variant.clone())).or_default();
        for c in [slice, &mut total] {
            match e.activity_type {
                ActivityType::Click => c.clicks += 1,
                ActivityType::AddToCart => c.add_to_carts += 1,
                _ => c.conversions += 1,
            }
        }
    }
    total.finish();
    let by_algorithm = slices
        .into_iter()
        .map(|((algorithm, variant), mut counts)| {
            counts.finish();
            SliceCounts { algorithm, variant, counts }
        })
        .collect();
    UserStats { lists: impressions.len() as u64, total, by_algorithm }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::{ports::ImpressionItem, time::from_millis, ActivityInput, NewActivity, ProductId, UserId};

    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn imp(id: &str, at: i64, items: &[(&str, &str)]) -> Impression {
        Impression {
            recommendation_id: id.into(),
            user_id: UserId::parse("u").unwrap(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: from_millis(at),
            items: items
                .iter()
                .enumerate()
                .map(|(i, (p, s))| ImpressionItem {
                    product_id: ProductId::parse(p).unwrap(),
                    source: s.to_string(),
                    position: i as u32,
                })
                .collect(),
        }
    }

    fn ev(kind: &str, p: &str, at: i64, rec: Option<&str>) -> StoredActivity {
        let metadata = rec.map(|r| json!({"recommendationId": r}).as_object().unwrap().clone());
        let input = ActivityInput {
            user_id: Some("u".into()),
            activity_type: Some(kind.into()),
            product_id: Some(p.into()),
            metadata,
            timestamp: Some(json!(at)),
            ..Default::default()
        };
        let now: DateTime<Utc> = from_millis(at);
        StoredActivity { seq: 0, event: NewActivity::validate(input, now).unwrap(), received_at: now }
    }

    #[test]
    fn attributes_by_id_then_by_window_and_counts_each_event_once() {
        let imps = [
            imp("r1", T0, &[("p1", "collaborative_filtering"), ("p2", "popular")]),
            imp("r2", T0 + HOUR, &[("p2", "popular")]),
        ];
        let events = [
            ev("click", "p1", T0 + 10, Some("r1")),    // by id → cf
            ev("click", "p2", T0 + 2 * HOUR, None),    // by window → latest (r2), popular
            ev("purchase", "p2", T0 + 2 * HOUR, None), // conversion, popular
            ev("click", "p9", T0 + 10, None),          // never shown → not attributed
            ev("click", "p1", T0 + 30 * HOUR, None),   // outside the window
            ev("view", "p1", T0 + 10, Some("r1")),     // views are not clicks
            ev("click", "p2", T0 + 10, Some("nope")),  // unknown id falls back to the window
        ];
        let s = user_stats(&imps, &events);
        assert_eq!(s.lists, 2);
        assert_eq!((s.total.impressions, s.total.clicks, s.total.conversions), (3, 3, 1));
        assert!((s.total.ctr - 1.0).abs() < 1e-12);
        let cf = &s.by_algorithm[0];
        assert_eq!(
            (cf.algorithm.as_str(), cf.counts.impressions, cf.counts.clicks),
            ("collaborative_filtering", 1, 1)
        );
        let pop = &s.by_algorithm[1];
        assert_eq!(
            (pop.algorithm.as_str(), pop.counts.impressions, pop.counts.clicks, pop.counts.conversions),
            ("popular", 2, 2, 1)
        );
    }

    #[test]
    fn no_impressions_means_zero_rates_not_nan() {
        let s = user_stats(&[], &[ev("click", "p1", T0, None)]);
        assert_eq!(s.total, Counts::default());
    }
}
