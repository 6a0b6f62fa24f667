//! Scoring a model (or a peer's top-k lists) on a split, and the `vitrina eval` entry point.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rayon::prelude::*;

use super::config::{ModelConfig, TrainData};
use super::data::{DataFormat, Dataset};
use super::metrics::{hit_rate, ndcg, recall, MeanStderr};
use super::report::{ModelReport, Report, METRICS};
use super::split::{Protocol, Split};
use super::tune::tune;
use crate::error::{invalid, Result};
use crate::models::{Model, ModelKind};
use crate::topk::top_k;

/// Length of the ranked list every metric is computed from.
pub const LIST_LEN: usize = 20;

/// What `vitrina eval` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Name shown in the report (e.g. the data path).
    pub dataset: String,
    pub format: DataFormat,
    pub protocol: Protocol,
    /// Models to evaluate, in report order; empty = all.
    pub models: Vec<ModelKind>,
    /// Search hyperparameters on a validation split carved from the training data.
    pub tune: bool,
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            format: DataFormat::Movielens,
            protocol: Protocol::LeaveLastOut,
            models: Vec::new(),
            tune: false,
            seed: 42,
        }
    }
}

/// A progress notification: `stage` (e.g. `"tune"`, `"train"`, `"score"`) of `model`,
/// `done` of `total` steps where known (0 of 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    pub stage: &'a str,
    pub model: &'a str,
    pub done: usize,
    pub total: usize,
}

/// Every model kind in report order.
pub const ALL_MODELS: [ModelKind; 9] = [
    ModelKind::Popularity,
    ModelKind::TimePopularity,
    ModelKind::ItemKnn,
    ModelKind::Als,
    ModelKind::Ease,
    ModelKind::Rp3Beta,
    ModelKind::Transitions,
    ModelKind::Bridge,
    ModelKind::Blend,
];

/// Per-metric means with standard errors over the evaluated users.
pub type Metrics = BTreeMap<String, MeanStderr>;

/// The five metrics of one user from a ranked list (best first) and the held-out items.
pub fn user_metrics(list: &[u32], test: &[u32]) -> [f64; 5] {
    let ranks: Vec<Option<usize>> = test.iter().map(|t| list.iter().position(|x| x == t)).collect();
    [ndcg(&ranks, 10), hit_rate(&ranks, 10), hit_rate(&ranks, 20), recall(&ranks, 20), ndcg(&ranks, 20)]
}

fn aggregate(rows: &[[f64; 5]]) -> Metrics {
    METRICS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            ((*name).to_owned(), MeanStderr::of(&v))
        })
        .collect()
}

/// The ranked top-[`LIST_LEN`] of `model` for `user` of `split`, training items excluded.
pub fn user_list(model: &Model, split: &Split, user: usize, buf: &mut Vec<f32>) -> Vec<u32> {
    let history: Vec<(u32, f32)> = split.train[user].iter().map(|&(i, _)| (i, 1.0)).collect();
    let times: Vec<i64> = split.train[user].iter().map(|x| x.1).collect();
    model.score_into_at(&history, &times, buf);
    let seen: Vec<u32> = history.iter().map(|h| h.0).collect();
    top_k(buf, LIST_LEN, &seen).into_iter().map(|x| x.0).collect()
}

/// Scores `model` on every test user of `split`.
pub fn evaluate(model: &Model, split: &Split) -> Metrics {
    let users: Vec<usize> = split.test_users().collect();
    let rows: Vec<[f64; 5]> = users
        .par_iter()
        .map_init(Vec::new, |buf, &u| user_metrics(&user_list(model, split, u, buf), &split.test[u]))
        .collect();
    aggregate(&rows)
}

/// Scores externally produced lists (`user item1 item2 …` lines, original ids, best first)
/// with the same metric code; a test user without a line scores zero.
pub fn evaluate_lists(lists: &str, ds: &Dataset, split: &Split) -> Result<Metrics> {
    let mut by_user: HashMap<u32, Vec<u32>> = HashMap::new();
    for (n, line) in lists.lines().enumerate() {
        let mut f = line.split_whitespace();
        let Some(user) = f.next() else { continue };
        let u =
            ds.users.get(user).ok_or_else(|| invalid(format!("line {}: unknown user `{user}`", n + 1)))?;
        let items: Vec<u32> = f.take(LIST_LEN).map(|i| ds.items.get(i).unwrap_or(u32::MAX)).collect();
        by_user.insert(u, items);
    }
    let rows: Vec<[f64; 5]> = split
        .test_users()
        .map(|u| user_metrics(by_user.get(&(u as u32)).map_or(&[][..], Vec::as_slice), &split.test[u]))
        .collect();
    Ok(aggregate(&rows))
}

/// Parses `data`, splits it, (optionally) tunes, trains and scores each requested model.
pub fn run_eval(opts: &EvalOptions, data: &str, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Report> {
    let ds = Dataset::parse(data, opts.format)?;
    if ds.n_interactions() == 0 {
        return Err(invalid("the dataset has no interactions"));
    }
    let split = Split::new(&ds.sequences, ds.n_items(), opts.protocol, opts.seed);
    run_eval_on_split(opts, &split, progress)
}

/// [`run_eval`] on an already made split.
pub fn run_eval_on_split(
    opts: &EvalOptions,
    split: &Split,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report> {
    let kinds: Vec<ModelKind> =
        if opts.models.is_empty() { ALL_MODELS.to_vec() } else { opts.models.clone() };
    let data = TrainData::from_split(split)?;
    let mut tuned: HashMap<ModelKind, ModelConfig> = HashMap::new();
    let mut tune_secs: HashMap<ModelKind, f64> = HashMap::new();
    if opts.tune {
        let chosen = tune(split, opts.protocol, opts.seed, &kinds, progress)?;
        for (kind, config, secs) in chosen {
            tuned.insert(kind, config);
            tune_secs.insert(kind, secs);
        }
    }
    let mut models = Vec::new();
    let mut cache = super::config::TrainCache::default();
    for kind in kinds {
        let name = kind.name();
        let config = tuned
            .remove(&kind)
            .unwrap_or_else(|| ModelConfig::default_for(kind, opts.protocol, split.n_items));
        progress(Progress { stage: "train", model: name, done: 0, total: 0 });
        let (model, train_seconds) = config.train_cached(&data, &mut cache, &mut |done, total| {
            progress(Progress { stage: "train", model: name, done, total })
        })?;
        progress(Progress { stage: "score", model: name, done: 0, total: 0 });
        let t = Instant::now();
        let metrics = evaluate(&model, split);
        let score_seconds = t.elapsed().as_secs_f64();
        models.push(ModelReport {
            name: name.to_owned(),
            params: config.params_json(),
            metrics: metrics.iter().map(|(k, v)| (k.clone(), v.mean)).collect(),
            std_errors: metrics.iter().map(|(k, v)| (k.clone(), v.stderr)).collect(),
            train_seconds,
            score_seconds,
            tune_seconds: tune_secs.get(&kind).copied().unwrap_or(0.0),
        });
    }
    Ok(Report {
        dataset: opts.dataset.clone(),
        protocol: opts.protocol,
        seed: opts.seed,
        tuned: opts.tune,
        n_users: split.n_users(),
        n_items: split.n_items,
        n_train: split.n_train(),
        n_test_users: split.test_users().count(),
        models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metrics_from_a_list() {
        let m = user_metrics(&[5, 7, 9], &[9]);
        assert!((m[0] - 0.5).abs() < 1e-12); // rank 2 → 1/log2(4)
        assert_eq!(m[1], 1.0);
        assert_eq!(user_metrics(&[], &[1]), [0.0; 5]);
    }

    /// Ratings (`user item rating ts`) where pairs of a user's ratings share their second,
    /// as in MovieLens, in the given row order.
    fn rating_rows() -> Vec<String> {
        let mut rows = Vec::new();
        for u in 0..40u32 {
            for k in 0..12u32 {
                let item = (u * 7 + k * k + k) % 30;
                let ts = 1_000_000 + u * 10_000 + (k / 2) * 60;
                rows.push(format!("{}\t{}\t{}\t{ts}", u + 1, item + 1, 1 + (u + k) % 5));
            }
        }
        rows
    }

    #[test]
    fn the_split_and_every_metric_are_the_same_whatever_the_row_order() {
        use rand::seq::SliceRandom;
        use rand::{rngs::StdRng, SeedableRng};
        let rows = rating_rows();
        let mut shuffled = rows.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(7));
        assert_ne!(rows, shuffled);
        for protocol in [Protocol::LeaveLastOut, Protocol::Random8020] {
            let opts = EvalOptions {
                dataset: "ratings".into(),
                format: DataFormat::Movielens,
                protocol,
                ..Default::default()
            };
            let run = |rows: &[String]| {
                let data = rows.join("\n");
                let ds = Dataset::parse(&data, DataFormat::Movielens).unwrap();
                let split = Split::new(&ds.sequences, ds.n_items(), protocol, opts.seed);
                let (mut train, mut test) = (Vec::new(), Vec::new());
                split.export(&ds, &mut train, &mut test).unwrap();
                let report = run_eval(&opts, &data, &mut |_| {}).unwrap();
                let metrics: Vec<_> = report.models.into_iter().map(|m| (m.name, m.metrics)).collect();
                (train, test, metrics)
            };
            let (a, b) = (run(&rows), run(&shuffled));
            assert!(!a.1.is_empty());
            assert_eq!(a.0, b.0, "{protocol:?}: training split differs");
            assert_eq!(a.1, b.1, "{protocol:?}: test split differs");
            assert_eq!(a.2.len(), ALL_MODELS.len());
            assert_eq!(a.2, b.2, "{protocol:?}: metrics differ");
        }
    }

    /// Users walk a cycle of 12 items in order: the next item is fully predictable.
    fn cyclic_data() -> String {
        let mut s = String::new();
        for u in 0..30 {
            for k in 0..8 {
                s.push_str(&format!("u{u} i{}\n", (u + k) % 12));
            }
        }
        s
    }

    #[test]
    fn run_eval_reports_every_model_and_transitions_win_on_sequences() {
        let opts =
            EvalOptions { dataset: "cyclic".into(), format: DataFormat::UserItem, ..Default::default() };
        let mut stages = 0;
        let report = run_eval(&opts, &cyclic_data(), &mut |_| stages += 1).unwrap();
        assert!(stages > 0);
        assert_eq!(report.models.len(), ALL_MODELS.len());
        assert_eq!(report.n_test_users, 30);
        let t = report.models.iter().find(|m| m.name == "transitions").unwrap();
        assert_eq!(t.metric("hr@10"), 1.0);
        for m in &report.models {
            for k in METRICS {
                assert!(m.metric(k).is_finite() && (0.0..=1.0).contains(&m.metric(k)), "{} {k}", m.name);
            }
        }
    }

    #[test]
    fn tuned_eval_is_deterministic_for_a_seed() {
        let opts = EvalOptions {
            format: DataFormat::UserItem,
            protocol: Protocol::Random8020,
            models: vec![ModelKind::Ease, ModelKind::Transitions, ModelKind::Blend],
            tune: true,
            seed: 3,
            ..Default::default()
        };
        let a = run_eval(&opts, &cyclic_data(), &mut |_| {}).unwrap();
        let b = run_eval(&opts, &cyclic_data(), &mut |_| {}).unwrap();
        assert!(a.tuned);
        for (x, y) in a.models.iter().zip(&b.models) {
            assert_eq!((&x.name, &x.params, &x.metrics), (&y.name, &y.params, &y.metrics));
        }
    }

    #[test]
    fn peer_lists_are_scored_with_the_same_code() {
        let ds = Dataset::parse(&cyclic_data(), DataFormat::UserItem).unwrap();
        let split = Split::new(&ds.sequences, ds.n_items(), Protocol::LeaveLastOut, 1);
        // a perfect peer: the held-out item first
        let lists: String = split
            .test_users()
            .map(|u| {
                format!("{} {}\n", ds.users.name(u as u32).unwrap(), ds.items.name(split.test[u][0]).unwrap())
            })
            .collect();
        let m = evaluate_lists(&lists, &ds, &split).unwrap();
        assert_eq!(m["ndcg@10"].mean, 1.0);
        assert!(evaluate_lists("nobody i1\n", &ds, &split).is_err());
        assert_eq!(evaluate_lists("", &ds, &split).unwrap()["hr@20"].mean, 0.0);
    }
}
