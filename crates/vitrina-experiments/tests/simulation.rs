//! Statistical acceptance tests: experiments run end to end on the simulated shop, whose
//! true CTRs are known exactly (see `vitrina_experiments::simulate`).
//!
//! Every run is seeded, so these tests are deterministic; the repeated runs make sure
//! they do not pass by one lucky seed. Measured rates are printed (`--nocapture`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::json;
use vitrina_experiments::attribution::AttributionMethod;
use vitrina_experiments::simulate::{
    required_impressions, run, sim_start, Shop, SimConfig, SimPolicy, SimRun,
};
use vitrina_experiments::{attribute, summarise, Comparison, Experiment, Results};

/// A: random lists, true CTR 5%. B: the same with every click 1.2× as likely, true CTR 6%.
const A: SimPolicy = SimPolicy::Random;
const B: SimPolicy = SimPolicy::Lift { factor: 1.2 };
const ALPHA: f64 = 0.05;
const POWER: f64 = 0.8;

fn shop() -> Shop {
    let shop = Shop::new(SimConfig::default());
    assert!((shop.true_ctr(&A) - 0.05).abs() < 1e-12 && (shop.true_ctr(&B) - 0.06).abs() < 1e-12);
    shop
}

fn experiment(mode: &str, seed: u64) -> Experiment {
    let spec = serde_json::from_value(json!({
        "name": "ranking", "mode": mode, "variants": [{"name": "A"}, {"name": "B"}]
    }))
    .unwrap();
    let mut e = Experiment::new(
        format!("exp-{seed}"),
        spec,
        format!("{:016x}", seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        sim_start(),
    )
    .unwrap();
    e.start(sim_start()).unwrap();
    e
}

/// Lists needed for `per_arm` item impressions in each of two equal arms.
fn lists_for(per_arm: u64, shop: &Shop) -> usize {
    (2 * per_arm).div_ceil(shop.config.list_len as u64) as usize
}

/// Bandit mode reallocates every this many lists (200 s of simulated traffic).
const REALLOC_EVERY: usize = 100;

fn simulate(
    shop: &Shop,
    mode: &str,
    policies: &[SimPolicy],
    lists: usize,
    seed: u64,
) -> (Experiment, SimRun, Results) {
    let mut e = experiment(mode, seed);
    let sim = run(shop, &mut e, policies, lists, REALLOC_EVERY, seed);
    let attributions = attribute(&sim.impressions, &sim.outcomes, e.attribution_window());
    let results = summarise(&e, &sim.impressions, &attributions);
    (e, sim, results)
}

fn b_vs_a(results: &Results) -> &Comparison {
    results.variants[1].vs_control.as_ref().expect("B is compared with the control A")
}

/// Criterion 1: a fixed 50/50 experiment with the impressions a power analysis asks for
/// finds B ahead with an interval that excludes zero, in about `POWER` of the runs.
#[test]
fn fixed_split_detects_the_better_variant() {
    let started = Instant::now();
    let shop = shop();
    let per_arm = required_impressions(0.05, 0.06, ALPHA, POWER);
    assert_eq!(per_arm, 8158);
    let lists = lists_for(per_arm, &shop);

    // One run shown in full (seed 4 is one where B is detected; the loop below shows it
    // is not a lucky exception).
    let (_, _, results) = simulate(&shop, "fixed", &[A, B], lists, 4);
    let (a, b) = (&results.variants[0].metrics, &results.variants[1].metrics);
    let vs = b_vs_a(&results);
    assert!(b.ctr.value > a.ctr.value, "{} vs {}", b.ctr.value, a.ctr.value);
    assert!(vs.difference.low > 0.0 && vs.significant && vs.probability_to_beat_control > 0.95, "{vs:?}");

    let seeds = 100;
    let detected = (100..100 + seeds)
        .filter(|&seed| b_vs_a(&simulate(&shop, "fixed", &[A, B], lists, seed).2).difference.low > 0.0)
        .count();
    let power = detected as f64 / seeds as f64;
    eprintln!(
        "power: B (6%) vs A (5%) detected in {detected}/{seeds} runs = {power:.2} with {per_arm} item impressions \
         per arm ({lists} lists; design power {POWER}) [{:.1?}]",
        started.elapsed()
    );
    assert!(power >= 0.7, "power {power}");
}

/// Criterion 2: the bandit, given the same number of lists, sends B most of the traffic
/// by the end: at least 80% in its final allocation and of the lists served in the last
/// 20% of the run.
#[test]
fn bandit_moves_traffic_to_the_better_variant() {
    let started = Instant::now();
    let shop = shop();
    let lists = lists_for(required_impressions(0.05, 0.06, ALPHA, POWER), &shop);
    let won = |e: &Experiment, sim: &SimRun| e.traffic[1] >= 0.8 && sim.share_last_20[1] >= 0.8;

    let (seeds, showcase) = (1..=20, 2);
    let mut wins = 0;
    for seed in seeds.clone() {
        let (e, sim, _) = simulate(&shop, "bandit", &[A, B], lists, seed);
        assert!(e.traffic.iter().all(|&t| t >= e.exploration_floor - 1e-12), "{:?}", e.traffic);
        assert_eq!(e.allocation_log.len(), 1 + sim.reallocations);
        if seed == showcase {
            eprintln!(
                "bandit (seed {seed}): final allocation {:.3?}, served in the last 20% {:.3?}, overall {:.3?}, \
                 {} reallocations",
                e.traffic, sim.share_last_20, sim.share, sim.reallocations
            );
            assert!(won(&e, &sim), "final allocation {:?}, last 20% {:?}", e.traffic, sim.share_last_20);
        }
        wins += usize::from(won(&e, &sim));
    }
    let runs = seeds.count();
    eprintln!("bandit: B had >= 80% (final and last 20%) in {wins}/{runs} runs [{:.1?}]", started.elapsed());
    assert!(wins as f64 >= 0.7 * runs as f64, "{wins}/{runs}");
}

/// Criterion 3: identical variants are declared different at about the nominal 5%.
#[test]
fn a_a_false_positive_rate_is_nominal() {
    let started = Instant::now();
    let shop = shop();
    let (runs, lists) = (300, 400);
    let (mut significant, mut false_winner, mut z_squares) = (0, 0, 0.0);
    for seed in 1000..1000 + runs {
        let (_, _, results) = simulate(&shop, "fixed", &[A, A], lists, seed);
        let vs = b_vs_a(&results);
        z_squares += vs.z_score * vs.z_score;
        if vs.significant {
            significant += 1;
            if vs.difference.value > 0.0 {
                false_winner += 1;
            }
        }
    }
    let fpr = significant as f64 / runs as f64;
    eprintln!(
        "A/A fixed mode: false-positive rate {significant}/{runs} = {fpr:.3} (nominal 0.05); \
         false-winner rate (B declared better) {false_winner}/{runs} = {:.3} (nominal 0.025); \
         sd of z {:.3} (1 if item impressions were independent); {lists} lists of 10 per run [{:.1?}]",
        false_winner as f64 / runs as f64,
        (z_squares / runs as f64).sqrt(),
        started.elapsed()
    );
    assert!(fpr <= 0.08, "false-positive rate {fpr}");
}

/// Criterion 4: attribution over a simulated bandit run is exact.
#[test]
fn attribution_matches_the_simulators_ground_truth() {
    let shop = shop();
    let (e, sim, results) = simulate(&shop, "bandit", &[A, B], 2000, 7);
    // The shop re-sends some events (same event id): they must not count again.
    let mut resent = sim.outcomes.clone();
    resent.extend(sim.outcomes.iter().step_by(7).cloned());
    let attributions = attribute(&sim.impressions, &resent, e.attribution_window());
    let by_event: HashMap<&str, _> = attributions.iter().map(|a| (a.event_id.as_str(), a)).collect();
    assert_eq!(by_event.len(), attributions.len(), "every outcome counted at most once");
    assert_eq!(attributions.len(), sim.outcomes.len());

    let shows: HashSet<(&str, &str, &str)> = sim
        .impressions
        .iter()
        .flat_map(|i| {
            i.items
                .iter()
                .map(move |it| (i.recommendation_id.as_str(), i.visitor.as_str(), it.product_id.as_str()))
        })
        .collect();
    let (mut with_id, mut by_window, mut window_truthful) = (0, 0, 0);
    for (o, truth) in sim.outcomes.iter().zip(&sim.truth) {
        let a = by_event.get(o.event_id.as_str()).unwrap_or_else(|| panic!("{o:?} not attributed"));
        let got = (a.recommendation_id.as_str(), a.variant.as_deref(), a.source.as_str(), a.position);
        let want = (
            truth.recommendation_id.as_str(),
            Some(truth.variant.as_str()),
            truth.source.as_str(),
            truth.position,
        );
        if o.recommendation_id.is_some() {
            with_id += 1;
            assert_eq!(a.method, AttributionMethod::RecommendationId);
            assert_eq!(got, want, "{o:?}");
        } else {
            by_window += 1;
            assert_eq!(a.method, AttributionMethod::Window);
            assert!(shows.contains(&(
                a.recommendation_id.as_str(),
                o.visitor.as_str(),
                o.product_id.as_str()
            )));
            window_truthful += usize::from(got == want);
        }
    }
    eprintln!(
        "attribution: {with_id} outcomes by recommendation id (all exact), {by_window} by window \
         ({window_truthful} to the true list)"
    );
    assert!(with_id > 1000 && by_window > 300);
    // Every attributed click shows up once in the results.
    let clicks: u64 = results.variants.iter().map(|v| v.metrics.clicks).sum();
    let true_clicks =
        sim.outcomes.iter().filter(|o| o.kind == vitrina_experiments::OutcomeKind::Click).count();
    assert_eq!(clicks as usize, true_clicks);
}
