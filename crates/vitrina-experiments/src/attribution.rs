//! Exact attribution of clicks, add-to-carts and purchases to the list that caused them.
//!
//! An outcome is attributed to at most one shown item:
//! 1. if it carries a `recommendation_id` of an impression **of the same visitor** that
//!    showed the product, to that impression (no time window: the shop said so);
//! 2. otherwise (no id, an unknown id, another visitor's id, or a list without the
//!    product) to the latest impression of that visitor showing the product with
//!    `impression.at <= outcome.at <= impression.at + window`;
//! 3. otherwise it is not attributed.
//!
//! Event ids are deduplicated: only the first outcome with a given `event_id` is
//! considered. Views are not outcomes ([`OutcomeKind`] has no such kind).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// One served list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Impression {
    pub recommendation_id: String,
    pub visitor: String,
    pub experiment: Option<String>,
    pub variant: Option<String>,
    pub at: DateTime<Utc>,
    pub items: Vec<ShownItem>,
}

/// One item of a served list: which candidate source proposed it and where it was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShownItem {
    pub product_id: String,
    pub source: String,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Click,
    AddToCart,
    Purchase,
}

/// Something a visitor did that a list may have caused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub event_id: String,
    pub visitor: String,
    pub kind: OutcomeKind,
    pub product_id: String,
    pub recommendation_id: Option<String>,
    /// Revenue for purchases, otherwise 0.
    pub value: f64,
    pub at: DateTime<Utc>,
}

/// How an outcome found its impression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionMethod {
    RecommendationId,
    Window,
}

/// An outcome tied to the shown item that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    pub event_id: String,
    pub recommendation_id: String,
    pub experiment: Option<String>,
    pub variant: Option<String>,
    pub source: String,
    pub position: u32,
    pub kind: OutcomeKind,
    pub value: f64,
    pub product_id: String,
    pub method: AttributionMethod,
}

/// Attributes `outcomes` to `impressions` (see the module docs), in outcome order.
///
/// Cost: one pass over the impressions to index them by recommendation id, and a second
/// pass over their items that indexes only the `(visitor, product)` pairs some outcome
/// needs a window match for; so memory grows with the outcomes, not with every shown item.
pub fn attribute(impressions: &[Impression], outcomes: &[Outcome], window: Duration) -> Vec<Attribution> {
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(impressions.len());
    for (i, imp) in impressions.iter().enumerate() {
        by_id.entry(imp.recommendation_id.as_str()).or_insert(i);
    }

    let mut seen: HashSet<&str> = HashSet::with_capacity(outcomes.len());
    // Per outcome: the (impression, item) it is attributed to, if found yet.
    let mut found: Vec<Option<(usize, usize, AttributionMethod)>> = Vec::with_capacity(outcomes.len());
    let mut pending: ByVisitorProduct = HashMap::new();
    for o in outcomes {
        if !seen.insert(o.event_id.as_str()) {
            found.push(None);
            continue;
        }
        let hit = o
            .recommendation_id
            .as_deref()
            .and_then(|id| by_id.get(id))
            .map(|&i| (i, &impressions[i]))
            .filter(|(_, imp)| imp.visitor == o.visitor)
            .and_then(|(i, imp)| {
                item_index(imp, &o.product_id).map(|j| (i, j, AttributionMethod::RecommendationId))
            });
        if hit.is_none() {
            pending.entry((o.visitor.as_str(), o.product_id.as_str())).or_default();
        }
        found.push(hit);
    }

    if !pending.is_empty() {
        for (i, imp) in impressions.iter().enumerate() {
            for (j, item) in imp.items.iter().enumerate() {
                if let Some(list) = pending.get_mut(&(imp.visitor.as_str(), item.product_id.as_str())) {
                    // A product listed twice in one list counts at its first slot.
                    if list.last().is_none_or(|&(_, last, _)| last != i) {
                        list.push((imp.at, i, j));
                    }
                }
            }
        }
        // Stable: among impressions at the same instant, the later one in input wins.
        for list in pending.values_mut() {
            list.sort_by_key(|&(at, _, _)| at);
        }
    }

    let mut seen: HashSet<&str> = HashSet::with_capacity(outcomes.len());
    let mut out = Vec::new();
    for (o, hit) in outcomes.iter().zip(found) {
        if !seen.insert(o.event_id.as_str()) {
            continue;
        }
        let hit = hit.or_else(|| {
            let list = pending.get(&(o.visitor.as_str(), o.product_id.as_str()))?;
            let before = list.partition_point(|&(at, _, _)| at <= o.at);
            let &(at, i, j) = list[..before].last()?;
            (o.at - at <= window).then_some((i, j, AttributionMethod::Window))
        });
        if let Some((i, j, method)) = hit {
            let (imp, item) = (&impressions[i], &impressions[i].items[j]);
            out.push(Attribution {
                event_id: o.event_id.clone(),
                recommendation_id: imp.recommendation_id.clone(),
                experiment: imp.experiment.clone(),
                variant: imp.variant.clone(),
                source: item.source.clone(),
                position: item.position,
                kind: o.kind,
                value: o.value,
                product_id: o.product_id.clone(),
                method,
            });
        }
    }
    out
}

/// Per (visitor, product) an outcome needs, the (time, impression, item) that showed it.
type ByVisitorProduct<'a> = HashMap<(&'a str, &'a str), Vec<(DateTime<Utc>, usize, usize)>>;

fn item_index(imp: &Impression, product: &str) -> Option<usize> {
    imp.items.iter().position(|it| it.product_id == product)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        "2025-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
    }

    fn imp(id: &str, visitor: &str, variant: &str, minute: i64, products: &[&str]) -> Impression {
        Impression {
            recommendation_id: id.into(),
            visitor: visitor.into(),
            experiment: Some("exp".into()),
            variant: Some(variant.into()),
            at: t(minute),
            items: products
                .iter()
                .enumerate()
                .map(|(k, p)| ShownItem {
                    product_id: (*p).into(),
                    source: format!("src{k}"),
                    position: k as u32 + 1,
                })
                .collect(),
        }
    }

    fn click(event: &str, visitor: &str, product: &str, rec: Option<&str>, minute: i64) -> Outcome {
        Outcome {
            event_id: event.into(),
            visitor: visitor.into(),
            kind: OutcomeKind::Click,
            product_id: product.into(),
            recommendation_id: rec.map(Into::into),
            value: 0.0,
            at: t(minute),
        }
    }

    fn run(imps: &[Impression], outs: &[Outcome]) -> Vec<(String, String, u32, AttributionMethod)> {
        attribute(imps, outs, Duration::hours(24))
            .into_iter()
            .map(|a| (a.event_id, a.recommendation_id, a.position, a.method))
            .collect()
    }

    fn one(
        event: &str,
        rec: &str,
        position: u32,
        m: AttributionMethod,
    ) -> Vec<(String, String, u32, AttributionMethod)> {
        vec![(event.into(), rec.into(), position, m)]
    }

    #[test]
    fn by_recommendation_id_even_when_an_older_list_and_outside_the_window() {
        let imps = [imp("r1", "u", "A", 0, &["p1", "p2"]), imp("r2", "u", "B", 10, &["p2"])];
        let a = run(&imps, &[click("e1", "u", "p2", Some("r1"), 3000)]);
        assert_eq!(a, one("e1", "r1", 2, AttributionMethod::RecommendationId));
    }

    #[test]
    fn by_window_and_the_latest_list_wins() {
        let imps = [
            imp("r1", "u", "A", 0, &["p1", "p2"]),
            imp("r2", "u", "B", 10, &["p3", "p2"]),
            imp("r3", "u", "B", 30, &["p2"]),
        ];
        let a = run(&imps, &[click("e1", "u", "p2", None, 20)]);
        assert_eq!(a, one("e1", "r2", 2, AttributionMethod::Window));
        let full = attribute(&imps, &[click("e1", "u", "p2", None, 20)], Duration::hours(1));
        assert_eq!((full[0].variant.as_deref(), full[0].source.as_str()), (Some("B"), "src1"));
    }

    #[test]
    fn outside_the_window_is_not_attributed() {
        let imps = [imp("r1", "u", "A", 0, &["p1"])];
        assert!(run(&imps, &[click("e1", "u", "p1", None, 24 * 60 + 1)]).is_empty());
        assert_eq!(run(&imps, &[click("e1", "u", "p1", None, 24 * 60)]).len(), 1);
        // Before the list was shown: not caused by it.
        assert!(run(&imps, &[click("e1", "u", "p1", None, -1)]).is_empty());
    }

    #[test]
    fn a_product_the_list_did_not_show_is_not_attributed() {
        let imps = [imp("r1", "u", "A", 0, &["p1"])];
        assert!(run(&imps, &[click("e1", "u", "p9", Some("r1"), 1)]).is_empty());
        assert!(run(&imps, &[click("e2", "u", "p9", None, 1)]).is_empty());
    }

    #[test]
    fn unknown_or_mismatched_id_falls_back_to_the_window() {
        let imps = [imp("r1", "u", "A", 0, &["p1"]), imp("r2", "u", "B", 5, &["p2"])];
        let a =
            run(&imps, &[click("e1", "u", "p1", Some("nope"), 10), click("e2", "u", "p1", Some("r2"), 10)]);
        assert_eq!(a[0], ("e1".into(), "r1".into(), 1, AttributionMethod::Window));
        assert_eq!(a[1], ("e2".into(), "r1".into(), 1, AttributionMethod::Window));
    }

    #[test]
    fn another_visitors_recommendation_id_is_not_used() {
        let imps = [imp("r1", "other", "A", 0, &["p1"])];
        assert!(run(&imps, &[click("e1", "u", "p1", Some("r1"), 1)]).is_empty());
        let mine = [imps[0].clone(), imp("r2", "u", "B", 0, &["p1"])];
        assert_eq!(
            run(&mine, &[click("e1", "u", "p1", Some("r1"), 1)]),
            one("e1", "r2", 1, AttributionMethod::Window)
        );
    }

    #[test]
    fn duplicate_event_ids_count_once() {
        let imps = [imp("r1", "u", "A", 0, &["p1"])];
        let e = click("e1", "u", "p1", Some("r1"), 1);
        let a = run(&imps, &[e.clone(), e.clone(), click("e1", "u", "p1", None, 2)]);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn purchases_keep_their_value_and_kind() {
        let imps = [imp("r1", "u", "A", 0, &["p1"])];
        let mut p = click("e1", "u", "p1", None, 5);
        (p.kind, p.value) = (OutcomeKind::Purchase, 42.5);
        let a = attribute(&imps, &[p], Duration::hours(1));
        assert_eq!(
            (a[0].kind, a[0].value, a[0].experiment.as_deref()),
            (OutcomeKind::Purchase, 42.5, Some("exp"))
        );
    }

    #[test]
    fn views_are_not_outcomes() {
        for kind in ["click", "add_to_cart", "purchase"] {
            assert!(serde_json::from_str::<OutcomeKind>(&format!("\"{kind}\"")).is_ok());
        }
        assert!(serde_json::from_str::<OutcomeKind>("\"view\"").is_err());
    }
}
