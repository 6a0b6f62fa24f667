//! Training a [`ModelBundle`] from log events: event-type weights and time decay turn the
//! events into a user×item matrix and per-user sequences; each configured algorithm is
//! trained on them (in the caller's rayon pool, so the caller bounds the CPU it takes).

use std::collections::HashMap;

use rayon::prelude::*;
use vitrina_algo::{
    matrix::{CsrMatrix, Interaction},
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

impl Row {
    /// A rating's value; `None` for the other types.
    pub fn value(&self) -> Option<f32> {
        (self.kind == ActivityType::Rating).then_some(self.value)
    }
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

    /// Only the rows `keep` admits, with only their users in the user table (renumbered in
    /// order of first appearance); the item table stays whole.
    pub fn subset_users(&self, keep: impl Fn(&Row) -> bool) -> Self {
        let mut renumbered = vec![u32::MAX; self.users.len()];
        let mut users = Vec::new();
        let rows = self
            .rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| {
                let new = &mut renumbered[r.user as usize];
                if *new == u32::MAX {
                    *new = users.len() as u32;
                    users.push(self.users[r.user as usize].clone());
                }
                Row { user: *new, ..*r }
            })
            .collect();
        Self {
            users,
            items: self.items.clone(),
            rows,
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
            value: r.value(),
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
///
/// Memory: the rows are grouped by user through a counting sort of their indices (4 bytes a
/// row, not a copy of the 24-byte rows), and the matrix is assembled chunk by chunk of users
/// without an intermediate list of all interactions (20M events: a job's peak is 0.2–0.4 GiB
/// lower, see docs/BENCHMARKS.md). `timed` lists each user's cells by item.
pub fn prepare(log: &TrainingLog, config: &TrainingConfig) -> TrainingData {
    prepare_in_chunks(log, config, USERS_PER_CHUNK)
}

fn prepare_in_chunks(log: &TrainingLog, config: &TrainingConfig, users_per_chunk: usize) -> TrainingData {
    let weights = config.weights.by_kind();
    let weight = |r: &Row| weights.event_weight(r.kind, r.value());
    let counts = |w: f32| w != 0.0 && w.is_finite();
    let n_users = log.users.len();
    let groups = group_by_user(log, n_users, |r| counts(weight(r)));
    let used_events = groups.order.len() as u64;
    let reference = groups.order.iter().map(|&k| log.rows[k as usize].ts_ms / 1000).max().unwrap_or(0);
    let timed = trains_timed_ease(config, log.items.len());
    let (decay, max_items) = (config.time_decay, config.max_items_per_user);
    let item_ids = log.items.clone();
    // Every kept cell comes from at least one counted row: that bounds the matrix's size.
    let bound = groups.order.len();
    let mut indptr = Vec::with_capacity(n_users + 1);
    let mut indices = Vec::with_capacity(bound);
    let mut values = Vec::with_capacity(bound);
    let mut sequences = Vec::with_capacity(n_users);
    let mut interactions = Vec::new();
    indptr.push(0);
    // Users in chunks: only one chunk's per-user rows exist besides the matrix being built.
    let step = users_per_chunk.max(1);
    for first in (0..n_users).step_by(step) {
        let rows: Vec<UserRow> = (first..(first + step).min(n_users))
            .into_par_iter()
            .map(|u| {
                // One read of each row (a user's rows are scattered over the log), then a local
                // stable sort into time order: ties of one visitor at the same second are
                // ordered by item, then by log order, so weights always sum in the same order.
                let mut events: Vec<(i64, u32, f32)> = groups.order[groups.starts[u]..groups.starts[u + 1]]
                    .iter()
                    .map(|&k| {
                        let r = &log.rows[k as usize];
                        (r.ts_ms / 1000, r.item, weight(r))
                    })
                    .collect();
                events.sort_by_key(|e| (e.0, e.1));
                user_row(&events, reference, decay, max_items, timed)
            })
            .collect();
        for row in rows {
            let user = sequences.len() as u32;
            if let Some(times) = &row.times {
                let cells = row.items.iter().zip(&row.weights).zip(times);
                interactions.extend(cells.map(|((&item, &weight), &ts)| Interaction {
                    user,
                    item,
                    weight,
                    ts,
                }));
            }
            indices.extend_from_slice(&row.items);
            values.extend_from_slice(&row.weights);
            indptr.push(indices.len());
            sequences.push(row.sequence);
        }
    }
    indices.shrink_to_fit();
    values.shrink_to_fit();
    let matrix = CsrMatrix::from_parts(n_users, item_ids.len(), indptr, indices, values)
        .expect("per-user rows are sorted and ids in range");
    let summary = TrainSummary {
        events: used_events,
        users: n_users as u64,
        items: item_ids.len() as u64,
        interactions: matrix.nnz() as u64,
    };
    TrainingData {
        items: item_ids,
        n_users,
        matrix,
        sequences,
        timed: timed.then_some(interactions),
        summary,
    }
}

/// Users whose rows [`prepare`] builds at a time.
const USERS_PER_CHUNK: usize = 65_536;

/// Indices of the rows `keep` admits, grouped by user (each group in log order).
struct UserGroups {
    order: Vec<u32>,
    starts: Vec<usize>,
}

fn group_by_user(log: &TrainingLog, n_users: usize, keep: impl Fn(&Row) -> bool) -> UserGroups {
    let mut starts = vec![0usize; n_users + 1];
    for r in log.rows.iter().filter(|r| keep(r)) {
        starts[r.user as usize + 1] += 1;
    }
    for u in 0..n_users {
        starts[u + 1] += starts[u];
    }
    let mut order = vec![0u32; starts[n_users]];
    let mut next = starts.clone();
    // Row indices are stored in 4 bytes: a snapshot of 2^32 events (about 100 GiB of rows)
    // would not fit in memory anyway.
    assert!(u32::try_from(log.rows.len()).is_ok(), "a training snapshot holds at most 2^32 - 1 events");
    for (k, r) in log.rows.iter().enumerate().filter(|(_, r)| keep(r)) {
        order[next[r.user as usize]] = k as u32;
        next[r.user as usize] += 1;
    }
    UserGroups { order, starts }
}

/// One user's training data.
struct UserRow {
    /// Kept items, ascending, and their summed decayed weights.
    items: Vec<u32>,
    weights: Vec<f32>,
    /// Each kept item's latest time (seconds), when timed EASE needs it.
    times: Option<Vec<i64>>,
    /// Kept items in time order, repeats collapsed.
    sequence: Vec<u32>,
}

/// A user's `(ts seconds, item, weight)` events in time order → their row: weights decayed
/// from `reference` and summed per item, non-positive sums dropped, the `max_items` most
/// recent items kept.
fn user_row(
    events: &[(i64, u32, f32)],
    reference: i64,
    decay: f64,
    max_items: usize,
    timed: bool,
) -> UserRow {
    let mut sums: HashMap<u32, (f32, i64)> = HashMap::new();
    for &(ts, item, w) in events {
        let age_days = (reference - ts).max(0) as f64 / 86_400.0;
        let e = sums.entry(item).or_insert((0.0, ts));
        e.0 += w * decay.powf(age_days) as f32;
        e.1 = e.1.max(ts);
    }
    let mut kept: Vec<(u32, f32, i64)> =
        sums.into_iter().filter(|(_, (w, _))| *w > 0.0).map(|(i, (w, t))| (i, w, t)).collect();
    kept.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    kept.truncate(max_items);
    let mut sequence: Vec<u32> = Vec::new();
    kept.sort_unstable_by_key(|k| k.0);
    for &(_, item, w) in events {
        if w > 0.0 && sequence.last() != Some(&item) && kept.binary_search_by_key(&item, |k| k.0).is_ok() {
            sequence.push(item);
        }
    }
    UserRow {
        items: kept.iter().map(|k| k.0).collect(),
        weights: kept.iter().map(|k| k.1).collect(),
        times: timed.then(|| kept.iter().map(|k| k.2).collect()),
        sequence,
    }
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
        ease_history: None,
        engagement: None,
        transitions: None,
        popularity: None,
        ranker: None,
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
        let timed = data.timed.take();
        let fit = |params: &EaseParams| match &timed {
            Some(timed) => Ease::train_timed(&data.matrix, timed, params),
            None => Ease::train(&data.matrix, params),
        };
        let ease = fit(&params)?;
        bundle.ease = Some(ease.to_sparse(config.ease.k));
        if config.ease.history_k > 0 {
            let lambda = config.ease.history_lambda;
            bundle.ease_history = Some(if lambda == params.lambda {
                ease.to_sparse_signed(config.ease.history_k)
            } else {
                drop(ease);
                // a cancelled job stops before the second inversion
                step("ease", 0.3)?;
                fit(&EaseParams { lambda, ..params })?.to_sparse_signed(config.ease.history_k)
            });
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use rand::{rngs::StdRng, Rng, SeedableRng};
    use vitrina_core::{LogEvent, ProductId, UserId};

    use super::*;

    fn event(
        seq: u64,
        user: &str,
        kind: ActivityType,
        item: u32,
        ts_ms: i64,
        value: Option<f32>,
    ) -> LogEvent {
        LogEvent {
            seq,
            user_id: UserId::parse(user).unwrap(),
            product_id: Some(ProductId::parse(&format!("p{item}")).unwrap()),
            activity_type: kind,
            ts_ms,
            value,
        }
    }

    /// A log with what `prepare` must handle: repeats of an item, several events of one item
    /// in the same second, every activity type (negative remove-from-cart, zero-weight
    /// search, ratings including 0), a visitor with nothing positive and one whose events of
    /// an item cancel out.
    pub(crate) fn random_log(seed: u64) -> TrainingLog {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut events: Vec<LogEvent> = (0..3_000u64)
            .map(|seq| {
                let kind = ActivityType::ALL[rng.random_range(0..ActivityType::ALL.len())];
                let ts =
                    1_700_000_000_000 + rng.random_range(0..40) * 86_400_000 + rng.random_range(0..3) * 700;
                let value = (kind == ActivityType::Rating).then(|| rng.random_range(0..=10) as f32);
                let user = format!("u{}", rng.random_range(0..60));
                event(seq + 1, &user, kind, rng.random_range(0..40), ts, value)
            })
            .collect();
        let t = 1_700_000_000_000;
        events.push(event(3_001, "negative", ActivityType::RemoveFromCart, 1, t, None));
        events.push(event(3_002, "cancels", ActivityType::View, 2, t, None));
        events.push(event(3_003, "cancels", ActivityType::RemoveFromCart, 2, t, None));
        events.push(event(3_004, "cancels", ActivityType::Purchase, 3, t + 1000, None));
        TrainingLog::from_events(&events)
    }

    /// The matrix as `(user, item) → weight`.
    type Cells = BTreeMap<(u32, u32), f32>;

    /// `prepare` written the obvious way: every user's counted events filtered from the
    /// whole log and stably sorted, weights summed in a map.
    fn reference(log: &TrainingLog, config: &TrainingConfig) -> (Cells, Vec<Vec<u32>>) {
        let w = |r: &Row| config.weights.event_weight(r.kind, r.value());
        let counted: Vec<&Row> = log.rows.iter().filter(|r| w(r) != 0.0).collect();
        let newest = counted.iter().map(|r| r.ts_ms / 1000).max().unwrap_or(0);
        let mut sequences = vec![Vec::new(); log.users.len()];
        let mut cells = BTreeMap::new();
        for user in 0..log.users.len() as u32 {
            let mut mine: Vec<&Row> = counted.iter().copied().filter(|r| r.user == user).collect();
            mine.sort_by_key(|r| (r.ts_ms / 1000, r.item)); // stable: ties keep log order
            let mut sums: BTreeMap<u32, (f32, i64)> = BTreeMap::new();
            for r in &mine {
                let ts = r.ts_ms / 1000;
                let age = (newest - ts).max(0) as f64 / 86_400.0;
                let e = sums.entry(r.item).or_insert((0.0, ts));
                e.0 += w(r) * config.time_decay.powf(age) as f32;
                e.1 = e.1.max(ts);
            }
            let mut kept: Vec<(u32, f32, i64)> =
                sums.into_iter().filter(|(_, (s, _))| *s > 0.0).map(|(i, (s, t))| (i, s, t)).collect();
            kept.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            kept.truncate(config.max_items_per_user);
            for &(item, s, _) in &kept {
                cells.insert((user, item), s);
            }
            for r in mine {
                let seq = &mut sequences[user as usize];
                if w(r) > 0.0 && seq.last() != Some(&r.item) && kept.iter().any(|k| k.0 == r.item) {
                    seq.push(r.item);
                }
            }
        }
        (cells, sequences)
    }

    #[test]
    fn prepare_matches_the_obvious_computation() {
        for (seed, decay, max_items) in [(1, 1.0, 500), (2, 0.9, 500), (3, 0.95, 7), (4, 1.0, 1), (6, 0.9, 0)]
        {
            let log = random_log(seed);
            let config = TrainingConfig {
                time_decay: decay,
                max_items_per_user: max_items,
                ..TrainingConfig::default()
            };
            let data = prepare(&log, &config);
            let chunked = prepare_in_chunks(&log, &config, 7);
            assert_eq!(chunked.matrix, data.matrix, "seed {seed}: users in chunks of 7");
            assert_eq!(chunked.sequences, data.sequences);
            let (cells, sequences) = reference(&log, &config);
            let mut got = BTreeMap::new();
            for u in 0..data.matrix.n_rows() {
                let (items, values) = data.matrix.row(u);
                assert!(items.windows(2).all(|w| w[0] < w[1]), "row {u} sorted and without repeats");
                for (&i, &v) in items.iter().zip(values) {
                    got.insert((u as u32, i), v);
                }
            }
            // Bit for bit: the same weights, summed in the same order.
            assert_eq!(got, cells, "seed {seed}");
            assert_eq!(data.sequences, sequences, "seed {seed}");
            assert_eq!(data.n_users, log.users.len());
            let uncounted = log
                .rows
                .iter()
                .filter(|r| {
                    r.kind == ActivityType::Search || (r.kind == ActivityType::Rating && r.value == 0.0)
                })
                .count();
            assert_eq!(
                data.summary.events as usize,
                log.rows.len() - uncounted,
                "searches and 0-ratings do not count"
            );
            let user = |name: &str| log.users.iter().position(|u| u.as_str() == name).unwrap();
            assert_eq!(data.matrix.row_len(user("negative")), 0, "nothing positive: an empty row");
            assert!(data.sequences[user("negative")].is_empty());
            let kept: Vec<&str> =
                data.matrix.row(user("cancels")).0.iter().map(|&i| log.items[i as usize].as_str()).collect();
            assert_eq!(kept, ["p3"][..max_items.min(1)], "the cancelled item is dropped");
            if max_items > 0 {
                assert!(got.len() >= 60, "seed {seed}: the fixture is not trivial ({} cells)", got.len());
            }
        }
        let empty = prepare(&TrainingLog::new(), &TrainingConfig::default());
        assert_eq!((empty.matrix.nnz(), empty.n_users, empty.summary.events), (0, 0, 0));
    }

    #[test]
    fn timed_ease_gets_each_cell_with_its_latest_time() {
        let log = random_log(5);
        let mut config = TrainingConfig::default();
        config.ease.session_seconds = 60.0;
        let data = prepare(&log, &config);
        let timed = data.timed.expect("timed EASE needs the times");
        assert_eq!(timed.len(), data.matrix.nnz());
        for x in &timed {
            let latest = log
                .rows
                .iter()
                .filter(|r| {
                    let w = config.weights.event_weight(r.kind, r.value());
                    r.user == x.user && r.item == x.item && w != 0.0
                })
                .map(|r| r.ts_ms / 1000)
                .max();
            assert_eq!(Some(x.ts), latest);
            let (items, _) = data.matrix.row(x.user as usize);
            assert!(items.binary_search(&x.item).is_ok(), "a timed entry is a matrix entry");
        }
        let mut plain = TrainingConfig::default();
        plain.ease.session_seconds = 0.0;
        assert!(prepare(&log, &plain).timed.is_none(), "plain EASE keeps no times");
    }
}
