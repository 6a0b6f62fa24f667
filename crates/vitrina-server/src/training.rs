//! The training service: a queue of jobs, one worker, progress, and the model registry.
//!
//! A job snapshots the event log range `1..=max_seq` at its start, builds a model from it
//! off the async runtime, registers it, swaps it into the engine and invalidates cached
//! lists. Rebuilding a registered version from its recorded range and parameters gives the
//! same model, which is how a restart restores the active model.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use utoipa::ToSchema;
use vitrina_core::{
    events::{kinds, DomainEvent},
    ports::{ModelRecord, ModelStatus, StoreResult},
    time::format_ts,
    train::{BuildSummary, ModelBuilder, TrainingConfig},
};

use crate::{
    engine::{ActiveModel, Engine},
    state::Ports,
};

/// Events read from the log per page while loading a snapshot.
const PAGE: usize = 10_000;
/// Finished jobs kept for the status endpoint.
const HISTORY: usize = 20;
/// Queued jobs accepted before `POST /train` answers 503.
pub const MAX_QUEUED: usize = 16;

pub const ALGORITHM: &str = "covisitation";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// A training job as the status endpoint shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    /// `queued`, `loading`, `building`, `registering`, `done`.
    pub phase: String,
    /// 0–1.
    pub progress: f32,
    #[schema(value_type = Object)]
    pub config: TrainingConfig,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub model_version: Option<String>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub summary: Option<BuildSummary>,
}

#[derive(Default)]
struct Queue {
    current: Option<Job>,
    queued: VecDeque<Job>,
    finished: VecDeque<Job>,
    next_id: u64,
}

/// Snapshot of the queue for the status endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    pub current: Option<Job>,
    pub queued: Vec<Job>,
    pub last_finished: Option<Job>,
    pub recent: Vec<Job>,
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("the training queue is full ({MAX_QUEUED} jobs waiting)")]
pub struct QueueFull;

pub struct Training {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Default for Training {
    fn default() -> Self {
        Self::new()
    }
}

impl Training {
    pub fn new() -> Self {
        Self { queue: Mutex::new(Queue::default()), wake: Notify::new() }
    }

    /// Queues a job and returns it.
    pub fn submit(&self, config: TrainingConfig) -> Result<Job, QueueFull> {
        let mut q = self.queue.lock().expect("training queue lock");
        if q.queued.len() >= MAX_QUEUED {
            return Err(QueueFull);
        }
        q.next_id += 1;
        let job = Job {
            job_id: format!("job-{}-{}", Utc::now().format("%Y%m%d%H%M%S"), q.next_id),
            status: JobStatus::Queued,
            phase: "queued".into(),
            progress: 0.0,
            config,
            created_at: format_ts(Utc::now()),
            started_at: None,
            finished_at: None,
            model_version: None,
            error: None,
            summary: None,
        };
        q.queued.push_back(job.clone());
        drop(q);
        self.wake.notify_one();
        Ok(job)
    }

    pub fn status(&self) -> QueueStatus {
        let q = self.queue.lock().expect("training queue lock");
        QueueStatus {
            current: q.current.clone(),
            queued: q.queued.iter().cloned().collect(),
            last_finished: q.finished.front().cloned(),
            recent: q.finished.iter().cloned().collect(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.queue.lock().expect("training queue lock").current.as_mut() {
            f(job);
        }
    }

    /// Runs the next queued job, if any, to completion. Returns whether one ran.
    pub async fn run_once(&self, ports: &Ports, engine: &Engine) -> bool {
        let job = {
            let mut q = self.queue.lock().expect("training queue lock");
            let Some(mut job) = q.queued.pop_front() else { return false };
            job.status = JobStatus::Running;
            job.phase = "loading".into();
            job.started_at = Some(format_ts(Utc::now()));
            q.current = Some(job.clone());
            job
        };
        let started = Instant::now();
        ports.bus.publish(DomainEvent::system(
            kinds::MODEL_TRAINING_STARTED,
            None,
            json!({"jobId": job.job_id}),
        ));
        let result = self.run_job(&job, ports, engine).await;
        let outcome = if result.is_ok() { "succeeded" } else { "failed" };
        metrics::histogram!("vitrina_training_job_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("vitrina_training_jobs_total", "outcome" => outcome).increment(1);

        let mut q = self.queue.lock().expect("training queue lock");
        let mut done = q.current.take().unwrap_or(job);
        done.finished_at = Some(format_ts(Utc::now()));
        match result {
            Ok(version) => {
                done.status = JobStatus::Succeeded;
                done.phase = "done".into();
                done.progress = 1.0;
                done.model_version = Some(version);
            }
            Err(e) => {
                tracing::error!(job = %done.job_id, error = %e, "training job failed");
                done.status = JobStatus::Failed;
                done.error = Some(e.to_string());
            }
        }
        ports.bus.publish(DomainEvent::system(
            kinds::MODEL_TRAINING_FINISHED,
            None,
            json!({"jobId": done.job_id, "status": done.status, "modelVersion": done.model_version}),
        ));
        q.finished.push_front(done);
        q.finished.truncate(HISTORY);
        true
    }

    async fn run_job(&self, job: &Job, ports: &Ports, engine: &Engine) -> anyhow::Result<String> {
        let max_seq = ports.log.stats().await?.max_seq;
        let existing = ports.registry.models().await?;
        let version = format!("v{}", existing.len() + 1);
        let created_at = Utc::now();
        let mut record = ModelRecord {
            version: version.clone(),
            algorithm: ALGORITHM.into(),
            parameters: serde_json::to_value(&job.config)?,
            metrics: json!({}),
            status: ModelStatus::Training,
            data_range: (1, max_seq),
            created_at,
            activated_at: None,
            previous_version: None,
        };
        ports.registry.save_model(record.clone()).await?;
        let started = Instant::now();
        let built = build_model(ports, &job.config, max_seq, &mut |phase, p| {
            self.update(|j| {
                j.phase = phase.into();
                j.progress = p * 0.95;
            })
        })
        .await;
        let (model, summary) = match built {
            Ok(b) => b,
            Err(e) => {
                record.status = ModelStatus::Failed;
                record.metrics = json!({"error": e.to_string()});
                ports.registry.save_model(record).await?;
                return Err(e);
            }
        };
        self.update(|j| {
            j.phase = "registering".into();
            j.summary = Some(summary);
        });
        record.metrics = json!({
            "events": summary.events, "users": summary.users, "items": summary.items,
            "itemPairs": summary.item_pairs, "trainSeconds": started.elapsed().as_secs_f64(),
        });
        record.status = ModelStatus::Validated;
        ports.registry.save_model(record).await?;
        activate(ports, engine, ActiveModel { version: version.clone(), model }, false).await?;
        Ok(version)
    }

    /// Runs jobs as they are queued, until the task is dropped.
    pub async fn run_forever(self: Arc<Self>, ports: Ports, engine: Arc<Engine>) {
        loop {
            if !self.run_once(&ports, &engine).await {
                self.wake.notified().await;
            }
        }
    }
}

/// Makes `model` the active one: registry first (so a restart agrees), then the engine,
/// then cached lists are dropped and the swap is announced.
pub async fn activate(ports: &Ports, engine: &Engine, model: ActiveModel, rollback: bool) -> StoreResult<()> {
    ports.registry.activate_model(&model.version, Utc::now(), rollback).await?;
    let version = model.version.clone();
    engine.swap_model(model);
    ports.cache.invalidate_all().await;
    ports.bus.publish(DomainEvent::system(
        kinds::RECOMMENDATION_MODEL_UPDATED,
        None,
        json!({"modelVersion": version}),
    ));
    tracing::info!(model_version = %version, "model activated");
    Ok(())
}

/// Reads events `1..=max_seq` page by page and builds a model from them off the runtime.
pub async fn build_model(
    ports: &Ports,
    config: &TrainingConfig,
    max_seq: u64,
    progress: &mut (dyn FnMut(&str, f32) + Send),
) -> anyhow::Result<(vitrina_core::train::CoVisitationModel, BuildSummary)> {
    let mut builder = ModelBuilder::new(config.clone());
    let mut after = 0;
    while after < max_seq {
        let page = ports.log.page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page.iter().take_while(|e| e.seq <= max_seq) {
            builder.add(e);
        }
        progress("loading", 0.5 * (after.min(max_seq) as f32 / max_seq.max(1) as f32));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || {
        builder.build(&mut |p| {
            let _ = tx.send(p);
        })
    });
    while let Some(p) = rx.recv().await {
        progress("building", 0.5 + 0.5 * p);
    }
    Ok(task.await?)
}

/// Why a registry version cannot be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("model {0} is not in the registry")]
    Unknown(String),
    #[error("model {0} is {1}; only validated, archived or active models can be activated")]
    NotActivatable(String, &'static str),
    #[error("there is no earlier model to roll back to")]
    NothingToRollBack,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Makes a registered version active again: rebuilds it from its recorded data range and
/// parameters (deterministic, see ADR 0003) and swaps it in.
pub async fn activate_version(
    ports: &Ports,
    engine: &Engine,
    version: &str,
    rollback: bool,
) -> Result<ModelRecord, ActivationError> {
    let models = ports.registry.models().await.map_err(anyhow::Error::from)?;
    let record = models
        .into_iter()
        .find(|m| m.version == version)
        .ok_or_else(|| ActivationError::Unknown(version.into()))?;
    if !matches!(record.status, ModelStatus::Validated | ModelStatus::Archived | ModelStatus::Active) {
        return Err(ActivationError::NotActivatable(record.version, record.status.as_str()));
    }
    let config: TrainingConfig =
        serde_json::from_value(record.parameters.clone()).map_err(anyhow::Error::from)?;
    let (model, _) = build_model(ports, &config, record.data_range.1, &mut |_, _| {}).await?;
    activate(ports, engine, ActiveModel { version: record.version.clone(), model }, rollback)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(record)
}

/// Returns to the model that was active before the current one.
pub async fn rollback(ports: &Ports, engine: &Engine) -> Result<ModelRecord, ActivationError> {
    let models = ports.registry.models().await.map_err(anyhow::Error::from)?;
    let previous = models
        .iter()
        .find(|m| m.status == ModelStatus::Active)
        .and_then(|m| m.previous_version.clone())
        .ok_or(ActivationError::NothingToRollBack)?;
    activate_version(ports, engine, &previous, true).await
}

/// Restores the active model at start-up by rebuilding it from its recorded data range and
/// parameters; with no active model, trains the first one. Returns the active version.
pub async fn restore_active(ports: &Ports, engine: &Engine, training: &Training) -> anyhow::Result<String> {
    let models = ports.registry.models().await?;
    if let Some(active) = models.iter().find(|m| m.status == ModelStatus::Active) {
        let config: TrainingConfig = serde_json::from_value(active.parameters.clone())?;
        let (model, summary) = build_model(ports, &config, active.data_range.1, &mut |_, _| {}).await?;
        tracing::info!(model_version = %active.version, events = summary.events, "active model restored");
        engine.swap_model(ActiveModel { version: active.version.clone(), model });
        return Ok(active.version.clone());
    }
    training.submit(TrainingConfig::default())?;
    training.run_once(ports, engine).await;
    let status = training.status();
    let last = status.last_finished.ok_or_else(|| anyhow::anyhow!("initial training did not run"))?;
    last.model_version
        .ok_or_else(|| anyhow::anyhow!("initial training failed: {}", last.error.unwrap_or_default()))
}
