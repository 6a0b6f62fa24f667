//! Per-user recommendation stats: impressions, and the clicks and conversions attributed to
//! them. Counting only: which list an event is attributed to is decided by one rule elsewhere
//! (the experiments crate's `attribution`, applied by the server), whose results come in as
//! [`AttributedOutcome`]s.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    ports::{AttributedOutcome, Impression},
    ActivityType,
};

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

/// Counts a user's impressions and the outcomes attributed to them (each event once, as the
/// attribution gives them); an outcome counts for its own source and variant, whether or not
/// its list is among `impressions`.
pub fn user_stats(impressions: &[Impression], outcomes: &[AttributedOutcome]) -> UserStats {
    let mut slices: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for imp in impressions {
        for item in &imp.items {
            slices.entry((item.source.clone(), imp.variant.clone())).or_default().impressions += 1;
            total.impressions += 1;
        }
    }
    for o in outcomes {
        let slice = slices.entry((o.source.clone(), o.variant.clone())).or_default();
        for c in [slice, &mut total] {
            match o.kind {
                ActivityType::Click => c.clicks += 1,
                ActivityType::AddToCart => c.add_to_carts += 1,
                ActivityType::Purchase => c.conversions += 1,
                _ => {}
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
    use super::*;
    use crate::{ports::ImpressionItem, time::from_millis, ProductId, UserId};

    const T0: i64 = 1_700_000_000_000;

    fn imp(id: &str, items: &[(&str, &str)]) -> Impression {
        Impression {
            recommendation_id: id.into(),
            user_id: UserId::parse("u").unwrap(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: from_millis(T0),
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

    fn outcome(event: &str, rec: &str, source: &str, kind: ActivityType) -> AttributedOutcome {
        AttributedOutcome {
            event_id: event.into(),
            recommendation_id: rec.into(),
            user_id: UserId::parse("u").unwrap(),
            variant: "default".into(),
            product_id: ProductId::parse("p1").unwrap(),
            source: source.into(),
            position: 0,
            kind,
            value: 0.0,
            created_at: from_millis(T0 + 10),
        }
    }

    #[test]
    fn counts_impressions_and_outcomes_per_source_and_variant() {
        let imps = [
            imp("r1", &[("p1", "collaborative_filtering"), ("p2", "popular")]),
            imp("r2", &[("p2", "popular")]),
        ];
        let outcomes = [
            outcome("e1", "r1", "collaborative_filtering", ActivityType::Click),
            outcome("e2", "r2", "popular", ActivityType::Click),
            outcome("e3", "r2", "popular", ActivityType::Purchase),
            outcome("e4", "r2", "popular", ActivityType::AddToCart),
        ];
        let s = user_stats(&imps, &outcomes);
        assert_eq!(s.lists, 2);
        assert_eq!(
            (s.total.impressions, s.total.clicks, s.total.add_to_carts, s.total.conversions),
            (3, 2, 1, 1)
        );
        assert!((s.total.ctr - 2.0 / 3.0).abs() < 1e-12);
        let cf = &s.by_algorithm[0];
        assert_eq!(
            (cf.algorithm.as_str(), cf.counts.impressions, cf.counts.clicks),
            ("collaborative_filtering", 1, 1)
        );
        let pop = &s.by_algorithm[1];
        assert_eq!(
            (pop.algorithm.as_str(), pop.counts.impressions, pop.counts.clicks, pop.counts.conversions),
            ("popular", 2, 1, 1)
        );
        assert!((pop.counts.conversion_rate - 0.5).abs() < 1e-12);
    }

    #[test]
    fn no_impressions_means_zero_rates_not_nan() {
        let s = user_stats(&[], &[outcome("e1", "gone", "popular", ActivityType::Purchase)]);
        assert_eq!((s.lists, s.total.impressions, s.total.conversions), (0, 0, 1));
        assert_eq!((s.total.ctr, s.total.conversion_rate), (0.0, 0.0));
        assert_eq!(s.by_algorithm[0].counts.conversion_rate, 0.0);
    }
}
