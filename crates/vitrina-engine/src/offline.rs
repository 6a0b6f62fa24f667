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
use vitrina_algo::eval::{evaluate_lists, Dataset, ModelReport, Split};
use vitrina_core::{ActivityType, LogEvent, Price, Product, ProductId, UserId};

use crate::{
    config::{RankingConfig, TrainingConfig},
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

/// Trains and scores the engine on `split`; `progress` as in training.
pub fn evaluate_engine(
    ds: &Dataset,
    split: &Split,
    training: &TrainingConfig,
    ranking: &RankingConfig,
    progress: Progress,
) -> Result<ModelReport, TrainError> {
    let started = Instant::now();
    let names = ds.items.names();
    let epoch = Utc.timestamp_opt(0, 0).single().expect("the epoch");
    let products: Vec<Product> = names
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
    let index: HashMap<&ProductId, usize> = products.iter().enumerate().map(|(i, p)| (&p.id, i)).collect();
    let mut events = Vec::with_capacity(split.n_train());
    let mut seq = 0;
    for (u, history) in split.train.iter().enumerate() {
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
    let bundle = train_bundle(&log, &config, (1, seq), progress)?;
    let engine = Engine::with_history(products.iter().cloned(), ranking.clone(), usize::MAX);
    engine.activate(PreparedModel::new("offline", Arc::new(bundle)));
    events.iter().for_each(|e| engine.observe(e));
    engine.refresh();
    let train_seconds = started.elapsed().as_secs_f64();

    let scoring = Instant::now();
    let now_ms = events.iter().map(|e| e.ts_ms).max().unwrap_or(0) + 1;
    // The whole training history is "seen" (the metric never counts a training item).
    let ranking =
        RankingConfig { exclude_seen: true, exploration: 0.0, history_events: 1000, ..ranking.clone() };
    let model = engine.model();
    let filters = Filters::default();
    let test_users: Vec<usize> = split.test_users().collect();
    let lines: Vec<String> = test_users
        .par_iter()
        .map(|&u| {
            let req = ListRequest { limit: LIST_LEN, filters: &filters, now_ms };
            let list = engine.recommend_with(&model, &ranking, &users[u], &req);
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
    Ok(ModelReport {
        name: "engine".into(),
        params: serde_json::json!({"training": config, "ranking": ranking}),
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
}
