//! The training service: a queue of jobs run one at a time on a bounded thread pool,
//! validation against the active model, the model registry, and hot swaps.
//!
//! A job snapshots the event log range `1..=max_seq` at its start (so it is reproducible),
//! validates its configuration against the active model's on the same held-out split,
//! trains the final bundle on the whole snapshot, writes the artefact, registers it and —
//! when it passes the gate — swaps it into the engine and drops cached lists.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use utoipa::ToSchema;
use vitrina_core::{
    events::{kinds, DomainEvent},
    ports::{Exposures, LockGuard, ModelRecord, ModelStatus, StoreResult},
    time::format_ts,
};
use vitrina_engine::{
    engagement::{self, Engagement},
    learn::{draw, train_ranker, Gated, Served, Shown, MIN_LISTS},
    train::{prepare, train, TrainError, TrainingLog},
    validate::{evaluate, split_last, Quality},
    Engine, ModelBundle, PreparedModel, TrainingConfig,
};

use crate::{artefacts::Artefacts, ports::Ports};

/// Events read from the log per page while loading a snapshot.
const PAGE: usize = 50_000;
/// Finished jobs kept for the status endpoint.
const HISTORY: usize = 20;
/// Log lines kept per job.
const JOB_LOG: usize = 50;
/// Queued jobs accepted before `POST /train` answers 503.
pub const MAX_QUEUED: usize = 16;

/// The registry's name for Vitrina's model bundles.
pub const ALGORITHM: &str = "vitrina-hybrid";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    /// Trained and promoted.
    Succeeded,
    /// Trained, but worse than the active model: kept as `rejected` in the registry.
    Rejected,
    Failed,
    Cancelled,
}

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Api,
    Schedule,
    NewEvents,
    Startup,
    /// `vitrina train` against the data directory.
    Cli,
}

/// A training job as the status endpoint shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub trigger: Trigger,
    /// `queued`, `loading`, `validating`, `training`, then a model phase (`item-knn`, `als`…),
    /// `saving`, `activating`, `done`.
    pub phase: String,
    /// 0–1.
    pub progress: f32,
    /// The job's training configuration, every default filled in.
    pub config: TrainingConfig,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub model_version: Option<String>,
    /// The log range `[firstSeq, lastSeq]` the job trained on.
    pub data_range: Option<[u64; 2]>,
    pub error: Option<String>,
    /// The last lines of the job's log.
    pub log: Vec<String>,
}

#[derive(Default)]
struct Queue {
    /// Set at shutdown: no further job starts.
    stopping: bool,
    current: Option<Job>,
    cancel: Option<Arc<AtomicBool>>,
    queued: VecDeque<Job>,
    finished: VecDeque<Job>,
    next_id: u64,
    /// When the running job last reported progress.
    last_progress: Option<std::time::Instant>,
    /// Set while a worker loop runs jobs; cleared when it ends (a panic included).
    worker: bool,
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

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no queued or running job {0}")]
    Unknown(String),
}

/// How the service runs jobs.
pub struct TrainingSettings {
    /// Threads a job may use (the rest of the machine keeps serving).
    pub threads: usize,
    /// A running job that reports no progress for this long makes the service unhealthy.
    pub stuck_after: std::time::Duration,
}

pub struct Training {
    stuck_after: std::time::Duration,
    queue: Mutex<Queue>,
    wake: Notify,
    pool: Arc<rayon::ThreadPool>,
    artefacts: Artefacts,
}

fn now() -> String {
    format_ts(Utc::now())
}

impl Training {
    pub fn new(settings: TrainingSettings, artefacts: Artefacts) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(settings.threads.max(1))
            .thread_name(|i| format!("vitrina-train-{i}"))
            .build()?;
        Ok(Self {
            stuck_after: settings.stuck_after,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            pool: Arc::new(pool),
            artefacts,
        })
    }

    pub fn artefacts(&self) -> &Artefacts {
        &self.artefacts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("training queue lock")
    }

    /// Queues a job and returns it.
    pub fn submit(&self, config: TrainingConfig, trigger: Trigger) -> Result<Job, QueueFull> {
        let mut q = self.lock();
        if q.queued.len() >= MAX_QUEUED {
            return Err(QueueFull);
        }
        q.next_id += 1;
        let job = Job {
            job_id: format!("job-{}-{}", Utc::now().format("%Y%m%d%H%M%S"), q.next_id),
            status: JobStatus::Queued,
            trigger,
            phase: "queued".into(),
            progress: 0.0,
            config,
            created_at: now(),
            started_at: None,
            finished_at: None,
            model_version: None,
            data_range: None,
            error: None,
            log: Vec::new(),
        };
        q.queued.push_back(job.clone());
        drop(q);
        self.wake.notify_one();
        Ok(job)
    }

    /// Cancels a queued job at once, or asks the running one to stop at its next checkpoint.
    pub fn cancel(&self, job_id: &str) -> Result<Job, CancelError> {
        let mut q = self.lock();
        if let Some(at) = q.queued.iter().position(|j| j.job_id == job_id) {
            let mut job = q.queued.remove(at).expect("position is valid");
            job.status = JobStatus::Cancelled;
            job.phase = "cancelled".into();
            job.finished_at = Some(now());
            q.finished.push_front(job.clone());
            q.finished.truncate(HISTORY);
            return Ok(job);
        }
        let q = &mut *q;
        match (&mut q.current, &q.cancel) {
            (Some(job), Some(flag)) if job.job_id == job_id => {
                flag.store(true, Ordering::SeqCst);
                job.log.push(format!("{} cancel requested", now()));
                Ok(job.clone())
            }
            _ => Err(CancelError::Unknown(job_id.into())),
        }
    }

    /// Shutdown: starts no further job and asks the running one, if any, to stop at its
    /// next checkpoint (it ends `cancelled`, its registry record `failed`).
    pub fn stop(&self) {
        let mut q = self.lock();
        q.stopping = true;
        if let Some(flag) = &q.cancel {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Whether a job is running right now.
    pub fn running(&self) -> bool {
        self.lock().current.is_some()
    }

    pub fn status(&self) -> QueueStatus {
        let q = self.lock();
        QueueStatus {
            current: q.current.clone(),
            queued: q.queued.iter().cloned().collect(),
            last_finished: q.finished.front().cloned(),
            recent: q.finished.iter().cloned().collect(),
        }
    }

    /// Whether a job is queued or running.
    pub fn busy(&self) -> bool {
        let q = self.lock();
        q.current.is_some() || !q.queued.is_empty()
    }

    fn update(&self, f: impl FnOnce(&mut Job)) {
        let mut q = self.lock();
        if let Some(job) = q.current.as_mut() {
            f(job);
            q.last_progress = Some(std::time::Instant::now());
        }
    }

    /// Whether the service can run jobs: a worker runs and the running job, if any, reported
    /// progress within the configured bound.
    pub fn health(&self) -> Result<String, String> {
        let q = self.lock();
        let stuck_after = self.stuck_after;
        if !q.worker {
            return Err("the training worker is not running".into());
        }
        if let (Some(job), Some(at)) = (&q.current, q.last_progress) {
            let idle = at.elapsed();
            if idle > stuck_after {
                return Err(format!(
                    "job {} has reported no progress for {} s (phase {})",
                    job.job_id,
                    idle.as_secs(),
                    job.phase
                ));
            }
        }
        Ok(format!(
            "{} queued, running: {}",
            q.queued.len(),
            q.current.as_ref().map_or("none", |j| j.job_id.as_str())
        ))
    }

    fn log(&self, line: impl Into<String>) {
        let line = format!("{} {}", now(), line.into());
        tracing::info!(target: "vitrina::training", "{line}");
        self.update(|j| {
            j.log.push(line);
            if j.log.len() > JOB_LOG {
                j.log.remove(0);
            }
        });
    }

    /// Runs the next queued job, if any, to completion. Returns whether one ran.
    pub async fn run_once(&self, ports: &Ports, engine: &Arc<Engine>) -> bool {
        let cancel = Arc::new(AtomicBool::new(false));
        let job = {
            let mut q = self.lock();
            if q.stopping {
                return false;
            }
            let Some(mut job) = q.queued.pop_front() else { return false };
            job.status = JobStatus::Running;
            job.phase = "loading".into();
            job.started_at = Some(now());
            q.current = Some(job.clone());
            q.last_progress = Some(std::time::Instant::now());
            q.cancel = Some(cancel.clone());
            job
        };
        let started = Instant::now();
        ports.bus.publish(DomainEvent::system(
            kinds::MODEL_TRAINING_STARTED,
            None,
            json!({"jobId": job.job_id}),
        ));
        let result = match self.training_lock(ports, &cancel).await {
            Some(lock) => {
                let result = self.run_job(&job, ports, engine, &cancel).await;
                lock.release().await;
                result
            }
            None => Err(JobError::Cancelled),
        };
        let status = match &result {
            Ok((_, true)) => JobStatus::Succeeded,
            Ok((_, false)) => JobStatus::Rejected,
            Err(JobError::Cancelled) => JobStatus::Cancelled,
            Err(_) => JobStatus::Failed,
        };
        let outcome = match status {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Rejected => "rejected",
            JobStatus::Cancelled => "cancelled",
            _ => "failed",
        };
        metrics::histogram!("vitrina_training_job_duration_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("vitrina_training_jobs_total", "outcome" => outcome).increment(1);
        match &result {
            Ok((v, promoted)) => {
                self.log(format!("finished: {v} {}", if *promoted { "promoted" } else { "rejected" }))
            }
            Err(e) => self.log(format!("stopped: {e}")),
        }
        let mut q = self.lock();
        q.cancel = None;
        let mut done = q.current.take().unwrap_or(job);
        done.finished_at = Some(now());
        done.status = status;
        match result {
            Ok((version, _)) => {
                done.phase = "done".into();
                done.progress = 1.0;
                done.model_version = Some(version);
            }
            Err(e) => {
                if status == JobStatus::Failed {
                    tracing::error!(job = %done.job_id, error = %e, "training job failed");
                }
                done.phase = outcome.into();
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

    /// Takes the deployment's training lock, waiting while another process trains (one job
    /// at a time cluster-wide, so versions and snapshots never collide). `None` when the job
    /// was cancelled meanwhile.
    async fn training_lock(&self, ports: &Ports, cancel: &AtomicBool) -> Option<LockGuard> {
        let mut waiting = false;
        loop {
            match ports.locks.try_lock(TRAINING_LOCK).await {
                Ok(Some(lock)) => return Some(lock),
                Ok(None) if !waiting => {
                    waiting = true;
                    self.update(|j| j.phase = "waiting".into());
                    self.log("waiting: another server of the deployment is training");
                }
                Ok(None) => self.update(|_| ()),
                Err(e) => tracing::warn!(error = %e, "taking the training lock failed; trying again"),
            }
            if cancel.load(Ordering::SeqCst) {
                return None;
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    /// Returns the registered version and whether it was promoted.
    async fn run_job(
        &self,
        job: &Job,
        ports: &Ports,
        engine: &Arc<Engine>,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(String, bool), JobError> {
        let max_seq = ports.log.stats().await?.max_seq;
        let version = next_version(&ports.registry.models().await?);
        let mut record = ModelRecord {
            version: version.clone(),
            algorithm: ALGORITHM.into(),
            // Through text: `to_value` widens f32 to f64 and would print 0.1 as
            // 0.10000000149011612; the text form writes each float as its own type.
            parameters: serde_json::to_string(&job.config)
                .and_then(|text| serde_json::from_str(&text))
                .map_err(|e| JobError::Other(e.to_string()))?,
            metrics: json!({}),
            status: ModelStatus::Training,
            status_reason: None,
            data_range: (1, max_seq),
            artefact: None,
            created_at: Utc::now(),
            finished_at: None,
            activated_at: None,
            previous_version: None,
        };
        ports.registry.save_model(record.clone()).await?;
        self.update(|j| {
            j.model_version = Some(version.clone());
            j.data_range = Some([1, max_seq]);
        });
        self.log(format!("{version}: snapshot of events 1..={max_seq}"));
        let outcome = self.train_and_register(job, ports, engine, cancel, &mut record).await;
        if let Err(e) = &outcome {
            record.status = ModelStatus::Failed;
            record.status_reason = Some(e.to_string());
            record.finished_at = Some(Utc::now());
            ports.registry.save_model(record).await?;
        }
        outcome.map(|promoted| (version, promoted))
    }

    /// Every product's exposure totals over the engagement windows of the cut and of today:
    /// the offline features of the cut's lists and of the model that serves. Both empty
    /// (and logged) when either cannot be read, so that a ranker trained with them finds
    /// them when it serves.
    async fn engagement_totals(&self, ports: &Ports, cut_ms: i64) -> (Exposures, ((i64, i64), Exposures)) {
        let (cut, today) = (engagement::window(cut_ms), engagement::window(Utc::now().timestamp_millis()));
        let both = async {
            StoreResult::Ok((
                ports.impressions.exposures(cut).await?,
                ports.impressions.exposures(today).await?,
            ))
        };
        match both.await {
            Ok((before_cut, serving)) => {
                self.log(format!(
                    "learned ranker: offline features from {} products shown on {} of the {} days before the cut's day, \
                     and {} products shown on {} of the {} days before today",
                    before_cut.products.len(),
                    before_cut.days,
                    cut.1 - cut.0,
                    serving.products.len(),
                    serving.days,
                    today.1 - today.0
                ));
                (before_cut, (today, serving))
            }
            Err(e) => {
                self.log(format!(
                    "learned ranker: the exposure totals could not be read ({e}); its offline features are missing"
                ));
                (Exposures::default(), (today, Exposures::default()))
            }
        }
    }

    async fn train_and_register(
        &self,
        job: &Job,
        ports: &Ports,
        engine: &Arc<Engine>,
        cancel: &Arc<AtomicBool>,
        record: &mut ModelRecord,
    ) -> Result<bool, JobError> {
        let started = Instant::now();
        let max_seq = record.data_range.1;
        let events =
            load_events(ports, max_seq, cancel, &mut |f| self.update(|j| j.progress = 0.1 * f)).await?;
        self.log(format!(
            "loaded {} product events of {} users on {} products",
            events.len(),
            events.users.len(),
            events.items.len()
        ));
        if cancel.load(Ordering::SeqCst) {
            return Err(JobError::Cancelled);
        }
        let active = engine.model();
        let baseline = (!active.bundle.items.is_empty()).then(|| active.bundle.config.clone());
        let has_active = baseline.is_some();
        let products = engine.products();
        let ranking = engine.ranking();
        let config = job.config.clone();
        // The learned ranker's cut and visitors, and what they were shown after it: read
        // here, where the store is, before the blocking work.
        let events = Arc::new(events);
        let ranker_input = if config.ranker.enabled {
            self.update(|j| j.phase = "ranker: drawing visitors".into());
            let (log, c) = (events.clone(), config.clone());
            let drawn = tokio::task::spawn_blocking(move || draw(&log, &c, MIN_LISTS))
                .await
                .map_err(|e| JobError::Other(e.to_string()))?;
            let n = drawn.listed().len();
            let mut read = |k: usize| {
                self.update(|j| j.phase = format!("ranker: reading the lists shown to {k} of {n} visitors"))
            };
            let shown = match shown::after_cut(ports.impressions.as_ref(), &events, &drawn, cancel, &mut read)
                .await
            {
                Ok(Some(shown)) => {
                    self.log(format!(
                        "learned ranker: {} of the {} visitors drawn at the cut were shown lists after it that earned an \
                         outcome, which label theirs where they hold a candidate; the rest are labelled by what they did \
                         next",
                        shown.len(),
                        n
                    ));
                    shown
                }
                Ok(None) => return Err(JobError::Cancelled),
                Err(e) => {
                    self.log(format!(
                        "learned ranker: the impression log could not be read ({e}); every drawn visitor is labelled by \
                         what they did next"
                    ));
                    Shown::default()
                }
            };
            let (before_cut, serving) = if drawn.listed().is_empty() {
                (Exposures::default(), ((0, 0), Exposures::default()))
            } else {
                self.update(|j| j.phase = "ranker: reading what came of the products shown".into());
                self.engagement_totals(ports, drawn.cut_ms()).await
            };
            Some((drawn, Served { after_cut: shown, before_cut }, serving))
        } else {
            None
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, f32)>();
        let pool = self.pool.clone();
        let flag = cancel.clone();
        let work = tokio::task::spawn_blocking(move || {
            pool.install(|| -> Result<(ModelBundle, Option<Validation>, Option<Learned>), TrainError> {
                let report = |base: f32, span: f32| {
                    let tx = tx.clone();
                    let flag = flag.clone();
                    move |phase: &str, f: f32| {
                        let _ = tx.send((phase.to_string(), base + span * f));
                        !flag.load(Ordering::SeqCst)
                    }
                };
                let validation = if config.validation_users > 0 {
                    let split = split_last(
                        &events,
                        &config.weights,
                        config.validation_users,
                        config.validation_sample_users,
                        config.seed,
                    );
                    if split.test.is_empty() {
                        None
                    } else {
                        let _ = tx.send(("validating".into(), 0.1));
                        let candidate =
                            evaluate(&split, &products, &config, &ranking, &mut report(0.1, 0.25))?;
                        let active = match &baseline {
                            Some(base) => {
                                Some(evaluate(&split, &products, base, &ranking, &mut report(0.35, 0.25))?)
                            }
                            None => None,
                        };
                        Some((candidate, active))
                    }
                } else {
                    None
                };
                let learned = match ranker_input {
                    Some((drawn, served, serving)) => {
                        let _ = tx.send(("ranker".into(), 0.6));
                        let learned = train_ranker(
                            &events,
                            &products,
                            &config,
                            &ranking,
                            &drawn,
                            &served,
                            &mut report(0.6, 0.1),
                        );
                        drop((drawn, served));
                        Some((learned?, serving))
                    }
                    None => None,
                };
                let (learned, serving) = learned.unzip();
                // The snapshot is not needed once prepared (the ranker's lists are built):
                // dropping it before the models train keeps the job's peak memory down (20M
                // events: ~0.5 GiB).
                if tx.send(("preparing".into(), 0.7)).is_err() || flag.load(Ordering::SeqCst) {
                    return Err(TrainError::Cancelled);
                }
                let data = prepare(&events, &config);
                drop(events);
                let mut bundle = train(data, &config, (1, max_seq), &mut report(0.7, 0.25))?;
                bundle.ranker = learned.as_ref().and_then(|l| l.as_ref().ok()).and_then(Gated::serving);
                if let (Some(_), Some((days, totals))) = (&bundle.ranker, serving) {
                    bundle.engagement = Engagement::new(days, &totals, &products);
                }
                Ok((bundle, validation, learned))
            })
        });
        while let Some((phase, p)) = rx.recv().await {
            self.update(|j| {
                j.phase = phase;
                j.progress = p.min(0.95);
            });
        }
        let (bundle, validation, learned) =
            work.await.map_err(|e| JobError::Other(e.to_string()))?.map_err(|e| match e {
                TrainError::Cancelled => JobError::Cancelled,
                other => JobError::Other(other.to_string()),
            })?;
        let train_seconds = started.elapsed().as_secs_f64();
        self.update(|j| j.phase = "saving".into());
        let bundle = Arc::new(bundle);
        let artefact = self
            .artefacts
            .save(&record.version, bundle.clone())
            .await
            .map_err(|e| JobError::Other(e.to_string()))?;
        self.log(format!(
            "artefact {} ({} bytes, {})",
            artefact.path, artefact.size_bytes, artefact.checksum
        ));

        let ranker = match &learned {
            None => {
                self.log("learned ranker not trained: ranker.enabled is false");
                json!({"serves": false, "skipped": "ranker.enabled is false"})
            }
            Some(Ok(gated)) => {
                let r = &gated.report;
                self.log(format!(
                    "learned ranker: {} lists, {} trees from {}; NDCG {:.4} vs the blend's {:.4} on {} visitors, each \
                     judged by a ranker that did not train on them (lift {:+.4} ± {:.4}): {}",
                    r.lists.iter().sum::<usize>(),
                    r.trees_kept,
                    r.base.as_deref().unwrap_or("zero"),
                    r.ndcg,
                    r.blend_ndcg,
                    r.lift.n,
                    r.lift.mean,
                    r.lift.stderr,
                    if r.serves { "it orders the lists" } else { "the blend orders the lists" }
                ));
                json!(r)
            }
            Some(Err(reason)) => {
                self.log(format!("learned ranker not trained: {reason}"));
                json!({"serves": false, "skipped": reason})
            }
        };
        if active.bundle.ranker.is_some() && bundle.ranker.is_none() {
            self.log(format!(
                "learned ranker: the active model {} has one and this one has none: once it is activated the blend orders the lists",
                active.version
            ));
        }
        let (verdict, reason) = gate(&validation, &job.config, has_active);
        record.metrics = json!({
            "summary": bundle.summary,
            "algorithms": bundle.algorithms(),
            "validation": validation.map(|(c, a)| json!({"candidate": c, "active": a, "activeVersion": a.map(|_| active.version.clone())})),
            "ranker": ranker,
            "trainSeconds": train_seconds,
        });
        record.artefact = Some(artefact);
        record.finished_at = Some(Utc::now());
        record.status = verdict;
        record.status_reason = reason.clone();
        ports.registry.save_model(record.clone()).await?;
        if let Some(reason) = reason {
            self.log(format!("rejected: {reason}"));
            return Ok(false);
        }
        self.update(|j| j.phase = "activating".into());
        activate(ports, engine, &record.version, bundle, false).await?;
        Ok(true)
    }

    /// Starts the worker that runs jobs as they are queued, until the task is dropped.
    pub fn spawn_worker(self: &Arc<Self>, ports: Ports, engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
        self.lock().worker = true;
        tokio::spawn(self.clone().run_forever(ports, engine))
    }

    async fn run_forever(self: Arc<Self>, ports: Ports, engine: Arc<Engine>) {
        /// Clears the worker flag however the loop ends (abort or panic).
        struct Alive<'a>(&'a Training);
        impl Drop for Alive<'_> {
            fn drop(&mut self) {
                if let Ok(mut q) = self.0.queue.lock() {
                    q.worker = false;
                }
            }
        }
        let _alive = Alive(&self);
        loop {
            if !self.run_once(&ports, &engine).await {
                self.wake.notified().await;
            }
        }
    }
}

/// The learned ranker's training: gated, or why there was none.
type Learned = Result<Gated, String>;

/// Validation result: the candidate's quality and the active configuration's on the same split.
type Validation = (Quality, Option<Quality>);

/// Promotion decision: the registry status of the candidate, and the reason when it is not
/// promoted.
///
/// With a model active, a candidate validated on fewer than `min_users` held-out visitors (or
/// none) is not promoted: it is `unvalidated` and needs `force`. Without one, there is nothing
/// to protect and nothing to compare with, so it is promoted.
fn gate(
    validation: &Option<Validation>,
    config: &TrainingConfig,
    has_active: bool,
) -> (ModelStatus, Option<String>) {
    let held_out = validation.as_ref().map_or(0, |(candidate, _)| candidate.users);
    if has_active && held_out < config.min_validation_users.max(1) {
        return (
            ModelStatus::Unvalidated,
            Some(format!(
                "not validated: {held_out} visitors held out, fewer than minValidationUsers ({}); \
                 activate it with force=true to serve it anyway",
                config.min_validation_users.max(1)
            )),
        );
    }
    match validation {
        Some((candidate, active)) => {
            match vitrina_engine::validate::gate(candidate, active.as_ref(), config.tolerance) {
                Ok(()) => (ModelStatus::Validated, None),
                Err(reason) => (ModelStatus::Rejected, Some(reason)),
            }
        }
        None => (ModelStatus::Validated, None),
    }
}

/// Why a job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] vitrina_core::ports::StoreError),
    #[error("{0}")]
    Other(String),
}

/// The next free version name, `v{n+1}`.
fn next_version(models: &[ModelRecord]) -> String {
    let n = models.iter().filter_map(|m| m.version.strip_prefix('v')?.parse::<u64>().ok()).max().unwrap_or(0);
    format!("v{}", n + 1)
}

/// Reads events `1..=max_seq` page by page into a compact training log.
pub async fn load_events(
    ports: &Ports,
    max_seq: u64,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(f32) + Send),
) -> StoreResult<TrainingLog> {
    let mut out = TrainingLog::with_capacity(usize::try_from(max_seq).unwrap_or(0).min(1 << 31));
    let mut after = 0;
    // A cancelled job stops between pages (the caller sees the flag).
    while after < max_seq && !cancel.load(Ordering::SeqCst) {
        let page = ports.log.scan(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page.iter().take_while(|e| e.seq <= max_seq) {
            out.push(e);
        }
        progress(after.min(max_seq) as f32 / max_seq.max(1) as f32);
    }
    Ok(out)
}

/// Activations in this process, one at a time: the registry follower re-reads the registry
/// under it, so it never swaps in a version that a local activation just replaced.
static ACTIVATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The lock a training job holds while it runs, cluster-wide.
pub const TRAINING_LOCK: &str = "training";
/// How often a job waiting for another process's training tries the lock again.
const LOCK_RETRY: Duration = Duration::from_secs(1);

/// How often a server looks for a model another process of the deployment activated.
pub const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// Makes `bundle` (registered as `version`) the active model: registry first (so a restart
/// agrees), then the engine, then cached lists are dropped and the swap is announced.
pub async fn activate(
    ports: &Ports,
    engine: &Arc<Engine>,
    version: &str,
    bundle: Arc<ModelBundle>,
    rollback: bool,
) -> StoreResult<()> {
    let prepared = prepare_model(version, bundle).await?;
    let _one = ACTIVATING.lock().await;
    ports.registry.activate_model(version, Utc::now(), rollback).await?;
    swap_in(ports, engine, prepared, "model activated").await;
    Ok(())
}

/// Prepares `bundle` to serve as `version`, off the async runtime (the embedding index takes
/// seconds on a large catalogue).
async fn prepare_model(version: &str, bundle: Arc<ModelBundle>) -> StoreResult<PreparedModel> {
    let v = version.to_string();
    tokio::task::spawn_blocking(move || PreparedModel::new(v, bundle))
        .await
        .map_err(|e| vitrina_core::ports::StoreError::Backend(format!("preparing the model failed: {e}")))
}

/// Serves `prepared` from the next request on: the engine swaps it in, cached lists are
/// dropped and the swap is announced. The caller holds [`ACTIVATING`].
async fn swap_in(ports: &Ports, engine: &Engine, prepared: PreparedModel, what: &'static str) {
    let version = prepared.version.clone();
    engine.activate(prepared);
    ports.cache.invalidate_all().await;
    ports.bus.publish(DomainEvent::system(
        kinds::RECOMMENDATION_MODEL_UPDATED,
        None,
        json!({"modelVersion": version}),
    ));
    metrics::counter!("vitrina_model_swaps_total").increment(1);
    tracing::info!(model_version = %version, "{what}");
}

/// The registry's active model, if any.
async fn active_record(ports: &Ports) -> StoreResult<Option<ModelRecord>> {
    Ok(ports.registry.models().await?.into_iter().find(|m| m.status == ModelStatus::Active))
}

/// Serves the model the registry names active when another process of the deployment
/// activated it (a promotion, an activation or a rollback through another server on the same
/// PostgreSQL database, or `vitrina train` on it): checks every [`REGISTRY_POLL`], runs until
/// aborted. An artefact that cannot be loaded is reported once and left alone (ADR 0011).
pub async fn follow_registry(ports: Ports, engine: Arc<Engine>, artefacts: Artefacts) {
    let mut unusable: Option<String> = None;
    let mut tick = tokio::time::interval(REGISTRY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(Some(active)) = active_record(&ports).await else { continue };
        if active.version == engine.model().version || unusable.as_ref() == Some(&active.version) {
            continue;
        }
        let bundle = match load_bundle(&artefacts, &active).await {
            Ok(bundle) => Arc::new(bundle),
            Err(e) => {
                tracing::warn!(model_version = %active.version, error = %e, "the registry's active model cannot be loaded; serving the current one");
                unusable = Some(active.version);
                continue;
            }
        };
        let Ok(prepared) = prepare_model(&active.version, bundle).await else { continue };
        let _one = ACTIVATING.lock().await;
        // Still the registry's choice, and not served yet (a local activation may have run
        // while the artefact loaded).
        match active_record(&ports).await {
            Ok(Some(now)) if now.version == active.version && engine.model().version != active.version => {}
            _ => continue,
        }
        swap_in(&ports, &engine, prepared, "model activated by another process of the deployment").await;
    }
}

/// Why a registry version cannot be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("model {0} is not in the registry")]
    Unknown(String),
    #[error("model {0} is {1}; only validated, archived or active models can be activated (rejected ones with force)")]
    NotActivatable(String, &'static str),
    #[error("there is no earlier model to roll back to")]
    NothingToRollBack,
    #[error("model {0}: {1}")]
    Unloadable(String, String),
    #[error(transparent)]
    Store(#[from] vitrina_core::ports::StoreError),
}

/// Loads a registered version's artefact and swaps it in.
pub async fn activate_version(
    ports: &Ports,
    engine: &Arc<Engine>,
    artefacts: &Artefacts,
    version: &str,
    rollback: bool,
    force: bool,
) -> Result<ModelRecord, ActivationError> {
    let models = ports.registry.models().await?;
    let record = models
        .into_iter()
        .find(|m| m.version == version)
        .ok_or_else(|| ActivationError::Unknown(version.into()))?;
    let allowed =
        matches!(record.status, ModelStatus::Validated | ModelStatus::Archived | ModelStatus::Active)
            || (force && matches!(record.status, ModelStatus::Rejected | ModelStatus::Unvalidated));
    if !allowed {
        return Err(ActivationError::NotActivatable(record.version, record.status.as_str()));
    }
    let bundle = load_bundle(artefacts, &record)
        .await
        .map_err(|e| ActivationError::Unloadable(record.version.clone(), e))?;
    activate(ports, engine, &record.version, Arc::new(bundle), rollback).await?;
    Ok(record)
}

pub(crate) async fn load_bundle(artefacts: &Artefacts, record: &ModelRecord) -> Result<ModelBundle, String> {
    let artefact = record.artefact.as_ref().ok_or_else(|| "has no artefact".to_string())?;
    artefacts.load(artefact).await.map_err(|e| e.to_string())
}

/// Returns to the model that was active before the current one.
pub async fn rollback(
    ports: &Ports,
    engine: &Arc<Engine>,
    artefacts: &Artefacts,
) -> Result<ModelRecord, ActivationError> {
    let models = ports.registry.models().await?;
    let previous = models
        .iter()
        .find(|m| m.status == ModelStatus::Active)
        .and_then(|m| m.previous_version.clone())
        .ok_or(ActivationError::NothingToRollBack)?;
    activate_version(ports, engine, artefacts, &previous, true, false).await
}

/// Start-up: marks jobs a previous process left half-done as failed, then loads the active
/// model's artefact. An unreadable artefact is marked failed and the previous good version
/// is tried instead (never a crash loop). Returns the version now serving, if any.
pub async fn restore_active(
    ports: &Ports,
    engine: &Arc<Engine>,
    artefacts: &Artefacts,
) -> anyhow::Result<Option<String>> {
    let mut models = ports.registry.models().await?;
    // A model still `training` was left by a process that stopped, unless another server of
    // the deployment trains it now (it holds the training lock).
    let lock = ports.locks.try_lock(TRAINING_LOCK).await.ok().flatten();
    for m in models.iter_mut().filter(|m| m.status == ModelStatus::Training) {
        if lock.is_none() {
            tracing::info!(model_version = %m.version, "another server of the deployment is training this model; left alone");
            continue;
        }
        m.status = ModelStatus::Failed;
        m.status_reason = Some("interrupted: the process stopped while this model was training".into());
        m.finished_at = Some(Utc::now());
        ports.registry.save_model(m.clone()).await?;
        tracing::warn!(model_version = %m.version, "marked an interrupted training as failed");
    }
    if let Some(lock) = lock {
        lock.release().await;
    }
    // The active model, then the chain of models it replaced, then anything else usable.
    let mut order: Vec<String> = Vec::new();
    let mut next = models.iter().find(|m| m.status == ModelStatus::Active).map(|m| m.version.clone());
    while let Some(v) = next {
        if order.contains(&v) {
            break;
        }
        next = models.iter().find(|m| m.version == v).and_then(|m| m.previous_version.clone());
        order.push(v);
    }
    for m in &models {
        if matches!(m.status, ModelStatus::Archived | ModelStatus::Validated) && !order.contains(&m.version) {
            order.push(m.version.clone());
        }
    }
    let was_active = models.iter().find(|m| m.status == ModelStatus::Active).map(|m| m.version.clone());
    for version in order {
        let Some(record) = models.iter().find(|m| m.version == version).cloned() else { continue };
        match load_bundle(artefacts, &record).await {
            Ok(bundle) => {
                let rollback = was_active.as_deref() != Some(version.as_str());
                if rollback {
                    // Promote the fallback in the registry too, keeping the history.
                    ports.registry.activate_model(&version, Utc::now(), true).await?;
                }
                engine.activate(prepare_model(&version, Arc::new(bundle)).await?);
                tracing::info!(model_version = %version, "active model restored from its artefact");
                return Ok(Some(version));
            }
            Err(e) => {
                tracing::error!(model_version = %version, error = %e, "model artefact unusable; trying the previous version");
                let mut failed = record;
                failed.status = ModelStatus::Failed;
                failed.status_reason = Some(format!("artefact unusable at start-up: {e}"));
                ports.registry.save_model(failed).await?;
            }
        }
    }
    Ok(None)
}

mod shown;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_job_stops_loading_the_log() {
        let store = crate::ports::TestStore::new().await;
        let ports = store.ports.clone();
        ports.log.append(vitrina_core::demo::activity(Utc::now())).await.unwrap();
        let max_seq = ports.log.stats().await.unwrap().max_seq;
        let load = |cancelled: bool| {
            let ports = ports.clone();
            async move { load_events(&ports, max_seq, &AtomicBool::new(cancelled), &mut |_| ()).await.unwrap() }
        };
        assert!(load(false).await.len() > 10);
        assert_eq!(load(true).await.len(), 0, "a cancelled job reads no further page");
    }

    /// 480 visitors in four groups of twelve products: eight views of their group ten days
    /// ago, then a purchase yesterday of the cheapest product they had not viewed (what the
    /// blend misses and a learned ranker learns; the cut falls at the purchases); and lists
    /// shown two days ago, yesterday at the cut, and today.
    #[tokio::test]
    async fn a_model_with_a_learned_ranker_carries_the_exposure_totals_of_the_whole_days_before_the_job() {
        use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
        use vitrina_core::{
            activity::NewActivity,
            ports::{AttributedOutcome, Impression, ImpressionItem},
            ActivityType, EventId, Product, ProductId, UserId,
        };

        let store = crate::ports::TestStore::new().await;
        let ports = store.ports.clone();
        let now = Utc::now();
        let pid = |i: usize| ProductId::parse(&format!("p{i}")).unwrap();
        let products: Vec<Product> = (0..48)
            .map(|i| Product {
                id: pid(i),
                name: format!("Product {i}"),
                category: format!("g{}", i / 12),
                price: format!("{}.00", 10 * (i % 12 + 1)).parse().unwrap(),
                attributes: Default::default(),
                in_stock: true,
                hidden: false,
                created_at: now - chrono::Duration::days(30),
                updated_at: now - chrono::Duration::days(30),
            })
            .collect();
        let event =
            |id: String, u: usize, kind: ActivityType, item: usize, at: chrono::DateTime<Utc>| NewActivity {
                event_id: EventId::parse(&id).unwrap(),
                user_id: UserId::parse(&format!("u{u}")).unwrap(),
                activity_type: kind,
                product_id: Some(pid(item)),
                metadata: Default::default(),
                timestamp: at,
            };
        let (mut events, mut after) = (Vec::new(), Vec::new());
        let mut rng = StdRng::seed_from_u64(5);
        let start = now - chrono::Duration::days(10);
        for u in 0..480 {
            let g = u % 4;
            let mut items: Vec<usize> = (g * 12..(g + 1) * 12).collect();
            items.shuffle(&mut rng);
            let (viewed, rest) = items.split_at(8);
            for (k, &i) in viewed.iter().enumerate() {
                let at = start + chrono::Duration::minutes((u * 8 + k) as i64);
                events.push(event(format!("e{u}-{k}"), u, ActivityType::View, i, at));
            }
            let bought = *rest.iter().min().unwrap();
            after.push(event(
                format!("e{u}-buy"),
                u,
                ActivityType::Purchase,
                bought,
                now - chrono::Duration::days(1),
            ));
        }
        events.extend(after);
        for chunk in events.chunks(1_000) {
            ports.log.append(chunk.to_vec()).await.unwrap();
        }
        // p0 and p1 shown in five lists two days ago, p0 clicked in three; p3 shown at the
        // cut (its day counts for the model that serves, not for the cut's lists); p2 shown
        // today only (the job's own day, which no totals hold).
        let list = |k: usize, items: &[usize], at: chrono::DateTime<Utc>| Impression {
            recommendation_id: format!("r{k}"),
            user_id: UserId::parse(&format!("u{k}")).unwrap(),
            model_version: "v0".into(),
            variant: "default".into(),
            created_at: at,
            items: items
                .iter()
                .enumerate()
                .map(|(position, &i)| ImpressionItem {
                    product_id: pid(i),
                    source: "trending".into(),
                    position: position as u32,
                })
                .collect(),
        };
        let two_days_ago = now - chrono::Duration::days(2);
        for k in 0..5 {
            ports.impressions.record_impression(list(k, &[0, 1], two_days_ago));
        }
        ports.impressions.record_impression(list(5, &[2], now));
        ports.impressions.record_impression(list(6, &[3], now - chrono::Duration::days(1)));
        for k in 0..3 {
            ports.impressions.record_outcome(AttributedOutcome {
                event_id: format!("click-{k}"),
                recommendation_id: format!("r{k}"),
                user_id: UserId::parse(&format!("u{k}")).unwrap(),
                variant: "default".into(),
                product_id: pid(0),
                source: "trending".into(),
                position: 0,
                kind: ActivityType::Click,
                value: 0.0,
                created_at: two_days_ago,
            });
        }
        ports.impressions.flush_impressions().await;

        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(vitrina_store::files::DirArtefacts::new(dir.path()));
        let settings = TrainingSettings { threads: 1, stuck_after: std::time::Duration::from_secs(600) };
        let training = Training::new(settings, Artefacts::new(files)).unwrap();
        let engine = Arc::new(Engine::new(products, Default::default()));
        training.submit(TrainingConfig::default(), Trigger::Api).unwrap();
        assert!(training.run_once(&ports, &engine).await);
        let finished = Utc::now();
        let job = training.status().last_finished.expect("the job finished");
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.log);
        let model = engine.model();
        assert!(model.bundle.ranker.is_some(), "the ranker serves: {:?}", job.log);
        let totals = model.bundle.engagement.as_ref().expect("the model carries engagement totals");
        // the days before the job's (midnight may pass while it runs)
        let window = |t: chrono::DateTime<Utc>| engagement::window(t.timestamp_millis());
        assert!(totals.days == window(now) || totals.days == window(finished), "{:?}", totals.days);
        let counts: Vec<(&str, u64, u64)> =
            totals.products.iter().map(|(p, _, c)| (p.as_str(), c.impressions, c.clicks)).collect();
        let mut expected = vec![("p0", 5, 3), ("p1", 5, 0), ("p3", 1, 0)];
        if totals.days != window(now) {
            expected.insert(2, ("p2", 1, 0));
        }
        assert_eq!(counts, expected, "today's list of p2 is left out");
        // the cut's lists read the days before the cut's: without p3
        let cut_line = "offline features from 2 products shown on 1 of the 28 days before the cut's day";
        assert!(job.log.iter().any(|l| l.contains(cut_line)), "{:?}", job.log);
    }

    /// An impression log whose read of exposure totals number `.1` (from 0) fails.
    struct FailingRead(std::sync::atomic::AtomicUsize, usize);

    #[async_trait::async_trait]
    impl vitrina_core::ports::ImpressionStore for FailingRead {
        fn record_impression(&self, _: vitrina_core::ports::Impression) {}
        async fn impressions_for_user(
            &self,
            _: &vitrina_core::UserId,
            _: chrono::DateTime<Utc>,
        ) -> StoreResult<Vec<vitrina_core::ports::Impression>> {
            Ok(Vec::new())
        }
        async fn impression(
            &self,
            _: &vitrina_core::UserId,
            _: &str,
        ) -> StoreResult<Option<vitrina_core::ports::Impression>> {
            Ok(None)
        }
        async fn outcomes_for_user(
            &self,
            _: &vitrina_core::UserId,
        ) -> StoreResult<Vec<vitrina_core::ports::AttributedOutcome>> {
            Ok(Vec::new())
        }
        fn record_outcome(&self, _: vitrina_core::ports::AttributedOutcome) {}
        async fn exposure(
            &self,
            _: &vitrina_core::ProductId,
            _: chrono::DateTime<Utc>,
        ) -> StoreResult<vitrina_core::ports::Exposure> {
            Ok(Default::default())
        }
        async fn exposures(&self, _: (i64, i64)) -> StoreResult<Exposures> {
            if self.0.fetch_add(1, Ordering::SeqCst) == self.1 {
                return Err(vitrina_core::ports::StoreError::Closed);
            }
            let shown = vitrina_core::ports::Exposure { impressions: 3, ..Default::default() };
            Ok(Exposures { days: 1, products: vec![(vitrina_core::ProductId::parse("p1").unwrap(), shown)] })
        }
        async fn experiment_log(
            &self,
            _: &str,
        ) -> StoreResult<(Vec<vitrina_core::ports::Impression>, Vec<vitrina_core::ports::AttributedOutcome>)>
        {
            Ok((Vec::new(), Vec::new()))
        }
    }

    /// When either window's totals cannot be read neither is used, so that a ranker never
    /// trains on features it will not have when it serves.
    #[tokio::test]
    async fn offline_features_come_from_both_windows_or_neither() {
        let store = crate::ports::TestStore::new().await;
        let mut ports = store.ports.clone();
        let training = service(std::time::Duration::from_secs(60));
        let cut = Utc::now().timestamp_millis() - 86_400_000;
        let mut read = |fails: usize| {
            ports.impressions = Arc::new(FailingRead(Default::default(), fails));
            let (ports, training) = (ports.clone(), &training);
            async move {
                let (before_cut, (_, serving)) = training.engagement_totals(&ports, cut).await;
                (before_cut.products.len(), serving.products.len())
            }
        };
        assert_eq!(read(usize::MAX).await, (1, 1), "both read: both used");
        assert_eq!(read(1).await, (0, 0), "today's read fails: the cut's is not used either");
        assert_eq!(read(0).await, (0, 0), "the cut's read fails");
    }

    fn service(stuck_after: std::time::Duration) -> Training {
        let dir = std::env::temp_dir().join(format!("vitrina-training-health-{}", std::process::id()));
        let files = Arc::new(vitrina_store::files::DirArtefacts::new(&dir));
        Training::new(TrainingSettings { threads: 1, stuck_after }, Artefacts::new(files)).unwrap()
    }

    #[test]
    fn a_candidate_without_enough_held_out_visitors_is_not_promoted_over_an_active_model() {
        use vitrina_engine::validate::Quality;
        let q = |users, ndcg| Quality { users, ndcg_at_10: ndcg, hr_at_10: ndcg };
        let config = TrainingConfig { min_validation_users: 3, ..TrainingConfig::default() };
        let (status, reason) = gate(&None, &config, true);
        assert_eq!(status, ModelStatus::Unvalidated);
        assert!(reason.unwrap().contains("0 visitors held out"));
        assert_eq!(gate(&Some((q(2, 0.9), Some(q(2, 0.1)))), &config, true).0, ModelStatus::Unvalidated);
        assert_eq!(gate(&Some((q(3, 0.9), Some(q(3, 0.1)))), &config, true), (ModelStatus::Validated, None));
        assert_eq!(gate(&Some((q(3, 0.1), Some(q(3, 0.9)))), &config, true).0, ModelStatus::Rejected);
        // The first model has nothing to protect: promoted.
        assert_eq!(gate(&None, &config, false), (ModelStatus::Validated, None));
    }

    #[test]
    fn health_fails_without_a_worker_and_with_a_job_that_stopped_reporting() {
        let t = service(std::time::Duration::from_secs(60));
        assert!(t.health().unwrap_err().contains("worker is not running"));
        t.lock().worker = true;
        assert!(t.health().is_ok());
        let job = t.submit(TrainingConfig::default(), Trigger::Api).unwrap();
        {
            let mut q = t.lock();
            q.current = q.queued.pop_front();
            q.last_progress = Some(std::time::Instant::now() - std::time::Duration::from_secs(61));
        }
        let stuck = t.health().unwrap_err();
        assert!(stuck.contains(&job.job_id) && stuck.contains("no progress"), "{stuck}");
        t.update(|j| j.progress = 0.5);
        assert!(t.health().is_ok(), "a progress report clears it");
    }
}
