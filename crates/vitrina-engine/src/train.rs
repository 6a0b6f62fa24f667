//! Training a [`ModelBundle`] from log events: event-type weights and time decay turn the
//! events into a user×item matrix and per-user sequences; each configured algorithm is
//! trained on them (in the caller's rayon pool, so the caller bounds the CPU it takes).

use std::collections::HashMap;

use rayon::prelude::*;
use vitrina_algo::{
    matrix::{CsrMatrix, Interaction, MatrixOptions},
    models::{Als, Ease, EaseParams, ItemKnn, Popularity, PopularityParams, Transitions},
    AlgoError,
};
use vitrina_core::{ActivityType, LogEvent, ProductId, UserId};

use crate::{
    bundle::{ModelBundle, TrainSummary},
    config::TrainingConfig,
};

/// Why training stopped without a bundle.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training was cancelled")]
    Cancelled,
    #[error(transparent)]
    Algo(#[from] AlgoError),
}

/// Reports `(phase, fraction done 0–1)`; returning `false` cancels at the next checkpoint.
pub type Progress<'a> = &'a mut (dyn FnMut(&str, f32) -> bool + Send);

/// The interaction data a bundle is trained on.
pub struct TrainingData {
    pub items: Vec<ProductId>,
    pub n_users: usize,
    pub matrix: CsrMatrix,
    /// Each user's items in time order (positive events only, repeats collapsed).
    pub sequences: Vec<Vec<u32>>,
    /// The matrix's entries with their latest time, kept only when session-weighted EASE
    /// will train on them ([`crate::config::EaseConfig::is_timed`]).
    pub timed: Option<Vec<Interaction>>,
    pub summary: TrainSummary,
}

/// One event as training reads it: ids interned, 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub user: u32,
    pub item: u32,
    pub ts_ms: i64,
    /// A rating's value, else 0.
    pub value: f32,
    pub kind: ActivityType,
}

/// A snapshot of the event log for training: product events only, user and product ids
/// interned (millions of events would otherwise hold millions of id strings).
#[derive(Debug, Default, Clone)]
pub struct TrainingLog {
    pub users: Vec<UserId>,
    pub items: Vec<ProductId>,
    pub rows: Vec<Row>,
    user_index: HashMap<UserId, u32>,
    item_index: HashMap<ProductId, u32>,
}

impl TrainingLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log with room for `events` rows: a snapshot of known size never pays the
    /// transient double allocation of a growing vector (20M events: ~0.5 GiB).
    pub fn with_capacity(events: usize) -> Self {
        Self { rows: Vec::with_capacity(events), ..Self::default() }
    }

    /// Adds a log event (events without a product are skipped).
    pub fn push(&mut self, e: &LogEvent) {
        let Some(product) = &e.product_id else { return };
        let n = self.users.len() as u32;
        let user = *self.user_index.entry(e.user_id.clone()).or_insert_with(|| {
            self.users.push(e.user_id.clone());
            n
        });
        let n = self.items.len() as u32;
        let item = *self.item_index.entry(product.clone()).or_insert_with(|| {
            self.items.push(product.clone());
            n
        });
        self.rows.push(Row {
            user,
            item,
            ts_ms: e.ts_ms,
            value: e.value.unwrap_or(0.0),
            kind: e.activity_type,
        });
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a LogEvent>) -> Self {
        let mut log = Self::new();
        for e in events {
            log.push(e);
        }
        log
    }

    /// The same id tables with only the rows `keep` admits (indices stay valid).
    pub fn subset(&self, keep: impl Fn(&Row) -> bool) -> Self {
        Self {
            users: self.users.clone(),
            items: self.items.clone(),
            rows: self.rows.iter().filter(|r| keep(r)).copied().collect(),
            user_index: HashMap::new(),
            item_index: HashMap::new(),
        }
    }

    /// Row `r` as a log event (sequence 0).
    pub fn event(&self, r: &Row) -> LogEvent {
        LogEvent {
            seq: 0,
            user_id: self.users[r.user as usize].clone(),
            product_id: Some(self.items[r.item as usize].clone()),
            activity_type: r.kind,
            ts_ms: r.ts_ms,
            value: (r.kind == ActivityType::Rating).then_some(r.value),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Turns events into training data: signed, decayed weights summed per (user, item); a
/// pair whose sum is not positive is dropped; each user keeps their `maxItemsPerUser` most
/// recent items. Time decay is measured from the newest event, so the same events always
/// give the same data. The item vocabulary is the log's.
pub fn prepare(log: &TrainingLog, config: &TrainingConfig) -> TrainingData {
    let mut rows: Vec<(u32, u32, f32, i64)> = Vec::with_capacity(log.rows.len());
    for r in &log.rows {
        let value = (r.kind == ActivityType::Rating).then_some(r.value);
        let w = config.weights.event_weight(r.kind, value);
        if w != 0.0 && w.is_finite() {
            rows.push((r.user, r.item, w, r.ts_ms / 1000));
        }
    }
    let used_events = rows.len() as u64;
    let item_ids = log.items.clone();
    let reference = rows.iter().map(|r| r.3).max().unwrap_or(0);
    let decay = config.time_decay;
    // In place (a stable parallel sort would allocate a second copy of `rows`); ties of
    // one visitor at the same second are ordered by item, so the result is deterministic.
    rows.par_sort_unstable_by_key(|r| (r.0, r.3, r.1));
    let mut bounds = vec![0];
    for k in 1..rows.len() {
        if rows[k].0 != rows[k - 1].0 {
            bounds.push(k);
        }
    }
    if !rows.is_empty() {
        bounds.push(rows.len());
    }
    let max_items = config.max_items_per_user;
    let per_user: Vec<(u32, Vec<Interaction>, Vec<u32>)> = bounds
        .par_windows(2)
        .map(|b| {
            let group = &rows[b[0]..b[1]];
            let user = group[0].0;
            let mut sums: HashMap<u32, (f32, i64)> = HashMap::new();
            for &(_, item, w, ts) in group {
                let age_days = (reference - ts).max(0) as f64 / 86_400.0;
                let e = sums.entry(item).or_insert((0.0, ts));
                e.0 += w * decay.powf(age_days) as f32;
                e.1 = e.1.max(ts);
            }
            let mut kept: Vec<(u32, f32, i64)> =
                sums.into_iter().filter(|(_, (w, _))| *w > 0.0).map(|(i, (w, t))| (i, w, t)).collect();
            kept.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            kept.truncate(max_items);
            let keep: std::collections::HashSet<u32> = kept.iter().map(|k| k.0).collect();
            let mut sequence: Vec<u32> = Vec::new();
            for &(_, item, w, _) in group {
                if w > 0.0 && keep.contains(&item) && sequence.last() != Some(&item) {
                    sequence.push(item);
                }
            }
            let interactions =
                kept.into_iter().map(|(item, weight, ts)| Interaction { user, item, weight, ts }).collect();
            (user, interactions, sequence)
        })
        .collect();
    // Memory: at 20M events these buffers are the job's largest; free each once used.
    drop(rows);
    let n_users = log.users.len();
    let mut interactions = Vec::with_capacity(per_user.iter().map(|p| p.1.len()).sum());
    let mut sequences = vec![Vec::new(); n_users];
    for (user, i, s) in per_user {
        sequences[user as usize] = s;
        interactions.extend(i);
    }
    let opts =
        MatrixOptions { n_users: Some(n_users), n_items: Some(item_ids.len()), ..MatrixOptions::default() };
    let matrix =
        CsrMatrix::from_interactions(&interactions, &opts).expect("weights are positive and ids in range");
    let timed = trains_timed_ease(config, item_ids.len()).then_some(interactions);
    let summary = TrainSummary {
        events: used_events,
        users: n_users as u64,
        items: item_ids.len() as u64,
        interactions: matrix.nnz() as u64,
    };
    TrainingData { items: item_ids, n_users, matrix, sequences, timed, summary }
}

fn trains_ease(config: &TrainingConfig, n_items: usize) -> bool {
    config.uses("ease") && n_items > 0 && n_items <= config.ease.max_items
}

fn trains_timed_ease(config: &TrainingConfig, n_items: usize) -> bool {
    trains_ease(config, n_items) && config.ease.is_timed()
}

/// Trains every configured algorithm on `data`.
pub fn train(
    mut data: TrainingData,
    config: &TrainingConfig,
    data_range: (u64, u64),
    progress: Progress,
) -> Result<ModelBundle, TrainError> {
    let n_items = data.items.len();
    let mut bundle = ModelBundle {
        items: data.items,
        config: config.clone(),
        data_range,
        summary: data.summary,
        als: None,
        knn: None,
        ease: None,
        transitions: None,
        popularity: None,
    };
    let mut step = |phase: &str, f: f32| if progress(phase, f) { Ok(()) } else { Err(TrainError::Cancelled) };
    if config.uses("popularity") {
        step("popularity", 0.1)?;
        bundle.popularity = Some(Popularity::train(&data.matrix, &PopularityParams { count_users: false }));
    }
    if n_items == 0 {
        step("done", 1.0)?;
        return Ok(bundle);
    }
    if config.uses("transitions") {
        step("transitions", 0.12)?;
        bundle.transitions = Some(Transitions::train(&data.sequences, n_items, &config.transitions)?);
    }
    if config.uses("item-knn") {
        step("item-knn", 0.15)?;
        bundle.knn = Some(ItemKnn::train(&data.matrix, &config.item_knn)?);
    }
    if trains_ease(config, n_items) {
        step("ease", 0.25)?;
        let params = EaseParams {
            lambda: config.ease.lambda,
            max_items: config.ease.max_items,
            session_seconds: config.ease.session_seconds,
            session_floor: config.ease.session_floor,
            ..EaseParams::default()
        };
        // The times are needed only here: freed before ALS allocates.
        let ease = match data.timed.take() {
            Some(timed) => Ease::train_timed(&data.matrix, &timed, &params)?,
            None => Ease::train(&data.matrix, &params)?,
        };
        bundle.ease = Some(ease.to_sparse(config.ease.k));
    }
    if config.uses("als") {
        step("als", 0.35)?;
        let mut cancelled = false;
        let als = Als::train_until(&data.matrix, &config.als, &mut |done, total| {
            cancelled = !progress("als", 0.35 + 0.6 * done as f32 / total.max(1) as f32);
            !cancelled
        })?;
        match als {
            Some(m) => bundle.als = Some(m.without_users()),
            None => return Err(TrainError::Cancelled),
        }
    }
    progress("done", 1.0);
    Ok(bundle)
}

/// [`prepare`] then [`train`].
pub fn train_bundle(
    events: &TrainingLog,
    config: &TrainingConfig,
    data_range: (u64, u64),
    progress: Progress,
) -> Result<ModelBundle, TrainError> {
    if !progress("preparing", 0.0) {
        return Err(TrainError::Cancelled);
    }
    train(prepare(events, config), config, data_range, progress)
}
