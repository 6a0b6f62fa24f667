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
use vitrina_core::Product;

use crate::{
    bundle::ModelBundle,
    config::{EventWeights, RankingConfig, TrainingConfig},
    model::PreparedModel,
    train::{train_bundle, Progress, TrainError, TrainingLog},
    Engine, Filters, ListRequest,
};

/// A held-out split of a log snapshot.
#[derive(Debug, Default)]
pub struct Split {
    pub train: TrainingLog,
    /// Per held-out user, the item to find (indices into `train`'s id tables).
    pub test: Vec<(u32, u32)>,
}

/// Holds out the latest item of up to `users` users (see the module docs). With
/// `sample_users > 0`, the training side keeps only the events of that many randomly drawn
/// users besides the held-out ones, which bounds the cost of validating on a large log.
pub fn split_last(
    log: &TrainingLog,
    weights: &EventWeights,
    users: usize,
    sample_users: usize,
    seed: u64,
) -> Split {
    // Per user (ids are dense): up to three distinct positive items — enough to tell whether
    // the user is eligible — and their latest positive item with its time. A vector of small
    // fixed-size entries, not a set per user: a million users' sets cost gigabytes.
    let mut per_user: Vec<Option<Seen>> = vec![None; log.users.len()];
    let weights = weights.by_kind();
    for r in &log.rows {
        if weights.event_weight(r.kind, r.value()) <= 0.0 {
            continue;
        }
        per_user[r.user as usize].get_or_insert_with(Seen::default).add(r.item, r.ts_ms);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut eligible: Vec<(u32, i64, u32)> = per_user
        .iter()
        .enumerate()
        .filter_map(|(u, s)| s.filter(|s| s.distinct >= 3).map(|s| (u as u32, s.latest_ts, s.latest)))
        .collect();
    eligible.shuffle(&mut rng);
    eligible.truncate(users);
    let held: HashMap<u32, (i64, u32)> = eligible.iter().map(|&(u, ts, p)| (u, (ts, p))).collect();
    let active_users = per_user.iter().flatten().count();
    let sampled: Option<HashSet<u32>> =
        (sample_users > 0 && active_users > sample_users.saturating_add(held.len())).then(|| {
            let mut all: Vec<u32> = (0..per_user.len() as u32)
                .filter(|u| per_user[*u as usize].is_some() && !held.contains_key(u))
                .collect();
            all.shuffle(&mut rng);
            all.truncate(sample_users);
            all.into_iter().collect()
        });
    let train = log.subset(|r| match held.get(&r.user) {
        Some(&(ts, p)) => r.ts_ms < ts && r.item != p,
        None => sampled.as_ref().is_none_or(|s| s.contains(&r.user)),
    });
    let test = eligible.into_iter().map(|(u, _, p)| (u, p)).collect();
    Split { train, test }
}

/// What [`split_last`] needs to know of a user's positive events.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: [u32; 3],
    distinct: u8,
    latest_ts: i64,
    latest: u32,
}

impl Default for Seen {
    fn default() -> Self {
        Self { first: [0; 3], distinct: 0, latest_ts: i64::MIN, latest: 0 }
    }
}

impl Seen {
    /// A positive event of `item` at `ts_ms`, in log order (a later event wins a tie).
    fn add(&mut self, item: u32, ts_ms: i64) {
        let known = &self.first[..usize::from(self.distinct)];
        if self.distinct < 3 && !known.contains(&item) {
            self.first[usize::from(self.distinct)] = item;
            self.distinct += 1;
        }
        if ts_ms >= self.latest_ts {
            (self.latest_ts, self.latest) = (ts_ms, item);
        }
    }
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
    let bundle = train_bundle(&split.train, config, (0, 0), progress)?;
    Ok(evaluate_bundle(split, bundle, products, ranking))
}

/// Measures the engine's lists for the held-out users when it serves `bundle`, with the
/// split's training events as the visitors' history and the live popularity.
pub fn evaluate_bundle(
    split: &Split,
    bundle: ModelBundle,
    products: &[Product],
    ranking: &RankingConfig,
) -> Quality {
    let now_ms = split.train.rows.iter().map(|r| r.ts_ms).max().unwrap_or(0) + 1;
    let test_users: HashSet<u32> = split.test.iter().map(|t| t.0).collect();
    let engine = Engine::with_history(products.iter().cloned(), ranking.clone(), usize::MAX);
    engine.activate(PreparedModel::new("candidate", Arc::new(bundle)));
    for r in &split.train.rows {
        let e = split.train.event(r);
        if test_users.contains(&r.user) {
            engine.observe(&e);
        } else {
            engine.observe_popularity(&e);
        }
    }
    engine.refresh();
    let ranking = RankingConfig { exclude_seen: true, exploration: 0.0, ..ranking.clone() };
    let model = engine.model();
    let filters = Filters::default();
    let req = ListRequest { limit: 10, filters: &filters, now_ms };
    let (mut hits, mut ndcg) = (0usize, 0f64);
    for &(user, target) in &split.test {
        let list = engine.recommend_with(&model, &ranking, &split.train.users[user as usize], &req);
        let target = &split.train.items[target as usize];
        if let Some(rank) = list.iter().position(|r| &r.product.id == target) {
            hits += 1;
            ndcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    let n = split.test.len().max(1) as f64;
    Quality { users: split.test.len(), ndcg_at_10: ndcg / n, hr_at_10: hits as f64 / n }
}

/// The promotion gate: a candidate is promoted when its NDCG@10 is at least the active
/// model's, less `tolerance` (a share: 0.02 accepts up to 2 % worse). Without an active
/// model to compare with, it passes. `Err` carries the reason for the registry.
pub fn gate(candidate: &Quality, active: Option<&Quality>, tolerance: f64) -> Result<(), String> {
    match active {
        Some(active) if candidate.ndcg_at_10 < active.ndcg_at_10 * (1.0 - tolerance) => Err(format!(
            "validation NDCG@10 {:.4} is below the active model's {:.4} by more than the tolerance ({:.0} %)",
            candidate.ndcg_at_10,
            active.ndcg_at_10,
            tolerance * 100.0
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use vitrina_core::{ActivityType, LogEvent, ProductId, UserId};

    use super::*;
    use crate::train::Row;

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

    /// 480 visitors in 8 taste groups of 15 products each; every visitor views 8 products
    /// of their group in a random order.
    fn grouped_shop() -> (Vec<Product>, TrainingLog) {
        let mut rng = StdRng::seed_from_u64(11);
        let products: Vec<Product> = (0..120)
            .map(|i| {
                let mut p = crate::catalog::tests::product(&format!("p{i}"), &format!("c{}", i % 5), "1.00");
                p.created_at = vitrina_core::time::from_millis(0);
                p
            })
            .collect();
        let mut events = Vec::new();
        for u in 0..480u64 {
            let group = (u % 8) as usize;
            let mut items: Vec<usize> = (group * 15..group * 15 + 15).collect();
            items.shuffle(&mut rng);
            for (k, item) in items.iter().take(8).enumerate() {
                let seq = u * 8 + k as u64 + 1;
                let ts = 1_700_000_000_000 + seq as i64 * 1000;
                events.push(ev(seq, &format!("u{u}"), ActivityType::View, &format!("p{item}"), ts));
            }
        }
        (products, TrainingLog::from_events(&events))
    }

    #[test]
    fn the_largest_published_sample_sizes_train_on_everyone() {
        // Found by schemathesis: a sample size near usize::MAX overflowed the comparison.
        let (_, log) = grouped_shop();
        let all = split_last(&log, &EventWeights::default(), 200, 0, 3);
        let huge = split_last(&log, &EventWeights::default(), 200, usize::MAX, 3);
        assert_eq!(huge.test.len(), all.test.len());
        assert_eq!(huge.train.rows.len(), all.train.rows.len());
    }

    #[test]
    fn a_candidate_trained_on_shuffled_data_is_rejected_by_the_gate() {
        let (products, log) = grouped_shop();
        let split = split_last(&log, &EventWeights::default(), 200, 0, 3);
        assert_eq!(split.test.len(), 200);
        let config = TrainingConfig { validation_users: 0, ..TrainingConfig::default() };
        let ranking = RankingConfig { exploration: 0.0, ..RankingConfig::default() };
        let real = train_bundle(&split.train, &config, (0, 0), &mut |_, _| true).unwrap();
        // Same rows, same users and times, but every event's product drawn from another row.
        let mut shuffled = split.train.clone();
        let mut items: Vec<u32> = shuffled.rows.iter().map(|r| r.item).collect();
        items.shuffle(&mut StdRng::seed_from_u64(5));
        shuffled.rows.iter_mut().zip(items).for_each(|(r, i)| r.item = i);
        let noise = train_bundle(&shuffled, &config, (0, 0), &mut |_, _| true).unwrap();

        let active = evaluate_bundle(&split, real, &products, &ranking);
        let candidate = evaluate_bundle(&split, noise, &products, &ranking);
        assert!(candidate.ndcg_at_10 < active.ndcg_at_10 * 0.9, "shuffled {candidate:?} vs real {active:?}");
        let reason = gate(&candidate, Some(&active), 0.02).unwrap_err();
        assert!(reason.contains("below the active model"), "{reason}");
        assert_eq!(gate(&active, Some(&active), 0.0), Ok(()), "as good as the active model passes");
        assert_eq!(gate(&candidate, None, 0.0), Ok(()), "nothing to compare with passes");
        assert_eq!(gate(&candidate, Some(&active), 1.0), Ok(()), "tolerance 1 accepts anything");
    }

    /// `split_last` as it was with a set of items per user (before the per-user entries):
    /// the held-out pairs and the training rows it chose.
    fn split_with_sets(
        log: &TrainingLog,
        users: usize,
        sample_users: usize,
        seed: u64,
    ) -> (Vec<(u32, u32)>, Vec<Row>) {
        let weights = EventWeights::default();
        let mut per_user: HashMap<u32, (HashSet<u32>, i64, u32)> = HashMap::new();
        for r in &log.rows {
            if weights.event_weight(r.kind, r.value()) <= 0.0 {
                continue;
            }
            let u = per_user.entry(r.user).or_insert((HashSet::new(), i64::MIN, r.item));
            u.0.insert(r.item);
            if r.ts_ms >= u.1 {
                (u.1, u.2) = (r.ts_ms, r.item);
            }
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut eligible: Vec<(u32, i64, u32)> =
            per_user.iter().filter(|(_, s)| s.0.len() >= 3).map(|(&u, &(_, ts, p))| (u, ts, p)).collect();
        eligible.sort_unstable_by_key(|e| e.0);
        eligible.shuffle(&mut rng);
        eligible.truncate(users);
        let held: HashMap<u32, (i64, u32)> = eligible.iter().map(|&(u, ts, p)| (u, (ts, p))).collect();
        let sampled: Option<HashSet<u32>> = (sample_users > 0 && per_user.len() > sample_users + held.len())
            .then(|| {
                let mut all: Vec<u32> = per_user.keys().copied().filter(|u| !held.contains_key(u)).collect();
                all.sort_unstable();
                all.shuffle(&mut rng);
                all.truncate(sample_users);
                all.into_iter().collect()
            });
        let rows = log
            .rows
            .iter()
            .filter(|r| match held.get(&r.user) {
                Some(&(ts, p)) => r.ts_ms < ts && r.item != p,
                None => sampled.as_ref().is_none_or(|s| s.contains(&r.user)),
            })
            .copied()
            .collect();
        (eligible.into_iter().map(|(u, _, p)| (u, p)).collect(), rows)
    }

    #[test]
    fn the_split_is_the_one_a_set_per_user_gave() {
        for seed in 1..=4 {
            let log = crate::train::tests::random_log(seed);
            for (users, sample) in [(10, 0), (10, 20), (25, 5), (1000, 0)] {
                let split = split_last(&log, &EventWeights::default(), users, sample, seed);
                let (test, rows) = split_with_sets(&log, users, sample, seed);
                assert_eq!(split.test, test, "seed {seed}, {users} users, {sample} sampled");
                assert_eq!(split.train.rows, rows, "seed {seed}, {users} users, {sample} sampled");
                assert!(!test.is_empty());
            }
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
        let log = TrainingLog::from_events(&events);
        let split = split_last(&log, &EventWeights::default(), 10, 0, 1);
        let named: Vec<(&str, &str)> = split
            .test
            .iter()
            .map(|&(u, p)| (log.users[u as usize].as_str(), log.items[p as usize].as_str()))
            .collect();
        assert_eq!(named, [("a", "p1")]);
        let kept: Vec<i64> = split.train.rows.iter().map(|r| r.ts_ms).collect();
        assert_eq!(kept, [20, 30, 10, 20], "a's p1 events and everything of a from its time on are held out");
        assert!(split_last(&log, &EventWeights::default(), 0, 0, 1).test.is_empty());
    }
}
