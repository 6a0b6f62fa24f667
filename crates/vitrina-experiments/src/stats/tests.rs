use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::attribution::{AttributionMethod, ShownItem};

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn erfc_and_normal_cdf_match_reference_values() {
    // Reference values from a libm erfc (CPython's math.erfc).
    let cases = [
        (0.0, 1.0),
        (0.1, 0.8875370839817152),
        (0.5, 0.4795001221869535),
        (1.0, 0.15729920705028513),
        (2.0, 0.004677734981047265),
        (2.49, 0.000429287867733913),
        (2.5, 0.0004069520174449589),
        (3.0, 2.2090496998585438e-05),
        (5.0, 1.5374597944280351e-12),
        (10.0, 2.088487583762545e-45),
    ];
    for (x, want) in cases {
        let got = erfc(x);
        assert!(((got - want) / want).abs() < 1e-12, "erfc({x}) = {got}, want {want}");
        close(erfc(-x), 2.0 - want, 1e-15);
    }
    close(normal_cdf(0.0), 0.5, 1e-15);
    close(normal_cdf(1.0), 0.8413447460685429, 1e-15);
    close(normal_cdf(-3.0) / 0.0013498980316300957, 1.0, 1e-12);
    close(normal_cdf(Z95), 0.975, 1e-15);
    close(normal_quantile(0.975), Z95, 1e-12);
    close(normal_quantile(0.8), 0.8416212335729143, 1e-12);
    assert!(normal_quantile(0.0).is_infinite() && normal_quantile(f64::NAN).is_nan());
}

#[test]
fn wilson_interval_of_10_in_100() {
    let r = wilson(10, 100);
    close(r.value, 0.1, 1e-12);
    close(r.low, 0.0552291370606751, 1e-9);
    close(r.high, 0.17436566150491345, 1e-9);
    assert_eq!(wilson(0, 0), Rate::default());
    assert_eq!(wilson(0, 10).low, 0.0);
    assert_eq!(wilson(10, 10).high, 1.0);
}

#[test]
fn two_proportion_z_test_120_vs_100_of_1000() {
    let c = compare_proportions(Goal::Ctr, 120, 1000, 100, 1000);
    close(c.z_score, 1.429300849823232, 1e-9);
    close(c.p_value, 0.152917781863946, 1e-9);
    assert!(!c.significant);
    close(c.difference.value, 0.02, 1e-12);
    close(c.relative_lift, 0.2, 1e-12);
    assert!(c.difference.low < 0.0 && c.difference.high > 0.04);
    // P(θv > θc) ≈ Φ(0.02 / 0.01402) ≈ 0.92 under the normal approximation.
    close(c.probability_to_beat_control, 0.92, 0.02);
    assert_eq!(c, compare_proportions(Goal::Ctr, 120, 1000, 100, 1000), "fixed seed");
    let strong = compare_proportions(Goal::Ctr, 200, 1000, 100, 1000);
    assert!(strong.significant && strong.difference.low > 0.0 && strong.probability_to_beat_control > 0.999);
}

#[test]
fn revenue_per_mille_interval() {
    // 1000 items, 10 purchases of 50: mean 0.5, sample variance 24750 / 999.
    let (r, var) = revenue_interval(500.0, 10.0 * 50.0 * 50.0, 1000);
    close(var, 24.774774774774773, 1e-9);
    close(r.value, 500.0, 1e-9);
    close(r.low, 191.5015768447611, 1e-6);
    close(r.high, 808.4984231552389, 1e-6);
    let c = compare_means(Goal::RevenuePerMille, (500.0, 25_000.0, 1000), (0.0, 0.0, 1000));
    close(c.difference.value, 500.0, 1e-9);
    close(c.difference.low, r.low, 1e-6);
    assert!(c.significant && c.probability_to_beat_control > 0.99);
}

#[test]
fn no_data_gives_zeros_never_nan() {
    let c = compare_proportions(Goal::Ctr, 0, 0, 0, 0);
    assert_eq!((c.z_score, c.p_value, c.relative_lift, c.significant), (0.0, 1.0, 0.0, false));
    let m = compare_means(Goal::RevenuePerMille, (0.0, 0.0, 0), (0.0, 0.0, 0));
    assert_eq!((m.z_score, m.p_value, m.probability_to_beat_control), (0.0, 1.0, 0.5));
    let e = experiment();
    let r = summarise(&e, &[], &[]);
    let text = serde_json::to_string(&r).unwrap();
    // serde_json writes NaN as null: the only null is the control's own comparison.
    assert!(!text.replace("\"vsControl\":null", "").contains("null"), "{text}");
    assert_eq!(r.variants[0].metrics, Metrics::default());
}

fn t0() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn experiment() -> Experiment {
    let spec =
        serde_json::from_value(json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}]})).unwrap();
    Experiment::new("exp", spec, "salt", t0()).unwrap()
}

fn list(id: &str, variant: &str, experiment: &str) -> Impression {
    let item = |p: &str, s: &str, k| ShownItem { product_id: p.into(), source: s.into(), position: k };
    Impression {
        recommendation_id: id.into(),
        visitor: "u".into(),
        experiment: Some(experiment.into()),
        variant: Some(variant.into()),
        at: t0(),
        items: vec![item("p1", "cf", 1), item("p2", "trending", 2)],
    }
}

fn attribution(event: &str, rec: &str, product: &str, kind: OutcomeKind, value: f64) -> Attribution {
    let (source, position) = if product == "p1" { ("cf", 1) } else { ("trending", 2) };
    Attribution {
        event_id: event.into(),
        recommendation_id: rec.into(),
        experiment: Some("exp".into()),
        variant: None,
        source: source.into(),
        position,
        kind,
        value,
        product_id: product.into(),
        method: AttributionMethod::RecommendationId,
    }
}

#[test]
fn summarise_counts_items_lists_sources_and_positions() {
    let e = experiment();
    let imps =
        [list("r1", "A", "exp"), list("r2", "A", "exp"), list("r3", "B", "exp"), list("r4", "B", "other")];
    let attrs = [
        attribution("e1", "r1", "p1", OutcomeKind::Click, 0.0),
        attribution("e2", "r1", "p1", OutcomeKind::Click, 0.0), // same item clicked twice
        attribution("e3", "r3", "p2", OutcomeKind::Click, 0.0),
        attribution("e4", "r3", "p2", OutcomeKind::AddToCart, 0.0),
        attribution("e5", "r3", "p2", OutcomeKind::Purchase, 30.0),
        attribution("e6", "r4", "p1", OutcomeKind::Click, 0.0), // list of another experiment
    ];
    let r = summarise(&e, &imps, &attrs);
    assert_eq!((r.experiment_id.as_str(), r.control.as_str(), r.method.as_str()), ("exp", "A", METHOD));
    let (a, b) = (&r.variants[0], &r.variants[1]);
    assert_eq!((a.lists, a.metrics.impressions, a.metrics.clicks), (2, 4, 1));
    assert_eq!((b.lists, b.metrics.impressions, b.metrics.clicks, b.metrics.add_to_carts), (1, 2, 1, 1));
    assert_eq!((b.metrics.purchases, b.metrics.revenue), (1, 30.0));
    close(b.metrics.revenue_per_mille.value, 15_000.0, 1e-9);
    close(a.metrics.ctr.value, 0.25, 1e-12);
    assert_eq!(a.by_source.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["cf", "trending"]);
    assert_eq!((a.by_source[0].metrics.impressions, a.by_source[0].metrics.clicks), (2, 1));
    assert_eq!(b.by_position[1].key, "2");
    assert_eq!(b.by_position[1].metrics.purchases, 1);
    assert!(a.vs_control.is_none());
    let vs = b.vs_control.as_ref().unwrap();
    assert_eq!(vs.metric, Goal::Ctr);
    close(vs.difference.value, 0.25, 1e-12);
    assert_eq!((a.traffic, b.traffic), (0.5, 0.5));
    let counts = summarise_counts(&e, &imps, &attrs);
    assert!(counts.variants[1].vs_control.is_none());
    assert_eq!(counts.variants[1].metrics, b.metrics);
}

#[test]
fn many_positions_sort_numerically() {
    let e = experiment();
    let mut imp = list("r1", "A", "exp");
    imp.items = (1..=12)
        .map(|k| ShownItem { product_id: format!("p{k}"), source: "cf".into(), position: k })
        .collect();
    let r = summarise(&e, &[imp.clone(), Impression { recommendation_id: "r2".into(), ..imp }], &[]);
    let keys: Vec<&str> = r.variants[0].by_position.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys[..3], ["1", "2", "3"]);
    assert_eq!(keys.len(), 12);
}
