//! The learned ranker in the serving path: it orders the candidates when the model has one
//! and the config asks for it, the blend stays as the fallback, and it travels in the bundle.

use std::sync::Arc;

use vitrina_algo::ltr::{Ranker, RankerParams, RankingSet};
use vitrina_core::{ActivityType, ProductId};

use crate::{
    bundle::ModelBundle,
    config::{RankerChoice, RankingConfig},
    features,
    model::PreparedModel,
    tests::{ev, pid, req, shop, trained, uid},
    Engine, Filters,
};

/// A ranker that learnt to put the blend's *worst* pooled candidate first: trained on the
/// visitor's own pool, graded by reversed blend order.
fn contrarian(engine: &Engine, config: &RankingConfig) -> Ranker {
    let pool = engine.candidate_features(&engine.model(), config, &uid("v"), &req(3, &Filters::default()));
    assert!(pool.len() >= 4, "{} candidates", pool.len());
    let blend = features::NAMES.iter().position(|n| *n == "blend").unwrap();
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| pool[a].1[blend].total_cmp(&pool[b].1[blend]));
    let mut labels = vec![0f32; pool.len()];
    labels[order[0]] = 3.0;
    labels[order[1]] = 1.0;
    let features: Vec<f32> = pool.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let mut set = RankingSet::new(features::N);
    for _ in 0..30 {
        set.push_list(&features, &labels).unwrap();
    }
    let params = RankerParams { min_rows_in_leaf: 1, trees: 50, ..RankerParams::default() };
    Ranker::train(&set, None, &params).unwrap().0
}

fn ids(list: &[vitrina_core::recommend::Recommended]) -> Vec<ProductId> {
    list.iter().map(|r| r.product.id.clone()).collect()
}

#[test]
fn a_learned_ranker_orders_the_list_and_blend_ignores_it() {
    let (products, mut log) = shop();
    log.push(ev(1000, "v", ActivityType::View, "p0"));
    let config = RankingConfig { exploration: 0.0, ..RankingConfig::default() };
    let engine = trained(products, &log, config.clone());
    let blend_list = engine.recommend(&uid("v"), &req(3, &Filters::default()));
    // without a ranker in the model, `learned` falls back to the blend
    assert_eq!(config.ranker, RankerChoice::Learned);
    let ranker = contrarian(&engine, &config);
    let pool = engine.candidate_features(&engine.model(), &config, &uid("v"), &req(3, &Filters::default()));
    let worst_by_blend = pool.last().unwrap().0.clone();
    let mut bundle = ModelBundle::clone(&engine.model().bundle);
    bundle.ranker = Some(ranker);
    engine.activate(PreparedModel::new("v2", Arc::new(bundle)));

    let learned = engine.recommend(&uid("v"), &req(3, &Filters::default()));
    assert_eq!(
        learned[0].product.id,
        worst_by_blend,
        "learned {:?} blend {:?}",
        ids(&learned),
        ids(&blend_list)
    );
    assert_ne!(ids(&learned), ids(&blend_list));
    assert!(learned.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(learned.iter().all(|r| r.score > 0.0 && r.score < 1.0));
    // seen items stay out whatever orders the list
    assert!(learned.iter().all(|r| r.product.id != pid("p0")));
    // a re-ranked head of one: the blend's best, then the rest of its candidates in its
    // order (not popularity fill), so the list is the blend's
    let shallow = RankingConfig { rerank_depth: 1, ..config.clone() };
    let head_only = engine.recommend_with(&engine.model(), &shallow, &uid("v"), &req(3, &Filters::default()));
    assert_eq!(ids(&head_only), ids(&blend_list));
    // the blend, asked for by name, ignores the ranker
    let blend = RankingConfig { ranker: RankerChoice::Blend, ..config };
    let again = engine.recommend_with(&engine.model(), &blend, &uid("v"), &req(3, &Filters::default()));
    assert_eq!(ids(&again), ids(&blend_list));
}

#[test]
fn the_ranker_travels_in_the_bundle_and_one_of_other_features_is_left_out() {
    let (products, log) = shop();
    let engine = trained(products, &log, RankingConfig::default());
    let mut bundle = ModelBundle::clone(&engine.model().bundle);
    let mut set = RankingSet::new(features::N);
    let rows: Vec<f32> = (0..4 * features::N).map(|i| (i % 7) as f32).collect();
    for _ in 0..10 {
        set.push_list(&rows, &[1.0, 0.0, 2.0, 0.0]).unwrap();
    }
    let params = RankerParams { min_rows_in_leaf: 1, trees: 5, ..RankerParams::default() };
    bundle.ranker = Some(Ranker::train(&set, None, &params).unwrap().0);
    let shown = vitrina_core::ports::Exposures {
        days: 3,
        products: vec![(
            pid("p1"),
            vitrina_core::ports::Exposure { impressions: 40, clicks: 3, ..Default::default() },
        )],
    };
    bundle.engagement = crate::engagement::Engagement::new((10, 38), &shown, &engine.products());
    assert!(bundle.engagement.is_some());
    let mut bytes = Vec::new();
    bundle.write(&mut bytes).unwrap();
    assert_eq!(ModelBundle::read(&bytes[..]).unwrap(), bundle);

    // a bundle whose ranker names other features (a later build's) loads without it
    let at = bytes
        .windows(16)
        .position(|w| w == b"\"covisit_recent\"")
        .expect("the feature names are in the header");
    let mut other = bytes.clone();
    other[at + 14] = b'T';
    let n = other.len();
    let crc = crc32fast::hash(&other[8..n - 4]);
    other[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let read = ModelBundle::read(&other[..]).unwrap();
    assert_eq!(read.ranker, None);
    assert_eq!(read.als, bundle.als);
}

#[test]
fn features_mark_what_a_source_did_not_propose_as_missing_and_add_up() {
    let (products, mut log) = shop();
    // three events on two items, the last an hour before the request
    for (seq, p) in [(938, "p0"), (939, "p1"), (940, "p0")] {
        log.push(ev(seq, "v", ActivityType::View, p));
    }
    let config = RankingConfig::default();
    let engine = trained(products, &log, config.clone());
    let pool = engine.candidate_features(&engine.model(), &config, &uid("v"), &req(3, &Filters::default()));
    assert!(!pool.is_empty());
    let at = |name: &str| features::NAMES.iter().position(|n| *n == name).unwrap();
    let weights = config.weights.array();
    for (id, f) in &pool {
        let mut proposed = 0.0;
        let mut blend = 0.0;
        for (s, source) in vitrina_core::recommend::Source::ALL.iter().enumerate() {
            let (score, rank) = (f[at(&format!("score.{source}"))], f[at(&format!("rank.{source}"))]);
            assert_eq!(score.is_nan(), rank.is_nan(), "{id}: a source's score and rank are missing together");
            if !score.is_nan() {
                assert!(score > 0.0 && score <= 1.0 && rank >= 0.0, "{id}: {score} {rank}");
                proposed += 1.0;
                blend += score * weights[s];
            }
        }
        assert_eq!(f[at("sources")], proposed);
        assert!((f[at("blend")] - blend).abs() < 1e-5);
        assert!(f[at("category_affinity")] >= 0.0 && f[at("category_affinity")] <= 1.0);
        assert_eq!((f[at("visitor_events")], f[at("visitor_items")]), (3.0, 2.0));
        assert_eq!(f[at("hours_since_last_event")], 1.0);
        assert!((0.0..=1.0).contains(&f[at("popularity.trained")]));
    }
    // the visitor's categories and prices: p0 (phones, 100.00) twice, p1 (laptops, 200.00)
    // once; p{i} is priced 100 × (i + 1) in ["phones", "laptops", "audio"][i % 3]
    let mean_log_price = (100f32.ln() + 200f32.ln()) / 2.0;
    let mut by_category = [Vec::new(), Vec::new(), Vec::new()];
    for (id, f) in &pool {
        let i: usize = id.as_str()[1..].parse().unwrap();
        let price = 100.0 * (i + 1) as f32;
        assert!((f[at("log_price_vs_visitor")] - (price.ln() - mean_log_price)).abs() < 1e-4, "{id}");
        by_category[i % 3].push(f[at("category_affinity")]);
    }
    let [phones, laptops, audio] = by_category;
    assert!(!phones.is_empty() && !laptops.is_empty() && !audio.is_empty(), "{pool:?}");
    let total: f32 = phones[0] + laptops[0];
    assert!((total - 1.0).abs() < 1e-5 && phones[0] > laptops[0], "{phones:?} {laptops:?}");
    assert!(phones.iter().all(|&a| a == phones[0]) && laptops.iter().all(|&a| a == laptops[0]));
    assert!(audio.iter().all(|&a| a == 0.0), "{audio:?}");
    // the pool is best-first by the blend and holds no seen item
    assert!(pool.windows(2).all(|w| w[0].1[at("blend")] >= w[1].1[at("blend")]));
    assert!(pool.iter().all(|(id, _)| *id != pid("p0") && *id != pid("p1")));
}
