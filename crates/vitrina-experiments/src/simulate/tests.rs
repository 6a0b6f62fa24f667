use serde_json::json;

use super::*;
use crate::attribution::AttributionMethod;
use crate::stats::wilson;

fn experiment(mode: &str, seed: u64) -> Experiment {
    let spec = serde_json::from_value(json!({
        "name": "sim", "mode": mode, "variants": [{"name": "A"}, {"name": "B"}]
    }))
    .unwrap();
    let mut e = Experiment::new(format!("exp-{seed}"), spec, format!("salt-{seed}"), sim_start()).unwrap();
    e.start(sim_start()).unwrap();
    e
}

#[test]
fn required_impressions_matches_the_textbook_formula() {
    // Reference: the same formula with Python's statistics.NormalDist.
    assert_eq!(required_impressions(0.05, 0.06, 0.05, 0.8), 8158);
    assert_eq!(required_impressions(0.10, 0.12, 0.05, 0.8), 3841);
    assert_eq!(required_impressions(0.05, 0.05, 0.05, 0.8), u64::MAX);
    assert_eq!(required_impressions(0.0, 0.05, 0.05, 0.8), u64::MAX);
}

#[test]
fn calibrated_and_lift_is_exact() {
    let shop = Shop::new(SimConfig::default());
    assert!((shop.true_ctr(&SimPolicy::Random) - 0.05).abs() < 1e-12);
    assert!((shop.true_ctr(&SimPolicy::Lift { factor: 1.2 }) - 0.06).abs() < 1e-12);
    let top = shop.true_ctr(&SimPolicy::TopQuality { pool: 100 });
    assert!(top > 0.07, "the 100 best of 500 products click more: {top}");
    assert!(shop.max_click_probability(&SimPolicy::Lift { factor: 1.2 }) < 1.0);
}

#[test]
fn simulated_ctr_matches_the_true_ctr() {
    let shop = Shop::new(SimConfig { products: 200, ..SimConfig::default() });
    let policies = [SimPolicy::Random, SimPolicy::TopQuality { pool: 40 }];
    let mut e = experiment("fixed", 3);
    let run = run(&shop, &mut e, &policies, 6000, 0, 3);
    for (v, policy) in policies.iter().enumerate() {
        let name = e.variants[v].name.as_str();
        let shown: u64 = run
            .impressions
            .iter()
            .filter(|i| i.variant.as_deref() == Some(name))
            .map(|i| i.items.len() as u64)
            .sum();
        let clicks = run
            .truth
            .iter()
            .zip(&run.outcomes)
            .filter(|(t, o)| t.variant == name && o.kind == OutcomeKind::Click)
            .count();
        // A 99.9% Wilson-like band: 95% interval widened by 3.29 / 1.96.
        let r = wilson(clicks as u64, shown);
        let slack = (r.high - r.low) / 2.0 * (3.29 / 1.96);
        let truth = shop.true_ctr(policy);
        assert!((r.value - truth).abs() < slack, "{policy:?}: simulated {} vs true {truth}", r.value);
    }
}

#[test]
fn runs_are_deterministic_and_well_formed() {
    let shop = Shop::new(SimConfig { visitors: 500, ..SimConfig::default() });
    let policies = [SimPolicy::Random, SimPolicy::Random];
    let (mut e1, mut e2) = (experiment("fixed", 9), experiment("fixed", 9));
    let (a, b) = (run(&shop, &mut e1, &policies, 300, 0, 9), run(&shop, &mut e2, &policies, 300, 0, 9));
    assert_eq!((a.impressions.clone(), a.outcomes.clone()), (b.impressions, b.outcomes));
    assert_eq!(a.served.iter().sum::<u64>(), 300);
    assert_eq!(a.served_last_20.iter().sum::<u64>(), 60);
    assert_eq!(a.outcomes.len(), a.truth.len());
    let without_id = a.outcomes.iter().filter(|o| o.recommendation_id.is_none()).count() as f64;
    assert!((without_id / a.outcomes.len() as f64 - WITHOUT_RECOMMENDATION_ID).abs() < 0.1);
    for imp in &a.impressions {
        let positions: Vec<u32> = imp.items.iter().map(|i| i.position).collect();
        assert_eq!(positions, (1..=10).collect::<Vec<u32>>());
        // Sticky: a visitor's lists all carry the variant of their bucket.
        assert_eq!(imp.variant.as_deref(), Some(e1.variant_for(&imp.visitor).name.as_str()));
    }
    let attributed = attribute(&a.impressions, &a.outcomes, e1.attribution_window());
    assert!(attributed.iter().any(|x| x.method == AttributionMethod::Window));
}

#[test]
fn bandit_runs_reallocate() {
    let shop = Shop::new(SimConfig::default());
    let mut e = experiment("bandit", 4);
    let run = run(&shop, &mut e, &[SimPolicy::Random, SimPolicy::Lift { factor: 2.0 }], 1000, 100, 4);
    assert!(run.reallocations > 0);
    assert_eq!(e.allocation_log.len(), 1 + run.reallocations);
    assert!(e.traffic[1] > 0.5, "{:?}", e.traffic);
}
