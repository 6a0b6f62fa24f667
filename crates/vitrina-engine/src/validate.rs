//! Offline validation of a training configuration on a snapshot of the event log, through
//! the serving engine itself (candidates, blend and rules), so that what is measured is what
//! would be served.
//!
//! Protocol (leave-last-out): among users with at least three distinct positively weighted
//! items, up to `users` are drawn (seeded); each one's latest such item is held out with all
//! of its events at or after that time; a bundle is trained on the rest and each held-out
//! user gets a list of 10 from their remaining history. Metrics: HR@10 and NDCG@10.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;
use vitrina_core::{LogEvent, Product, ProductId, UserId};

use crate::{
    config::{EventWeights, RankingConfig, TrainingConfig},
    model::PreparedModel,
    train::{train_bundle, Progress, TrainError},
    Engine, Filters, ListRequest,
};

/// A held-out split of a log snapshot.
#[derive(Debug, Default)]
pub struct Split {
    pub train: Vec<LogEvent>,
    /// Per held-out user, the item to find.
    pub test: Vec<(UserId, ProductId)>,
}

/// Holds out the latest item of up to `users` users (see the module docs).
pub fn split_last(events: &[LogEvent], weights: &EventWeights, users: usize, seed: u64) -> Split {
    // Per user: distinct positive items and the time of their latest positive item.
    let mut per_user: HashMap<&UserId, (HashSet<&ProductId>, i64, Option<&ProductId>)> = HashMap::new();
    for e in events {
        let Some(p) = &e.product_id else { continue };
        if weights.event_weight(e.activity_type, e.value) <= 0.0 {
            continue;
        }
        let u = per_user.entry(&e.user_id).or_insert((HashSet::new(), i64::MIN, None));
        u.0.insert(p);
        if e.ts_ms >= u.1 {
            (u.1, u.2) = (e.ts_ms, Some(p));
        }
    }
    let mut eligible: Vec<(&UserId, i64, &ProductId)> = per_user
        .into_iter()
        .filter(|(_, (items, _, _))| items.len() >= 3)
        .filter_map(|(u, (_, ts, last))| last.map(|p| (u, ts, p)))
        .collect();
    eligible.sort_unstable_by(|a, b| a.0.cmp(b.0));
    eligible.shuffle(&mut StdRng::seed_from_u64(seed));
    eligible.truncate(users);
    let held: HashMap<&UserId, (i64, &ProductId)> = eligible.iter().map(|&(u, ts, p)| (u, (ts, p))).collect();
    let train = events
        .iter()
        .filter(|e| match held.get(&e.user_id) {
            Some(&(ts, p)) => e.ts_ms < ts && e.product_id.as_ref() != Some(p),
            None => true,
        })
        .cloned()
        .collect();
    let test = eligible.into_iter().map(|(u, _, p)| (u.clone(), p.clone())).collect();
    Split { train, test }
}

/// Ranking quality on a split.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    pub users: usize,
    #[serde(rename = "ndcg@10")]
    pub ndcg_at_10: f64,
    #[serde(rename = "hr@10")]
    pub hr_at_10: f64,
}

/// Trains `config` on the split's training events and measures the engine's lists for the
/// held-out users. `products` is the catalogue the lists are drawn from.
pub fn evaluate(
    split: &Split,
    products: &[Product],
    config: &TrainingConfig,
    ranking: &RankingConfig,
    progress: Progress,
) -> Result<Quality, TrainError> {
    let last = split.train.iter().map(|e| e.seq).max().unwrap_or(0);
    let bundle = train_bundle(&split.train, config, (1, last), progress)?;
    let now_ms = split.train.iter().map(|e| e.ts_ms).max().unwrap_or(0) + 1;
    let test_users: HashSet<&UserId> = split.test.iter().map(|t| &t.0).collect();
    let engine = Engine::with_history(products.iter().cloned(), ranking.clone(), usize::MAX);
    engine.activate(PreparedModel::new("candidate", Arc::new(bundle)));
    for e in &split.train {
        if test_users.contains(&e.user_id) {
            engine.observe(e);
        } else {
            engine.observe_popularity(e);
        }
    }
    engine.refresh(now_ms);
    let ranking = RankingConfig { exclude_seen: true, exploration: 0.0, ..ranking.clone() };
    let model = engine.model();
    let filters = Filters::default();
    let req = ListRequest { limit: 10, filters: &filters, now_ms };
    let (mut hits, mut ndcg) = (0usize, 0f64);
    for (user, target) in &split.test {
        let list = engine.recommend_with(&model, &ranking, user, &req);
        if let Some(rank) = list.iter().position(|r| &r.product.id == target) {
            hits += 1;
            ndcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    let n = split.test.len().max(1) as f64;
    Ok(Quality { users: split.test.len(), ndcg_at_10: ndcg / n, hr_at_10: hits as f64 / n })
}

#[cfg(test)]
mod tests {
    use vitrina_core::ActivityType;

    use super::*;

    fn ev(seq: u64, user: &str, kind: ActivityType, p: &str, ts: i64) -> LogEvent {
        LogEvent {
            seq,
            user_id: UserId::parse(user).unwrap(),
            product_id: Some(ProductId::parse(p).unwrap()),
            activity_type: kind,
            ts_ms: ts,
            value: None,
        }
    }

    #[test]
    fn holds_out_each_chosen_user_s_latest_positive_item_and_nothing_after_it() {
        let events = vec![
            ev(1, "a", ActivityType::View, "p1", 10),
            ev(2, "a", ActivityType::View, "p2", 20),
            ev(3, "a", ActivityType::View, "p3", 30),
            ev(4, "a", ActivityType::RemoveFromCart, "p9", 40), // negative: never held out
            ev(5, "a", ActivityType::View, "p1", 35),
            ev(6, "b", ActivityType::View, "p1", 10), // two items only: not eligible
            ev(7, "b", ActivityType::View, "p2", 20),
        ];
        let split = split_last(&events, &EventWeights::default(), 10, 1);
        assert_eq!(split.test, [(UserId::parse("a").unwrap(), ProductId::parse("p1").unwrap())]);
        let kept: Vec<u64> = split.train.iter().map(|e| e.seq).collect();
        assert_eq!(kept, [2, 3, 6, 7], "a's p1 events and everything of a from its time on are held out");
        assert!(split_last(&events, &EventWeights::default(), 0, 1).test.is_empty());
    }
}
