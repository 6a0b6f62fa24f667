//! The serving engine scored offline (`vitrina eval --models engine`): the same candidates,
//! blend and rules that answer requests, on the split and metric code of the model
//! evaluation, so offline quality and what is served are the same thing.
//!
//! Every training interaction becomes a `view` event at its time (seconds in the datasets,
//! milliseconds here); the bundle is trained on them with the given training config, the
//! engine observes them as live events, and each test user gets a list of 20 with their
//! training items excluded and no exploration slot (a random new item would only add noise
//! to an offline metric).

use std::{collections::HashMap, sync::Arc, time::Instant};

use chrono::{TimeZone, Utc};
use rayon::prelude::*;
use vitrina_algo::{
    eval::{evaluate_lists, Dataset, ModelReport, Split},
    ltr::{Ranker, RankerParams},
};
use vitrina_core::{recommend::Recommended, ActivityType, LogEvent, Price, Product, ProductId, UserId};

use crate::{
    config::{RankingConfig, TrainingConfig},
    features::Features,
    learn::{fit_and_gate, Gated, TrainingList},
    model::PreparedModel,
    train::{train_bundle, Progress, TrainError, TrainingLog},
    Engine, Filters, ListRequest,
};

/// List length scored (the metrics read up to @20).
const LIST_LEN: usize = 20;

/// The dataset's id when it is a valid Vitrina id, else `{prefix}{index}`.
fn id_or_indexed<T>(
    name: &str,
    index: usize,
    prefix: &str,
    parse: impl Fn(&str) -> Result<T, vitrina_core::ValidationError>,
) -> T {
    parse(name).unwrap_or_else(|_| parse(&format!("{prefix}{index}")).expect("a valid fallback id"))
}

/// How `evaluate_engine` trains a learned ranker: on lists built by an engine trained on
/// `validation` (a split carved from the training data), labelled by its held-out items.
/// The ranker orders the lists only if it beats the blend on the validation users it did
/// not train on; otherwise the blend does.
pub struct LearnedRanking<'a> {
    pub validation: &'a Split,
    pub params: RankerParams,
}

/// An engine trained and fed on the training part of a split.
struct Offline {
    engine: Engine,
    model: Arc<crate::ActiveModel>,
    users: Vec<UserId>,
    products: Vec<Product>,
    now_ms: i64,
}

impl Offline {
    /// A filter that leaves out every item of a visitor's training `history`, however many
    /// events the ranking config reads: the metric never counts a training item.
    fn history_filter(&self, history: &[(u32, i64)]) -> Filters {
        Filters {
            exclude: history.iter().map(|&(i, _)| self.products[i as usize].id.clone()).collect(),
            ..Filters::default()
        }
    }

    /// User `u`'s scored list, with their training `history` left out.
    fn list(&self, ranking: &RankingConfig, u: usize, history: &[(u32, i64)]) -> Vec<Recommended> {
        let filters = self.history_filter(history);
        let req = ListRequest { limit: LIST_LEN, filters: &filters, now_ms: self.now_ms };
        self.engine.recommend_with(&self.model, ranking, &self.users[u], &req)
    }

    /// User `u`'s candidates for the learned ranker, with their features, their training
    /// `history` left out.
    fn candidates(
        &self,
        ranking: &RankingConfig,
        u: usize,
        history: &[(u32, i64)],
    ) -> Vec<(ProductId, Features)> {
        let filters = self.history_filter(history);
        let req = ListRequest { limit: LIST_LEN, filters: &filters, now_ms: self.now_ms };
        self.engine.candidate_features(&self.model, ranking, &self.users[u], &req)
    }
}

/// Trains a bundle on `train` (per user, `(item, ts)` oldest first), gives it `ranker`, and
/// has an engine observe the same events.
fn build(
    ds: &Dataset,
    train: &[Vec<(u32, i64)>],
    training: &TrainingConfig,
    ranking: &RankingConfig,
    ranker: Option<Ranker>,
    progress: Progress,
) -> Result<Offline, TrainError> {
    let epoch = Utc.timestamp_opt(0, 0).single().expect("the epoch");
    let products: Vec<Product> = ds
        .items
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| Product {
            id: id_or_indexed(n, i, "item-", ProductId::parse),
            name: n.clone(),
            category: "all".into(),
            price: "1.00".parse::<Price>().expect("a valid price"),
            attributes: Default::default(),
            in_stock: true,
            hidden: false,
            created_at: epoch,
            updated_at: epoch,
        })
        .collect();
    let users: Vec<UserId> = ds
        .users
        .names()
        .iter()
        .enumerate()
        .map(|(i, n)| id_or_indexed(n, i, "user-", UserId::parse))
        .collect();
    let mut events = Vec::with_capacity(train.iter().map(Vec::len).sum());
    let mut seq = 0;
    for (u, history) in train.iter().enumerate() {
        for &(item, ts) in history {
            seq += 1;
            events.push(LogEvent {
                seq,
                user_id: users[u].clone(),
                product_id: Some(products[item as usize].id.clone()),
                activity_type: ActivityType::View,
                ts_ms: ts.saturating_mul(1000),
                value: None,
            });
        }
    }
    let log = TrainingLog::from_events(&events);
    let config = TrainingConfig { validation_users: 0, ..training.clone() };
    let mut bundle = train_bundle(&log, &config, (1, seq), progress)?;
    bundle.ranker = ranker;
    let engine = Engine::with_history(products.iter().cloned(), ranking.clone(), usize::MAX);
    engine.activate(PreparedModel::new("offline", Arc::new(bundle)));
    events.iter().for_each(|e| engine.observe(e));
    engine.refresh();
    let now_ms = events.iter().map(|e| e.ts_ms).max().unwrap_or(0) + 1;
    Ok(Offline { model: engine.model(), engine, users, products, now_ms })
}

/// The ranking config lists are scored with: seen items excluded and no exploration slot
/// (a visitor's training items beyond `historyEvents` are excluded by [`Offline::history_filter`]).
fn scoring_config(ranking: &RankingConfig) -> RankingConfig {
    RankingConfig { exclude_seen: true, exploration: 0.0, ..ranking.clone() }
}

/// Trains a learned ranker on lists from an engine trained on `learned.validation`: each
/// held-out user's candidates with their features, labelled 1 when held out, split and
/// judged by [`fit_and_gate`].
fn train_ranker(
    ds: &Dataset,
    training: &TrainingConfig,
    ranking: &RankingConfig,
    learned: &LearnedRanking,
    progress: Progress,
) -> Result<Gated, TrainError> {
    let val = learned.validation;
    let off = build(ds, &val.train, training, ranking, None, progress)?;
    let ranking = scoring_config(ranking);
    let index: HashMap<&ProductId, u32> =
        off.products.iter().enumerate().map(|(i, p)| (&p.id, i as u32)).collect();
    let test_users: Vec<usize> = val.test_users().collect();
    let lists: Vec<TrainingList> = test_users
        .par_iter()
        .map(|&u| {
            let cands = off.candidates(&ranking, u, &val.train[u]);
            TrainingList::new(u as u64, cands, |id| {
                let held = index.get(id).is_some_and(|i| val.test[u].contains(i));
                if held {
                    1.0
                } else {
                    0.0
                }
            })
        })
        .collect();
    fit_and_gate(lists, &learned.params)
}

/// Trains and scores the engine on `split`; `progress` as in training. With `learned`, a
/// learned ranker is trained first and orders the candidates.
pub fn evaluate_engine(
    ds: &Dataset,
    split: &Split,
    training: &TrainingConfig,
    ranking: &RankingConfig,
    learned: Option<&LearnedRanking>,
    progress: Progress,
) -> Result<ModelReport, TrainError> {
    let started = Instant::now();
    let outcome = match learned {
        Some(l) => Some(train_ranker(ds, training, ranking, l, &mut *progress)?),
        None => None,
    };
    let ranker = outcome.as_ref().and_then(Gated::serving);
    let off = build(ds, &split.train, training, ranking, ranker, progress)?;
    let train_seconds = started.elapsed().as_secs_f64();

    let scoring = Instant::now();
    let names = ds.items.names();
    let index: HashMap<&ProductId, usize> =
        off.products.iter().enumerate().map(|(i, p)| (&p.id, i)).collect();
    let ranking = scoring_config(ranking);
    let test_users: Vec<usize> = split.test_users().collect();
    let lines: Vec<String> = test_users
        .par_iter()
        .map(|&u| {
            let list = off.list(&ranking, u, &split.train[u]);
            let mut line = ds.users.name(u as u32).unwrap_or("?").to_string();
            for r in &list {
                line.push(' ');
                let name = index.get(&r.product.id).and_then(|&i| names.get(i));
                line.push_str(name.map_or("?", String::as_str));
            }
            line
        })
        .collect();
    let metrics = evaluate_lists(&lines.join("\n"), ds, split)?;
    let config = TrainingConfig { validation_users: 0, ..training.clone() };
    let mut params = serde_json::json!({"training": config, "ranking": ranking});
    if let (Some(l), Some(o)) = (learned, &outcome) {
        params["learnedRanker"] = serde_json::json!({
            "params": l.params,
            "base": o.report.base,
            "treesKept": o.report.trees_kept,
            "validationNdcg": o.report.ndcg,
            "blendValidationNdcg": o.report.blend_ndcg,
            "validationLift": o.report.lift,
            "serves": o.report.serves,
        });
    }
    Ok(ModelReport {
        name: "engine".into(),
        params,
        metrics: metrics.iter().map(|(k, v)| (k.clone(), v.mean)).collect(),
        std_errors: metrics.iter().map(|(k, v)| (k.clone(), v.stderr)).collect(),
        train_seconds,
        score_seconds: scoring.elapsed().as_secs_f64(),
        tune_seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
    use vitrina_algo::eval::{DataFormat, Protocol};

    use super::*;

    /// 240 users in 4 taste groups of 10 items; each views 6 items of their group.
    fn grouped() -> Dataset {
        let mut rng = StdRng::seed_from_u64(3);
        let mut lines = Vec::new();
        for u in 0..240 {
            let g = u % 4;
            let mut items: Vec<usize> = (g * 10..g * 10 + 10).collect();
            items.shuffle(&mut rng);
            lines.extend(items[..6].iter().map(|i| format!("u{u} i{i}")));
        }
        Dataset::parse(&lines.join("\n"), DataFormat::UserItem).unwrap()
    }

    #[test]
    fn the_engine_finds_the_held_out_item_of_a_taste_group() {
        let ds = grouped();
        let split = Split::new(&ds.sequences, ds.n_items(), Protocol::LeaveLastOut, 1);
        let report = evaluate_engine(
            &ds,
            &split,
            &TrainingConfig::default(),
            &RankingConfig::default(),
            None,
            &mut |_, _| true,
        )
        .unwrap();
        // Five unseen items of the visitor's group against 30 of other groups: a list that
        // follows the taste finds the held-out one in its top 10.
        let hr = report.metrics["hr@10"];
        assert!(hr > 0.9, "{:?}", report.metrics);
        assert!(report.metrics["ndcg@10"] > 0.4, "{:?}", report.metrics);
        assert_eq!(report.name, "engine");
    }

    #[test]
    fn a_visitors_training_items_stay_out_of_lists_however_few_events_ranking_reads() {
        let ds = grouped();
        let split = Split::new(&ds.sequences, ds.n_items(), Protocol::LeaveLastOut, 1);
        let ranking = RankingConfig { history_events: 1, ..RankingConfig::default() };
        let off =
            build(&ds, &split.train, &TrainingConfig::default(), &ranking, None, &mut |_, _| true).unwrap();
        let scoring = scoring_config(&ranking);
        // by the dataset's own item names, not the mapping the filter uses
        let trained = |u: usize, r: &vitrina_core::recommend::Recommended| {
            split.train[u].iter().any(|&(i, _)| ds.items.name(i) == Some(r.product.name.as_str()))
        };
        let mut listed = 0;
        for u in split.test_users() {
            let list = off.list(&scoring, u, &split.train[u]);
            listed += list.len();
            for r in &list {
                assert!(!trained(u, r), "user {u} was listed training item {}", r.product.id);
            }
        }
        assert!(listed > 0);
        // without the filter, one event read leaves the other training items in the lists
        let u = split.test_users().next().unwrap();
        let none = Filters::default();
        let req = ListRequest { limit: LIST_LEN, filters: &none, now_ms: off.now_ms };
        let list = off.engine.recommend_with(&off.model, &scoring, &off.users[u], &req);
        assert!(list.iter().any(|r| trained(u, r)));
    }

    #[test]
    fn a_learned_ranker_trained_on_the_validation_split_keeps_finding_the_taste() {
        let ds = grouped();
        let split = Split::new(&ds.sequences, ds.n_items(), Protocol::LeaveLastOut, 1);
        let validation = split.validation(Protocol::LeaveLastOut, 1);
        let learned = LearnedRanking { validation: &validation, params: RankerParams::default() };
        let report = evaluate_engine(
            &ds,
            &split,
            &TrainingConfig::default(),
            &RankingConfig::default(),
            Some(&learned),
            &mut |_, _| true,
        )
        .unwrap();
        assert!(report.metrics["hr@10"] > 0.9, "{:?}", report.metrics);
        let ranker = &report.params["learnedRanker"];
        let (ndcg, blend) =
            (ranker["validationNdcg"].as_f64().unwrap(), ranker["blendValidationNdcg"].as_f64().unwrap());
        assert!(ndcg > 0.0 && blend > 0.0, "{ranker}");
        let lift = &ranker["validationLift"];
        let (mean, stderr) = (lift["mean"].as_f64().unwrap(), lift["stderr"].as_f64().unwrap());
        assert!((mean - (ndcg - blend)).abs() < 1e-9, "the lift is paired over the same lists: {ranker}");
        let n = lift["n"].as_u64().unwrap();
        assert!(n > 0, "{ranker}");
        let expected = n >= crate::learn::MIN_GATE_VISITORS as u64 && mean - 2.0 * stderr > 0.0;
        assert_eq!(ranker["serves"].as_bool(), Some(expected), "{ranker}");
    }
}
