use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const N_FEATURES: usize = 4;

/// Lists of 30 candidates. Relevance grows with f0 *times* (1 − f1) and with f3 being
/// missing, graded 0–3 with noise; f2 is noise. No single feature ranks well on its own.
fn synthetic(lists: usize, seed: u64) -> RankingSet {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = RankingSet::new(N_FEATURES);
    for _ in 0..lists {
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..30 {
            let f0: f32 = rng.random();
            let f1: f32 = rng.random();
            let f2: f32 = rng.random();
            let f3 = if rng.random::<f32>() < 0.15 { f32::NAN } else { rng.random() };
            let noise: f32 = rng.random();
            let s = f0 * (1.0 - f1) + if f3.is_nan() { 0.4 } else { 0.0 } + 0.15 * noise;
            let label = if s > 0.75 {
                3.0
            } else if s > 0.55 {
                2.0
            } else if s > 0.4 {
                1.0
            } else {
                0.0
            };
            features.extend([f0, f1, f2, f3]);
            labels.push(label);
        }
        set.push_list(&features, &labels).unwrap();
    }
    set
}

fn single_feature_ndcg(set: &RankingSet, f: usize, sign: f32) -> f64 {
    let scores: Vec<f32> =
        (0..set.n_rows()).map(|r| sign * set.row(r)[f]).map(|v| if v.is_nan() { 0.0 } else { v }).collect();
    set.mean_ndcg(&scores, 10)
}

#[test]
fn learns_an_interaction_and_a_missing_value_no_single_feature_ranks() {
    let (train, valid, test) = (synthetic(300, 1), synthetic(100, 2), synthetic(100, 3));
    let params = RankerParams { ndcg_at: 10, ..RankerParams::default() };
    let (ranker, report) = Ranker::train(&train, Some(&valid), &params).unwrap();
    let learned = test.mean_ndcg(&ranker.score_set(&test), 10);
    let best_single = (0..N_FEATURES)
        .flat_map(|f| [single_feature_ndcg(&test, f, 1.0), single_feature_ndcg(&test, f, -1.0)])
        .fold(0.0, f64::max);
    assert!(learned > 0.95, "learned ranker NDCG@10 {learned}");
    assert!(learned > best_single + 0.3, "learned {learned} vs best single feature {best_single}");
    // the noise feature earns the least
    let importance = ranker.importance();
    assert!(importance[2] < importance[0] && importance[2] < importance[1] && importance[2] < importance[3]);
    // early stopping kept the best validation round
    assert_eq!(report.trees_kept, ranker.n_trees());
    let best = report.validation_ndcg.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(report.trees_kept > 0, "the interaction needs trees");
    assert_eq!(report.validation_ndcg[report.trees_kept - 1], best);
    assert!(
        report.train_ndcg.last() > report.train_ndcg.first(),
        "{:?} {:?}",
        report.train_ndcg,
        report.validation_ndcg
    );
}

#[test]
fn training_is_deterministic_and_survives_a_round_trip() {
    let (train, valid) = (synthetic(60, 4), synthetic(20, 5));
    let params = RankerParams { trees: 40, ..RankerParams::default() };
    let (a, _) = Ranker::train(&train, Some(&valid), &params).unwrap();
    let (b, _) = Ranker::train(&train, Some(&valid), &params).unwrap();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: Ranker = serde_json::from_str(&json).unwrap();
    back.validate().unwrap();
    assert_eq!(back.score_set(&valid), a.score_set(&valid));
}

#[test]
fn whether_a_value_is_missing_is_a_split_of_its_own() {
    // one present value only: the rows are told apart by being missing or not
    let mut set = RankingSet::new(1);
    for _ in 0..20 {
        set.push_list(&[1.0, f32::NAN, 1.0, f32::NAN], &[0.0, 1.0, 0.0, 1.0]).unwrap();
    }
    let params = RankerParams { min_rows_in_leaf: 1, trees: 5, ..RankerParams::default() };
    let (ranker, _) = Ranker::train(&set, None, &params).unwrap();
    assert!(ranker.score(&[f32::NAN]) > ranker.score(&[1.0]));
    // the split sends every present value left, however large
    assert_eq!(ranker.score(&[1e30]), ranker.score(&[1.0]));
    let json = serde_json::to_string(&ranker).unwrap();
    assert_eq!(serde_json::from_str::<Ranker>(&json).unwrap(), ranker);
}

#[test]
fn validate_rejects_trees_that_would_read_out_of_bounds_or_loop() {
    let (ranker, _) =
        Ranker::train(&synthetic(40, 6), None, &RankerParams { trees: 3, ..Default::default() }).unwrap();
    assert!(ranker.trees.iter().any(|t| t.splits.len() > 1));
    let mut looping = ranker.clone();
    let t = looping.trees.iter_mut().find(|t| t.splits.len() > 1).unwrap();
    t.splits[1].left = 0;
    assert!(looping.validate().is_err());
    let mut wide = ranker.clone();
    wide.trees[0].splits[0].feature = N_FEATURES as u32;
    assert!(wide.validate().is_err());
    let mut short = ranker.clone();
    short.trees[0].leaves.pop();
    assert!(short.validate().is_err());
    let mut infinite = ranker.clone();
    infinite.trees[0].leaves[0] = f32::INFINITY;
    assert!(infinite.validate().is_err());
    let mut nan = ranker.clone();
    nan.trees[0].splits[0].threshold = f32::NAN;
    assert!(nan.validate().is_err());
    // leaves each finite but summing past what a score can hold
    let mut huge = ranker.clone();
    for t in &mut huge.trees {
        t.leaves.iter_mut().for_each(|v| *v = 1e30);
    }
    assert!(huge.validate().is_err());
    // a chain of 70 splits is deeper than a ranker may be
    let mut deep = ranker.clone();
    let chain = deep.trees.iter_mut().find(|t| !t.splits.is_empty()).unwrap();
    let template = chain.splits[0].clone();
    chain.splits = (0..70)
        .map(|i| tree::Split {
            left: if i + 1 < 70 { i + 1 } else { !0 },
            right: !(i + 1),
            ..template.clone()
        })
        .collect();
    chain.leaves = vec![0.0; 71];
    chain.splits[69].right = !70;
    assert_eq!(tree::depth(chain), 70);
    assert!(deep.validate().is_err());
    ranker.validate().unwrap();
}

#[test]
fn bad_lists_and_parameters_are_refused() {
    let mut set = RankingSet::new(2);
    assert!(set.push_list(&[1.0, 2.0, 3.0], &[1.0, 0.0]).is_err());
    assert!(set.push_list(&[1.0, f32::INFINITY], &[1.0]).is_err());
    assert!(set.push_list(&[1.0, 2.0], &[-1.0]).is_err());
    assert!(set.push_list(&[1.0, 2.0], &[f32::NAN]).is_err());
    assert_eq!(set.n_rows(), 0, "nothing half-stored");
    set.push_list(&[1.0, f32::NAN, 0.5, 0.5], &[1.0, 0.0]).unwrap();
    for params in [
        RankerParams { trees: 0, ..Default::default() },
        RankerParams { learning_rate: f32::NAN, ..Default::default() },
        RankerParams { max_leaves: 1, ..Default::default() },
        RankerParams { max_bins: 256, ..Default::default() },
        RankerParams { l2: 0.0, ..Default::default() },
        RankerParams { trees: 10_001, ..Default::default() },
    ] {
        assert!(Ranker::train(&set, None, &params).is_err());
    }
    let other = RankingSet::new(3);
    assert!(Ranker::train(&set, Some(&other), &RankerParams::default()).is_err());
}

#[test]
fn lists_without_a_difference_in_labels_train_to_a_constant() {
    let mut set = RankingSet::new(1);
    for _ in 0..10 {
        set.push_list(&[0.1, 0.2, 0.3], &[0.0, 0.0, 0.0]).unwrap();
    }
    let (ranker, report) = Ranker::train(&set, None, &RankerParams::default()).unwrap();
    assert_eq!(report.trees_kept, 1);
    assert_eq!(ranker.score(&[0.1]), ranker.score(&[0.3]));
}

#[test]
fn ndcg_per_list_keeps_list_order_and_skips_lists_without_a_relevant_row() {
    let mut set = RankingSet::new(1);
    set.push_list(&[0.0, 1.0], &[1.0, 0.0]).unwrap(); // relevant row first
    set.push_list(&[0.0, 1.0], &[0.0, 0.0]).unwrap(); // nothing relevant: skipped
    set.push_list(&[0.0, 1.0, 2.0], &[0.0, 0.0, 1.0]).unwrap(); // relevant row last
                                                                // scored by the feature: the first list ranks its relevant row second, the last first
    let scores = set.feature(0);
    let per_list = set.ndcg_per_list(&scores, 10);
    assert_eq!(per_list.len(), 2);
    assert!((per_list[0] - 1.0 / 3f64.log2()).abs() < 1e-12, "{per_list:?}");
    assert!((per_list[1] - 1.0).abs() < 1e-12, "{per_list:?}");
    assert!((set.mean_ndcg(&scores, 10) - (per_list[0] + per_list[1]) / 2.0).abs() < 1e-12);
}

/// Lists of 30 where feature 1 is a rank (1 first) that orders the rows exactly, missing for
/// rows no one ranked (all irrelevant), and feature 0 is noise.
fn ranked_by_a_rank(lists: usize, seed: u64) -> RankingSet {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = RankingSet::new(2);
    for _ in 0..lists {
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for rank in 1..=30 {
            let ranked = rank <= 24;
            let label = match rank {
                1..=3 => 3.0,
                4..=8 => 2.0,
                9..=15 => 1.0,
                _ => 0.0,
            };
            features.extend([rng.random::<f32>(), if ranked { rank as f32 } else { f32::NAN }]);
            labels.push(label);
        }
        // rows in a random order, so the lists' own order ranks nothing
        let mut rows: Vec<usize> = (0..30).collect();
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.random_range(0..=i));
        }
        let features: Vec<f32> = rows.iter().flat_map(|&r| [features[2 * r], features[2 * r + 1]]).collect();
        let labels: Vec<f32> = rows.iter().map(|&r| labels[r]).collect();
        set.push_list(&features, &labels).unwrap();
    }
    set
}

#[test]
fn trees_start_from_the_feature_that_ranks_best_and_add_nothing_to_a_perfect_one() {
    let (train, valid) = (ranked_by_a_rank(100, 6), ranked_by_a_rank(40, 7));
    let params = RankerParams { ndcg_at: 10, ..RankerParams::default() };
    let (ranker, report) = Ranker::train(&train, Some(&valid), &params).unwrap();
    let base = ranker.base().expect("feature 1 ranks better than the lists' order");
    assert_eq!(base.feature, 1);
    assert!(base.scale < 0.0, "a rank: low values first ({base:?})");
    assert_eq!(valid.mean_ndcg(&ranker.score_set(&valid), 10), 1.0);
    assert_eq!((report.trees_kept, ranker.n_trees()), (0, 0), "no tree beats a perfect start");
    // missing ranks below every present value the training lists held
    assert!(ranker.score(&[0.5, f32::NAN]) < ranker.score(&[0.5, 24.0]));
    assert!(ranker.score(&[0.5, 1.0]) > ranker.score(&[0.5, 2.0]));

    // without a base the trees have to learn the rank
    let (plain, _) =
        Ranker::train(&train, Some(&valid), &RankerParams { base: false, ..params.clone() }).unwrap();
    assert!(plain.base().is_none() && plain.n_trees() > 0);
}

#[test]
fn a_ranker_without_a_base_reads_as_before_and_a_bad_base_is_refused() {
    let (train, valid) = (synthetic(40, 8), synthetic(20, 9));
    let params = RankerParams { trees: 10, base: false, ..RankerParams::default() };
    let (plain, _) = Ranker::train(&train, Some(&valid), &params).unwrap();
    // the artefact of a ranker trained before bases existed has no such key
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("base").is_none(), "{json}");
    let back: Ranker = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.score_set(&valid), plain.score_set(&valid));

    let mut bad = json;
    for base in [
        serde_json::json!({"feature": N_FEATURES, "mean": 0.0, "scale": 1.0, "missing": -1.0}),
        serde_json::json!({"feature": 0, "mean": 0.0, "scale": 0.0, "missing": -1.0}),
    ] {
        bad["base"] = base;
        let ranker: Ranker = serde_json::from_value(bad.clone()).unwrap();
        assert!(ranker.validate().is_err(), "{bad}");
    }
}
