//! The two configurations of the engine: how a model bundle is trained
//! ([`TrainingConfig`], the `config` of `POST /api/v1/training/train`) and how lists are
//! ranked from it ([`RankingConfig`], what an experiment variant changes).

use std::collections::{BTreeMap, HashMap};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};
use vitrina_algo::{
    ltr::RankerParams,
    models::{AlsParams, ItemKnnParams, TransitionParams},
};
use vitrina_core::{recommend::Source, ActivityType, ValidationError};

/// Default weight of one event of each activity type. A rating's weight is multiplied by
/// its value.
pub fn default_weight(t: ActivityType) -> f32 {
    match t {
        ActivityType::View => 1.0,
        ActivityType::Click => 1.5,
        ActivityType::Like => 2.0,
        ActivityType::AddToCart => 2.5,
        ActivityType::RemoveFromCart => -1.0,
        ActivityType::Purchase => 5.0,
        ActivityType::Search => 0.0,
        ActivityType::Rating => 0.5,
    }
}

/// An event's weight from its type's weight: a rating scales by its value.
fn scaled(w: f32, t: ActivityType, value: Option<f32>) -> f32 {
    match t {
        ActivityType::Rating => w * value.unwrap_or(0.0),
        _ => w,
    }
}

/// [`EventWeights`] resolved into an array indexed by activity type
/// (`ActivityType::ALL` is in discriminant order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindWeights([f32; ActivityType::ALL.len()]);

impl KindWeights {
    /// [`EventWeights::event_weight`].
    pub fn event_weight(&self, t: ActivityType, value: Option<f32>) -> f32 {
        scaled(self.0[t as usize], t, value)
    }
}

/// Event-type weights: what one event of a type says about interest in its product.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventWeights(pub HashMap<ActivityType, f32>);

impl EventWeights {
    pub fn weight(&self, t: ActivityType) -> f32 {
        self.0.get(&t).copied().unwrap_or_else(|| default_weight(t))
    }

    /// The signed interest an event expresses (a rating scales by its value).
    pub fn event_weight(&self, t: ActivityType, value: Option<f32>) -> f32 {
        scaled(self.weight(t), t, value)
    }

    /// The same weights as an array by activity type, for loops over millions of events
    /// (no hash look-up per event).
    pub fn by_kind(&self) -> KindWeights {
        KindWeights(ActivityType::ALL.map(|t| self.weight(t)))
    }

    fn validate(&self, field: &str) -> Result<(), ValidationError> {
        for (t, w) in &self.0 {
            if !w.is_finite() || !(-100.0..=100.0).contains(w) {
                return Err(ValidationError::new(
                    format!("{field}.{t}"),
                    "must be a number from -100 to 100",
                ));
            }
        }
        Ok(())
    }
}

/// Sparse EASE settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EaseConfig {
    /// Train EASE only when the catalogue has at most this many items (it is dense while
    /// training: memory grows as n²).
    pub max_items: usize,
    pub lambda: f32,
    /// Weights kept per item for serving.
    pub k: usize,
    /// Session weighting: a visitor's two items add `sessionFloor + (1 − sessionFloor)·
    /// exp(−|Δt| / sessionSeconds)` to their co-occurrence instead of 1, so items taken in one
    /// visit tie more strongly than items weeks apart (Δt between the latest events on each).
    /// 0 = plain EASE.
    pub session_seconds: f32,
    /// Weight of a co-occurrence of two items far apart in time, 0–1.
    pub session_floor: f32,
    /// Weights kept per item, negative ones too, in the second EASE model that
    /// `whole_history` reads (trained with `historyLambda`); 0 = `whole_history` reads the
    /// `k` model as `linear_item_model` does.
    pub history_k: usize,
    /// λ of the `whole_history` model.
    pub history_lambda: f32,
}

impl Default for EaseConfig {
    fn default() -> Self {
        Self {
            max_items: 8_000,
            lambda: 200.0,
            k: 100,
            session_seconds: 180.0,
            session_floor: 0.3,
            history_k: 1000,
            history_lambda: 150.0,
        }
    }
}

impl EaseConfig {
    /// Whether training needs each interaction's time (session weighting is on).
    pub fn is_timed(&self) -> bool {
        self.session_seconds > 0.0
    }
}

/// Parameters of a training job: which models, how events become interactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Weight of one event of each activity type (`view`, `click`, `like`, `add_to_cart`,
    /// `remove_from_cart`, `purchase`, `search`, `rating`: a rating scales by its value);
    /// types left out keep their default.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, f32>))]
    pub weights: EventWeights,
    /// Per-day decay factor in (0, 1]: an event `d` days older than the newest counts
    /// `timeDecay^d`.
    pub time_decay: f64,
    /// Models to train, of `als`, `item-knn`, `ease`, `transitions`, `popularity`.
    pub algorithms: Vec<String>,
    /// Most recent distinct items per user that take part in training.
    pub max_items_per_user: usize,
    pub als: AlsParams,
    pub item_knn: ItemKnnParams,
    pub transitions: TransitionParams,
    pub ease: EaseConfig,
    /// Validation before promotion: users held out (their latest item), 0 to skip.
    pub validation_users: usize,
    /// Fewer held-out users than this (0 and 1 both mean one) and the candidate is not
    /// validated: while a model is active, it is recorded `unvalidated` and needs an explicit
    /// activation with `force` — also when `validationUsers` is 0 (validation skipped). The
    /// first model of a shop has nothing to be compared with and is promoted.
    pub min_validation_users: usize,
    /// Validation trains on the events of at most this many other users (randomly drawn), so
    /// it stays cheap on a large log; 0 = all.
    pub validation_sample_users: usize,
    /// The candidate is promoted when its NDCG@10 ≥ the active model's × (1 − tolerance).
    pub tolerance: f64,
    pub seed: u64,
    /// The learned ranker trained with the models.
    pub ranker: RankerTrainingConfig,
}

/// How a training job trains the learned ranker (`learn` module): at a cut in time, on
/// sampled visitors' candidates labelled by what they did after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RankerTrainingConfig {
    /// Train a learned ranker; it orders lists only if it beats the blend on visitors it did
    /// not train on (by two standard errors of the paired NDCG difference).
    pub enabled: bool,
    /// Share of the product events, the newest, that label the lists: the cut is placed
    /// before them (0.01–0.5).
    pub label_share: f64,
    /// Visitors (with events before the cut and an action after it) whose lists are trained
    /// on, at most.
    pub max_visitors: usize,
    /// Other visitors whose events before the cut train the cut's models besides them, at
    /// most (0 = all).
    pub sample_users: usize,
    /// Boosting rounds at most (early stopping may keep fewer).
    pub trees: usize,
    pub learning_rate: f32,
    pub max_leaves: usize,
    pub min_rows_in_leaf: usize,
}

impl Default for RankerTrainingConfig {
    fn default() -> Self {
        let p = RankerParams::default();
        Self {
            enabled: true,
            label_share: 0.1,
            max_visitors: 10_000,
            sample_users: 50_000,
            trees: p.trees,
            learning_rate: p.learning_rate,
            max_leaves: p.max_leaves,
            min_rows_in_leaf: p.min_rows_in_leaf,
        }
    }
}

impl RankerTrainingConfig {
    /// The boosting parameters (the others at their defaults).
    pub fn params(&self) -> RankerParams {
        RankerParams {
            trees: self.trees,
            learning_rate: self.learning_rate,
            max_leaves: self.max_leaves,
            min_rows_in_leaf: self.min_rows_in_leaf,
            ..RankerParams::default()
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let ok = (0.01..=0.5).contains(&self.label_share)
            && (crate::learn::MIN_LISTS..=1_000_000).contains(&self.max_visitors)
            && (1..=2_000).contains(&self.trees)
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0
            && (2..=1_024).contains(&self.max_leaves)
            && (1..=100_000).contains(&self.min_rows_in_leaf);
        if ok {
            Ok(())
        } else {
            Err(ValidationError::new(
                "config.ranker",
                "labelShare must be 0.01–0.5, maxVisitors 120–1000000, trees 1–2000, learningRate in (0, 1], \
                 maxLeaves 2–1024 and minRowsInLeaf 1–100000",
            ))
        }
    }
}

/// The algorithms a bundle can hold.
pub const ALGORITHMS: [&str; 5] = ["als", "item-knn", "ease", "transitions", "popularity"];

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            weights: EventWeights::default(),
            time_decay: 0.95,
            algorithms: ALGORITHMS.iter().map(|a| a.to_string()).collect(),
            max_items_per_user: 500,
            als: AlsParams {
                factors: 64,
                iterations: 15,
                regularization: 0.1,
                alpha: 2.0,
                ..AlsParams::default()
            },
            item_knn: ItemKnnParams { k: 100, shrink: 10.0 },
            transitions: TransitionParams::default(),
            ease: EaseConfig::default(),
            validation_users: 2_000,
            min_validation_users: 3,
            validation_sample_users: 50_000,
            tolerance: 0.02,
            seed: 42,
            ranker: RankerTrainingConfig::default(),
        }
    }
}

impl TrainingConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(self.time_decay > 0.0 && self.time_decay <= 1.0) {
            return Err(ValidationError::new("config.timeDecay", "must be in (0, 1]"));
        }
        self.weights.validate("config.weights")?;
        if self.algorithms.is_empty() {
            return Err(ValidationError::new("config.algorithms", "name at least one algorithm"));
        }
        if let Some(bad) = self.algorithms.iter().find(|a| !ALGORITHMS.contains(&a.as_str())) {
            return Err(ValidationError::new(
                "config.algorithms",
                format!("unknown algorithm {bad:?} (expected {})", ALGORITHMS.join(", ")),
            ));
        }
        if !(2..=100_000).contains(&self.max_items_per_user) {
            return Err(ValidationError::new("config.maxItemsPerUser", "must be from 2 to 100000"));
        }
        // The bounds published in the OpenAPI document (`openapi/constraints.rs`).
        let upto = |v: f32, max: f32| (0.0..=max).contains(&v);
        let als = &self.als;
        if !(1..=512).contains(&als.factors) || !(1..=100).contains(&als.iterations) || als.cg_steps > 100 {
            return Err(ValidationError::new(
                "config.als",
                "factors must be 1–512, iterations 1–100 and cgSteps 0–100",
            ));
        }
        if !(upto(als.regularization, 1e6) && upto(als.alpha, 1e6)) {
            return Err(ValidationError::new(
                "config.als",
                "regularization and alpha must be from 0 to 1000000",
            ));
        }
        let knn = &self.item_knn;
        if !((1..=1000).contains(&knn.k) && upto(knn.shrink, 1e6)) {
            return Err(ValidationError::new("config.itemKnn", "k must be 1–1000 and shrink 0–1000000"));
        }
        let t = &self.transitions;
        let bounded = [t.gap_decay, t.backward, t.shrink, t.beta, t.recency].iter().all(|v| upto(*v, 1e6));
        if !bounded || !(1..=50).contains(&t.window) || !(1..=1000).contains(&t.k) || t.history_len > 1000 {
            return Err(ValidationError::new(
                "config.transitions",
                "values must be from 0 to 1000000, window 1–50, k 1–1000, historyLen 0–1000",
            ));
        }
        let e = &self.ease;
        let session_ok = upto(e.session_seconds, 1e9) && (0.0..=1.0).contains(&e.session_floor);
        let lambda_ok = |l: f32| l > 0.0 && l <= 1e9;
        if !(lambda_ok(e.lambda) && (1..=1000).contains(&e.k) && session_ok)
            || e.max_items > 30_000
            || !(lambda_ok(e.history_lambda) && e.history_k <= 5000)
        {
            return Err(ValidationError::new(
                "config.ease",
                "lambda and historyLambda must be > 0 and at most 1e9, k 1–1000, historyK 0–5000, maxItems at \
                 most 30000, sessionSeconds 0–1e9, sessionFloor 0–1",
            ));
        }
        if !(0.0..=1.0).contains(&self.tolerance) {
            return Err(ValidationError::new("config.tolerance", "must be from 0 to 1"));
        }
        self.ranker.validate()?;
        Ok(())
    }

    pub fn uses(&self, algorithm: &str) -> bool {
        self.algorithms.iter().any(|a| a == algorithm)
    }
}

/// Weight of each candidate source in the final score.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceWeights(pub BTreeMap<String, f32>);

impl SourceWeights {
    pub fn get(&self, s: Source) -> f32 {
        self.0.get(s.as_str()).copied().unwrap_or_else(|| default_source_weight(s))
    }

    /// Weights in [`Source::ALL`] order.
    pub fn array(&self) -> [f32; Source::ALL.len()] {
        Source::ALL.map(|s| self.get(s))
    }
}

/// The default weight of a source: personalised sources lead, popularity fills in.
pub fn default_source_weight(s: Source) -> f32 {
    match s {
        Source::CollaborativeFiltering => 1.0,
        Source::MatrixFactorization => 1.0,
        Source::NextItem => 1.0,
        Source::LinearItemModel => 1.0,
        // half: on the validation splits it lifted random-80-20 without costing next-item much
        Source::WholeHistory => 0.5,
        Source::Trending => 0.3,
        Source::PopularInCategory => 0.25,
        Source::NewItem => 0.1,
    }
}

/// How lists are ranked: source weights and business rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RankingConfig {
    /// Weight per source (`collaborative_filtering`, `matrix_factorization`, `next_item`,
    /// `linear_item_model`, `whole_history`, `trending`, `popular_in_category`, `new_item`).
    pub weights: SourceWeights,
    /// At most this many items of one category in a list; 0 = no cap.
    pub max_per_category: usize,
    /// A product the visitor purchased within this many days is never recommended.
    pub purchased_window_days: u32,
    /// Leave out items the visitor interacted with in their recent history (the last
    /// `history_events`), and every item they rated (the latest 1,000 rated).
    pub exclude_seen: bool,
    /// Recent events of the visitor that shape the list.
    pub history_events: usize,
    /// Candidates each source contributes before ranking.
    pub candidates_per_source: usize,
    /// Products created within this many days count as new (exploration).
    pub new_item_days: u32,
    /// Per-step decay of an event's weight by how far back it is in the visitor's history.
    pub recency: f32,
    /// Clusters probed in the embedding index, as a share of all clusters.
    pub probe_share: f32,
    /// Share of each list reserved for new products (exploration), rounded down: 0.1 gives
    /// one slot in a list of ten.
    pub exploration: f32,
    /// What orders the candidates: `learned` — the active model's learned ranker when it
    /// has one, else the blend; `blend` — the weighted sum of the sources' scores.
    pub ranker: RankerChoice,
    /// Candidates the learned ranker scores: the blend's best this many that pass the rules.
    pub rerank_depth: usize,
}

/// What orders a list's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankerChoice {
    #[default]
    Learned,
    Blend,
}

impl Default for RankingConfig {
    fn default() -> Self {
        Self {
            weights: SourceWeights::default(),
            max_per_category: 0,
            purchased_window_days: 365,
            exclude_seen: true,
            history_events: 50,
            candidates_per_source: 100,
            new_item_days: 14,
            recency: 0.9,
            probe_share: 0.02,
            exploration: 0.1,
            ranker: RankerChoice::Learned,
            rerank_depth: 100,
        }
    }
}

impl RankingConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (name, w) in &self.weights.0 {
            if name.parse::<Source>().is_err() {
                return Err(ValidationError::new(format!("weights.{name}"), "is not a source"));
            }
            if !w.is_finite() || !(0.0..=100.0).contains(w) {
                return Err(ValidationError::new(format!("weights.{name}"), "must be from 0 to 100"));
            }
        }
        if !(1..=1000).contains(&self.history_events) {
            return Err(ValidationError::new("historyEvents", "must be from 1 to 1000"));
        }
        if !(1..=5000).contains(&self.candidates_per_source) {
            return Err(ValidationError::new("candidatesPerSource", "must be from 1 to 5000"));
        }
        if !(self.recency > 0.0 && self.recency <= 1.0) {
            return Err(ValidationError::new("recency", "must be in (0, 1]"));
        }
        if !(0.0..=0.5).contains(&self.exploration) {
            return Err(ValidationError::new("exploration", "must be from 0 to 0.5"));
        }
        if !(self.probe_share > 0.0 && self.probe_share <= 1.0) {
            return Err(ValidationError::new("probeShare", "must be in (0, 1]"));
        }
        if !(1..=1000).contains(&self.rerank_depth) {
            return Err(ValidationError::new("rerankDepth", "must be from 1 to 1000"));
        }
        Ok(())
    }
}

/// `base` with the partial config `over` merged in — objects key by key, anything else
/// replaced — and read back as `T`: how an experiment variant's ranking and `vitrina eval
/// --engine-config` apply over a full config. The error names the offending field's path;
/// validation is the caller's.
pub fn overlaid<T: Serialize + DeserializeOwned>(base: &T, over: &Map<String, Value>) -> Result<T, String> {
    let mut doc = serde_json::to_value(base).map_err(|e| e.to_string())?;
    merge(&mut doc, &Value::Object(over.clone()));
    serde_path_to_error::deserialize(doc).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn merge(doc: &mut Value, over: &Value) {
    match (doc, over) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, v) in o {
                merge(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (d, o) => *d = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_training_config_parses_and_defaults_fill_the_rest() {
        let c: TrainingConfig = serde_json::from_value(serde_json::json!(
            {"weights": {"view": 1.0, "add_to_cart": 2.5, "purchase": 5.0}, "timeDecay": 0.9}
        ))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.weights.weight(ActivityType::AddToCart), 2.5);
        assert_eq!(c.weights.weight(ActivityType::Like), default_weight(ActivityType::Like));
        assert_eq!(c.weights.event_weight(ActivityType::Rating, Some(4.0)), 2.0);
        let table = c.weights.by_kind();
        for t in ActivityType::ALL {
            for value in [None, Some(0.0), Some(4.0)] {
                assert_eq!(table.event_weight(t, value), c.weights.event_weight(t, value), "{t:?} {value:?}");
            }
        }
        assert_eq!(table.event_weight(ActivityType::AddToCart, None), 2.5, "a configured weight");
        assert!(c.uses("als") && c.uses("popularity"));
        assert!(serde_json::from_value::<TrainingConfig>(serde_json::json!({"weights": {"teleport": 1}}))
            .is_err());
    }

    #[test]
    fn invalid_configs_name_their_field() {
        let mut c = TrainingConfig { time_decay: 0.0, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "config.timeDecay");
        c.time_decay = 0.9;
        c.weights.0.insert(ActivityType::View, f32::INFINITY);
        assert_eq!(c.validate().unwrap_err().field, "config.weights.view");
        let c = TrainingConfig { algorithms: vec!["magic".into()], ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "config.algorithms");
        for (seconds, floor) in [(-1.0, 0.5), (f32::NAN, 0.5), (600.0, 1.5), (600.0, -0.1)] {
            let mut c = TrainingConfig::default();
            (c.ease.session_seconds, c.ease.session_floor) = (seconds, floor);
            assert_eq!(c.validate().unwrap_err().field, "config.ease", "{seconds} s, floor {floor}");
        }
        let c: TrainingConfig = serde_json::from_value(
            serde_json::json!({"ease": {"sessionSeconds": 1800, "sessionFloor": 0.3}}),
        )
        .unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.ease.is_timed() && TrainingConfig::default().ease.is_timed());
        let plain = serde_json::json!({"ease": {"sessionSeconds": 0}});
        assert!(!overlaid(&TrainingConfig::default(), plain.as_object().unwrap()).unwrap().ease.is_timed());
        for (k, lambda) in [(5001, 150.0), (1000, 0.0), (1000, f32::NAN), (1000, 2e9)] {
            let mut c = TrainingConfig::default();
            (c.ease.history_k, c.ease.history_lambda) = (k, lambda);
            assert_eq!(
                c.validate().unwrap_err().field,
                "config.ease",
                "historyK {k}, historyLambda {lambda}"
            );
        }
        let mut c = TrainingConfig::default();
        c.ease.history_k = 0;
        assert_eq!(c.validate(), Ok(()), "historyK 0 turns the second model off");
        let mut r = RankingConfig::default();
        r.weights.0.insert("nonsense".into(), 1.0);
        assert_eq!(r.validate().unwrap_err().field, "weights.nonsense");
    }

    #[test]
    fn overlaid_merges_key_by_key_and_names_a_bad_field() {
        let over = serde_json::json!({"ease": {"sessionSeconds": 60}, "algorithms": ["ease"]});
        let c = overlaid(&TrainingConfig::default(), over.as_object().unwrap()).unwrap();
        assert_eq!((c.ease.session_seconds, c.ease.lambda), (60.0, EaseConfig::default().lambda));
        assert_eq!(c.algorithms, ["ease"]);
        let bad = serde_json::json!({"ease": {"lambda": "big"}});
        let err = overlaid(&TrainingConfig::default(), bad.as_object().unwrap()).unwrap_err();
        assert!(err.starts_with("ease.lambda: "), "{err}");
    }

    #[test]
    fn source_weights_default_per_source_and_override_by_name() {
        let mut w = SourceWeights::default();
        assert_eq!(w.get(Source::Trending), 0.3);
        w.0.insert("trending".into(), 2.0);
        assert_eq!(w.array()[Source::Trending.index()], 2.0);
    }

    #[test]
    fn the_shipped_example_training_config_is_valid() {
        let example: TrainingConfig = serde_json::from_str(include_str!("../../../examples/training.json"))
            .expect("examples/training.json parses");
        example.validate().expect("examples/training.json is valid");
        assert_eq!(example.min_validation_users, 3);
    }
}
