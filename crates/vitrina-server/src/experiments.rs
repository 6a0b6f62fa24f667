//! A/B experiments in the serving path: the stored experiments, the one running experiment
//! prepared for serving (each variant's ranking config merged over the server's and its
//! model loaded), per-visitor assignment, results, and the bandit / weight-tuning steps.
//!
//! The statistics, assignment and bandit logic are the pure `vitrina-experiments` crate;
//! this module adds storage, models and the engine. Impressions of an experiment carry the
//! variant label `{experimentId}/{variant}`, which is how results find them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vitrina_core::{
    changes::Change,
    events::{kinds, DomainEvent},
    ports::{ExperimentStore, Impression, ModelStatus, StoreError},
    ActivityType,
};
use vitrina_engine::{ActiveModel, Engine, PreparedModel, RankingConfig};
use vitrina_experiments::{
    attribution::{Attribution, AttributionMethod, Impression as ExpImpression, OutcomeKind, ShownItem},
    bandit,
    model::{Experiment, ExperimentSpec, Mode, Status},
    stats::{summarise, summarise_counts, Results},
    tuning::{self, WeightChange},
};

use crate::{artefacts::Artefacts, cluster::Cluster, ports::Ports, training};

/// Smallest per-source impressions before weight tuning moves a source's weight.
const TUNE_MIN_IMPRESSIONS: u64 = 200;
/// Largest relative change of a weight in one tuning step.
const TUNE_STEP: f64 = 0.2;

/// An experiment as stored and shown: the experiment plus weight tuning.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredExperiment {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub experiment: Experiment,
    /// Adjust each variant's source weights from its attributed results at every step.
    #[serde(default)]
    pub auto_tune_weights: bool,
    /// Every weight change made by tuning, oldest first (each reversible).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub weight_log: Vec<VariantWeightChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantWeightChange {
    pub variant: String,
    #[serde(flatten)]
    pub change: WeightChange,
}

/// What one visitor's request is served with.
pub struct Arm {
    /// `default`, or `{experimentId}/{variant}`.
    pub label: String,
    /// `None`: the engine's current ranking config.
    pub ranking: Option<Arc<RankingConfig>>,
    /// `None`: the active model.
    pub model: Option<Arc<ActiveModel>>,
}

impl Arm {
    /// The model and ranking config this arm serves with now (the default follows hot swaps
    /// and config changes of the engine).
    pub fn setup(&self, engine: &Engine) -> (Arc<ActiveModel>, Arc<RankingConfig>) {
        let model = self.model.clone().unwrap_or_else(|| engine.model());
        let ranking = self.ranking.clone().unwrap_or_else(|| engine.ranking());
        (model, ranking)
    }

    /// The version of the model this arm serves with.
    pub fn model_version(&self, engine: &Engine) -> String {
        self.model.as_ref().map_or_else(|| engine.model().version.clone(), |m| m.version.clone())
    }
}

struct Live {
    experiment: Experiment,
    arms: Vec<Arc<Arm>>,
}

/// Why an experiment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{0}")]
    Invalid(String, String),
    #[error("no experiment {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Experiments {
    store: Arc<dyn ExperimentStore>,
    all: Mutex<Vec<StoredExperiment>>,
    live: ArcSwapOption<Live>,
    default_arm: Arc<Arm>,
    /// Held across each read-check-write of an experiment (start, stop, step, revert), which
    /// awaits the store in between: without it two starts could both see nothing running.
    changes: tokio::sync::Mutex<()>,
    /// Told of every stored change, for the other processes.
    cluster: Cluster,
}

impl Experiments {
    /// Loads the stored experiments and prepares the running one, if any.
    pub async fn load(
        store: Arc<dyn ExperimentStore>,
        cluster: Cluster,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> anyhow::Result<Self> {
        let mut all = Vec::new();
        for doc in store.experiments().await? {
            all.push(serde_json::from_value::<StoredExperiment>(doc)?);
        }
        let default_arm = Arc::new(Arm { label: "default".into(), ranking: None, model: None });
        let this = Self {
            store,
            all: Mutex::new(all),
            live: ArcSwapOption::empty(),
            default_arm,
            changes: tokio::sync::Mutex::new(()),
            cluster,
        };
        let running = this.lock().iter().find(|e| e.experiment.status == Status::Running).cloned();
        if let Some(running) = running {
            match prepare(&running, ports, engine, artefacts).await {
                Ok(live) => this.live.store(Some(Arc::new(live))),
                Err(e) => {
                    tracing::error!(experiment = %running.experiment.id, error = %e, "running experiment cannot be served; visitors get the default")
                }
            }
        }
        Ok(this)
    }

    /// Reads the experiments back from the store, where another process may have changed
    /// them, and prepares the running one again if it changed.
    pub async fn reload(
        &self,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> anyhow::Result<()> {
        let _changing = self.changes.lock().await;
        let mut all = Vec::new();
        for doc in self.store.experiments().await? {
            all.push(serde_json::from_value::<StoredExperiment>(doc)?);
        }
        let running = all.iter().find(|e| e.experiment.status == Status::Running).cloned();
        *self.lock() = all;
        let Some(running) = running else {
            self.live.store(None);
            return Ok(());
        };
        if self.live.load().as_ref().is_some_and(|l| l.experiment == running.experiment) {
            return Ok(());
        }
        match prepare(&running, ports, engine, artefacts).await {
            Ok(live) => self.live.store(Some(Arc::new(live))),
            Err(e) => {
                self.live.store(None);
                tracing::error!(experiment = %running.experiment.id, error = %e, "running experiment cannot be served; visitors get the default")
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StoredExperiment>> {
        self.all.lock().expect("experiments lock")
    }

    pub fn list(&self) -> Vec<StoredExperiment> {
        self.lock().clone()
    }

    pub fn get(&self, id: &str) -> Result<StoredExperiment, ExperimentError> {
        self.lock()
            .iter()
            .find(|e| e.experiment.id == id)
            .cloned()
            .ok_or_else(|| ExperimentError::NotFound(id.into()))
    }

    /// The arm serving `visitor` now: their variant of the live experiment, else the default.
    pub fn arm_for(&self, visitor: Option<&str>) -> Arc<Arm> {
        let (Some(visitor), Some(live)) = (visitor, self.live.load_full()) else {
            return self.default_arm.clone();
        };
        if !live.experiment.is_live(Utc::now()) {
            return self.default_arm.clone();
        }
        let i = vitrina_experiments::assign::assign(&live.experiment.traffic, &live.experiment.salt, visitor);
        live.arms[i].clone()
    }

    /// The attribution window of the live experiment (24 h without one).
    pub fn attribution_window(&self) -> chrono::Duration {
        self.live.load().as_ref().map_or(chrono::Duration::hours(24), |l| l.experiment.attribution_window())
    }

    /// Validates and stores a new draft experiment.
    pub async fn create(
        &self,
        body: Value,
        ports: &Ports,
        engine: &Engine,
    ) -> Result<StoredExperiment, ExperimentError> {
        let Value::Object(mut body) = body else {
            return Err(ExperimentError::Invalid("body".into(), "must be a JSON object".into()));
        };
        let auto_tune_weights = match body.remove("autoTuneWeights") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return Err(ExperimentError::Invalid("autoTuneWeights".into(), "must be a boolean".into()))
            }
        };
        let spec: ExperimentSpec = serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
            let path = e.path().to_string();
            ExperimentError::Invalid(if path == "." { "body".into() } else { path }, e.inner().to_string())
        })?;
        spec.validate().map_err(|e| ExperimentError::Invalid(e.field, e.message))?;
        let models = ports.registry.models().await?;
        for (i, v) in spec.variants.iter().enumerate() {
            merged_ranking(&engine.ranking(), v.ranking.as_ref())
                .map_err(|m| ExperimentError::Invalid(format!("variants[{i}].ranking"), m))?;
            if let Some(n) = v.model_version {
                let usable = models.iter().any(|m| {
                    m.version == format!("v{n}")
                        && m.artefact.is_some()
                        && matches!(
                            m.status,
                            ModelStatus::Active | ModelStatus::Archived | ModelStatus::Validated
                        )
                });
                if !usable {
                    return Err(ExperimentError::Invalid(
                        format!("variants[{i}].modelVersion"),
                        format!("v{n} is not a trained, usable model in the registry"),
                    ));
                }
            }
        }
        let id = format!("exp-{}", uuid::Uuid::now_v7().simple());
        let experiment = Experiment::new(id, spec, vitrina_experiments::model::random_salt(), Utc::now())
            .map_err(|e| ExperimentError::Invalid(e.field, e.message))?;
        let stored = StoredExperiment { experiment, auto_tune_weights, weight_log: Vec::new() };
        self.save(&stored).await?;
        self.lock().push(stored.clone());
        Ok(stored)
    }

    async fn save(&self, e: &StoredExperiment) -> Result<(), ExperimentError> {
        let doc = serde_json::to_value(e).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.store.save_experiment(&e.experiment.id, doc).await?;
        self.cluster.tell(Change::Experiments);
        Ok(())
    }

    async fn replace(&self, e: StoredExperiment) -> Result<(), ExperimentError> {
        self.save(&e).await?;
        let mut all = self.lock();
        if let Some(slot) = all.iter_mut().find(|x| x.experiment.id == e.experiment.id) {
            *slot = e;
        }
        Ok(())
    }

    /// Starts a draft experiment; one experiment runs at a time.
    pub async fn start(
        &self,
        id: &str,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> Result<StoredExperiment, ExperimentError> {
        let _changing = self.changes.lock().await;
        let mut e = self.get(id)?;
        if let Some(other) = self.lock().iter().find(|x| x.experiment.status == Status::Running) {
            return Err(ExperimentError::Conflict(format!(
                "experiment {} is running; stop it first (one experiment runs at a time)",
                other.experiment.id
            )));
        }
        e.experiment.start(Utc::now()).map_err(|err| ExperimentError::Conflict(err.to_string()))?;
        let live = prepare(&e, ports, engine, artefacts).await.map_err(ExperimentError::Conflict)?;
        self.replace(e.clone()).await?;
        self.live.store(Some(Arc::new(live)));
        announce(ports, kinds::EXPERIMENT_STARTED, id);
        Ok(e)
    }

    pub async fn stop(&self, id: &str, ports: &Ports) -> Result<StoredExperiment, ExperimentError> {
        let _changing = self.changes.lock().await;
        let mut e = self.get(id)?;
        e.experiment.stop(Utc::now()).map_err(|err| ExperimentError::Conflict(err.to_string()))?;
        self.replace(e.clone()).await?;
        if self.live.load().as_ref().is_some_and(|l| l.experiment.id == id) {
            self.live.store(None);
        }
        announce(ports, kinds::EXPERIMENT_STOPPED, id);
        Ok(e)
    }

    /// Results from the experiment's impressions and the outcomes attributed to them.
    pub async fn results(&self, id: &str, ports: &Ports) -> Result<Results, ExperimentError> {
        let e = self.get(id)?;
        Ok(compute_results(&e.experiment, ports, Judge::All).await?)
    }

    /// One step of automation on a running experiment: the bandit moves traffic (bandit
    /// mode) and tuning adjusts each variant's source weights (`autoTuneWeights`). Every
    /// change is logged in the experiment. Returns the experiment after the step.
    pub async fn step(
        &self,
        id: &str,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> Result<StoredExperiment, ExperimentError> {
        let _changing = self.changes.lock().await;
        let mut e = self.get(id)?;
        if e.experiment.status != Status::Running {
            return Err(ExperimentError::Conflict(format!(
                "experiment {id} is {}, not running",
                e.experiment.status
            )));
        }
        let now = Utc::now();
        // Both the bandit and weight tuning judge only lists old enough to have been clicked.
        let judged_before = now - e.experiment.judge_after();
        let results = compute_results(&e.experiment, ports, Judge::ServedBefore(judged_before)).await?;
        let mut changed = false;
        if e.experiment.mode == Mode::Bandit {
            let seed = now.timestamp_millis() as u64;
            if let Some(change) = bandit::reallocate(&mut e.experiment, &results, now, seed) {
                tracing::info!(experiment = %id, traffic = ?change.traffic, reason = %change.reason, "bandit reallocated traffic");
                changed = true;
            }
        }
        if e.auto_tune_weights {
            let base = engine.ranking();
            for (i, variant) in e.experiment.variants.clone().iter().enumerate() {
                let Some(r) = results.variants.iter().find(|r| r.name == variant.name) else { continue };
                let ranking =
                    merged_ranking(&base, variant.ranking.as_ref()).map_err(ExperimentError::Conflict)?;
                let current: BTreeMap<String, f64> = vitrina_core::recommend::Source::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), f64::from(ranking.weights.get(*s))))
                    .collect();
                if let Some(change) = tuning::adjust_weights_at(
                    &current,
                    &r.by_source,
                    e.experiment.goal,
                    TUNE_MIN_IMPRESSIONS,
                    TUNE_STEP,
                    now,
                ) {
                    set_weights(&mut e.experiment.variants[i].ranking, &change.after);
                    tracing::info!(experiment = %id, variant = %variant.name, reason = %change.reason, "source weights tuned");
                    e.weight_log.push(VariantWeightChange { variant: variant.name.clone(), change });
                    changed = true;
                }
            }
        }
        if changed {
            self.apply(e.clone(), ports, engine, artefacts).await?;
        }
        Ok(e)
    }

    /// Undoes automation: traffic back to the spec's split and the last weight change of
    /// each variant reverted (both logged).
    pub async fn revert(
        &self,
        id: &str,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> Result<StoredExperiment, ExperimentError> {
        let _changing = self.changes.lock().await;
        let mut e = self.get(id)?;
        let now = Utc::now();
        bandit::revert(&mut e.experiment, now);
        let mut reverted: Vec<String> = Vec::new();
        for change in e.weight_log.clone().iter().rev() {
            if reverted.contains(&change.variant) || change.change.reason.starts_with("revert") {
                continue;
            }
            reverted.push(change.variant.clone());
            let Some(i) = e.experiment.variant_index(&change.variant) else { continue };
            let before = tuning::revert(&change.change);
            set_weights(&mut e.experiment.variants[i].ranking, &before);
            e.weight_log.push(VariantWeightChange {
                variant: change.variant.clone(),
                change: WeightChange {
                    at: now,
                    before: change.change.after.clone(),
                    after: before,
                    reason: format!("revert of the change at {}", change.change.at),
                },
            });
        }
        self.apply(e.clone(), ports, engine, artefacts).await?;
        Ok(e)
    }

    /// Stores `e` and, when it is the live experiment, re-prepares its arms.
    async fn apply(
        &self,
        e: StoredExperiment,
        ports: &Ports,
        engine: &Arc<Engine>,
        artefacts: &Artefacts,
    ) -> Result<(), ExperimentError> {
        let live = if e.experiment.status == Status::Running {
            Some(prepare(&e, ports, engine, artefacts).await.map_err(ExperimentError::Conflict)?)
        } else {
            None
        };
        self.replace(e).await?;
        if let Some(live) = live {
            self.live.store(Some(Arc::new(live)));
        }
        Ok(())
    }

    /// Ids of running experiments in bandit mode or with weight tuning.
    pub fn automated(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|e| {
                e.experiment.status == Status::Running
                    && (e.experiment.mode == Mode::Bandit || e.auto_tune_weights)
            })
            .map(|e| e.experiment.id.clone())
            .collect()
    }
}

fn announce(ports: &Ports, kind: &str, experiment_id: &str) {
    ports.bus.publish(DomainEvent::system(kind, None, serde_json::json!({ "experimentId": experiment_id })));
}

fn set_weights(ranking: &mut Option<Map<String, Value>>, weights: &BTreeMap<String, f64>) {
    let weights: Map<String, Value> = weights.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
    ranking.get_or_insert_with(Map::new).insert("weights".into(), Value::Object(weights));
}

/// The server's ranking config with a variant's partial config merged over it (objects
/// merge key by key; `weights` entries override single sources).
pub fn merged_ranking(
    base: &RankingConfig,
    over: Option<&Map<String, Value>>,
) -> Result<RankingConfig, String> {
    let Some(over) = over else { return Ok(base.clone()) };
    let config = vitrina_engine::config::overlaid(base, over)?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Builds the arms of a running experiment: merged configs and loaded variant models.
async fn prepare(
    e: &StoredExperiment,
    ports: &Ports,
    engine: &Arc<Engine>,
    artefacts: &Artefacts,
) -> Result<Live, String> {
    let base = engine.ranking();
    let models = ports.registry.models().await.map_err(|e| e.to_string())?;
    let mut arms = Vec::new();
    for v in &e.experiment.variants {
        let ranking = Arc::new(merged_ranking(&base, v.ranking.as_ref())?);
        let model = match v.model_version {
            None => None,
            Some(n) => {
                let version = format!("v{n}");
                let record = models
                    .iter()
                    .find(|m| m.version == version)
                    .ok_or_else(|| format!("model {version} is not in the registry"))?;
                let bundle = training::load_bundle(artefacts, record)
                    .await
                    .map_err(|m| format!("model {version}: {m}"))?;
                let (engine, bundle) = (engine.clone(), Arc::new(bundle));
                let prepared =
                    tokio::task::spawn_blocking(move || engine.attach(PreparedModel::new(version, bundle)))
                        .await
                        .map_err(|e| e.to_string())?;
                Some(prepared)
            }
        };
        arms.push(Arc::new(Arm {
            label: format!("{}/{}", e.experiment.id, v.name),
            ranking: Some(ranking),
            model,
        }));
    }
    Ok(Live { experiment: e.experiment.clone(), arms })
}

/// Which lists [`compute_results`] counts.
#[derive(Debug, Clone, Copy)]
enum Judge {
    /// Every list, with the comparisons against the control: the results endpoint.
    All,
    /// Only lists served at or before this time, counts only: an automation step.
    ServedBefore(DateTime<Utc>),
}

async fn compute_results(e: &Experiment, ports: &Ports, judge: Judge) -> Result<Results, StoreError> {
    let prefix = format!("{}/", e.id);
    let (impressions, outcomes) = ports.impressions.experiment_log(&prefix).await?;
    let variant_of = |label: &str| label.strip_prefix(&prefix).map(str::to_string);
    let judged = |at: DateTime<Utc>| match judge {
        Judge::All => true,
        Judge::ServedBefore(cutoff) => at <= cutoff,
    };
    // Outcomes of lists left out here find no list in the tally and are not counted.
    let impressions: Vec<ExpImpression> = impressions
        .iter()
        .filter(|i| judged(i.created_at))
        .map(|i| to_exp_impression(i, Some(&e.id), variant_of(&i.variant)))
        .collect();
    let attributions: Vec<Attribution> = outcomes
        .iter()
        .filter_map(|o| {
            Some(Attribution {
                event_id: o.event_id.clone(),
                recommendation_id: o.recommendation_id.clone(),
                experiment: Some(e.id.clone()),
                variant: variant_of(&o.variant),
                source: o.source.clone(),
                position: o.position,
                kind: outcome_kind(o.kind)?,
                value: o.value,
                product_id: o.product_id.to_string(),
                // Not stored; the summary does not read it.
                method: AttributionMethod::RecommendationId,
            })
        })
        .collect();
    let e = e.clone();
    tokio::task::spawn_blocking(move || match judge {
        Judge::All => summarise(&e, &impressions, &attributions),
        Judge::ServedBefore(_) => summarise_counts(&e, &impressions, &attributions),
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))
}

pub fn outcome_kind(kind: ActivityType) -> Option<OutcomeKind> {
    match kind {
        ActivityType::Click => Some(OutcomeKind::Click),
        ActivityType::AddToCart => Some(OutcomeKind::AddToCart),
        ActivityType::Purchase => Some(OutcomeKind::Purchase),
        _ => None,
    }
}

/// An impression in the experiments crate's terms, with the `experiment` and `variant` labels
/// given (attribution decides by neither; it copies them into what it finds).
pub fn to_exp_impression(i: &Impression, experiment: Option<&str>, variant: Option<String>) -> ExpImpression {
    ExpImpression {
        recommendation_id: i.recommendation_id.clone(),
        visitor: i.user_id.to_string(),
        experiment: experiment.map(str::to_string),
        variant,
        at: i.created_at,
        items: i
            .items
            .iter()
            .map(|it| ShownItem {
                product_id: it.product_id.to_string(),
                source: it.source.clone(),
                position: it.position,
            })
            .collect(),
    }
}
