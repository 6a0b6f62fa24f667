//! A Vitrina process. The embedded deployment plays every role in one process over one
//! store — the SQLite store in a data directory, or PostgreSQL — with the in-process bus and
//! the in-memory cache. Over PostgreSQL, processes may each play some roles and reach each
//! other through NATS JetStream and Redis (see [`crate::cluster`]). Model artefacts live in
//! the store (files under the data directory, or a PostgreSQL table).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::Utc;
use tokio::task::JoinHandle;
use vitrina_bus::{nats::Broker, InProcessBus};
use vitrina_core::{
    demo,
    ports::{CatalogStore, ProductQuery, RecommendationCache},
    roles::{Role, Roles},
};
use vitrina_engine::{Engine, RankingConfig};
use vitrina_store::{
    redis::{Connection, SharedLists, Watermarks},
    Location, MemoryCache, OpenOptions, Opened, Store,
};

use crate::{
    artefacts::Artefacts,
    attribution::Attributor,
    auth::{Auth, AuthConfig, Keys, Limiter, RateLimits},
    checkpoints::{CheckpointSettings, Checkpoints},
    cluster::{self, Cluster},
    experiments::Experiments,
    follower::Follower,
    ports::Ports,
    state::{AppState, Limits, Shared},
    training::{self, Training, TrainingSettings, Trigger},
};

/// Below this many events, a store without a usable model trains one before serving.
const SYNC_TRAINING_EVENTS: u64 = 200_000;
/// How often the online state is checkpointed by default.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(300);
/// How long shutdown waits for the last checkpoint to be written.
const SHUTDOWN_CHECKPOINT_WAIT: Duration = Duration::from_secs(120);
/// How long shutdown waits for a cancelled training job to wind down.
const SHUTDOWN_TRAINING_WAIT: Duration = Duration::from_secs(20);

/// When training runs on its own.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingSchedule {
    /// Threads a training job may use; the rest of the machine keeps serving.
    pub threads: usize,
    /// Start a job this often (seconds); 0 = never.
    pub interval_seconds: u64,
    /// Start a job once this many events arrived since the last one's snapshot; 0 = never.
    pub after_events: u64,
    /// A running job that reports no progress for this long turns the training health into
    /// a 503.
    pub stuck_after_seconds: u64,
}

/// Settings of an embedded instance.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Where the store is: a data directory or a PostgreSQL URL.
    pub store: Location,
    /// PostgreSQL: connections for reads, and how long connecting or waiting for one may take.
    pub pool_size: usize,
    pub store_timeout: Duration,
    /// Load the demo shop when the data directory is new.
    pub demo: bool,
    /// Visitors whose lists the cache keeps.
    pub cache_users: u64,
    /// Days served lists and attributed outcomes are kept; 0 = forever.
    pub impression_retention_days: f64,
    /// Days events are kept in the log; 0 = forever.
    pub event_retention_days: f64,
    pub cache_ttl: Duration,
    pub limits: Limits,
    pub ranking: RankingConfig,
    pub schedule: TrainingSchedule,
    /// How often running bandit / weight-tuning experiments take a step (seconds; 0 = only
    /// on `POST /api/v1/experiments/{id}/step`).
    pub experiment_step_seconds: u64,
    /// API keys' settings and CORS.
    pub auth: AuthConfig,
    pub rate_limits: RateLimits,
    /// How often the online state is checkpointed (and at a clean stop); `None`: never, and
    /// every start replays the whole log.
    pub checkpoint_every: Option<Duration>,
    /// `false` opens the store for offline work (`vitrina train`): no log replay, no
    /// start-up training, no background tasks.
    pub serve: bool,
    /// The roles this process plays (all: the embedded deployment).
    pub roles: Roles,
    /// NATS JetStream between the processes of a deployment (`nats://host:4222`).
    pub bus_url: Option<String>,
    /// Redis between the processes of a deployment (`redis://host:6379`): visitors'
    /// watermarks for read-your-writes across api replicas.
    pub cache_url: Option<String>,
    /// The Gorse-compatible API's feedback types and auto-inserted items.
    pub gorse: crate::gorse::GorseConfig,
}

impl EmbeddedConfig {
    /// The defaults over the SQLite store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::at(Location::Dir(data_dir.into()))
    }

    /// The defaults over the store at `store`.
    pub fn at(store: Location) -> Self {
        let open = OpenOptions::default();
        Self {
            store,
            pool_size: open.pool_size,
            store_timeout: open.timeout,
            demo: true,
            cache_users: 250_000,
            impression_retention_days: 30.0,
            event_retention_days: 0.0,
            cache_ttl: Duration::from_secs(600),
            limits: Limits::default(),
            ranking: RankingConfig::default(),
            schedule: TrainingSchedule { threads: 1, stuck_after_seconds: 1800, ..Default::default() },
            experiment_step_seconds: 60,
            auth: AuthConfig::default(),
            rate_limits: RateLimits::default(),
            checkpoint_every: Some(DEFAULT_CHECKPOINT_EVERY),
            serve: true,
            roles: Roles::all(),
            bus_url: None,
            cache_url: None,
            gorse: Default::default(),
        }
    }
}

/// A running embedded instance: its state for [`crate::app`] and its background work.
pub struct Embedded {
    pub state: AppState,
    store: Opened,
    /// The follower's task, stopped first at shutdown so it checkpoints.
    following: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Embedded {
    /// Opens the store (loading the demo shop into a new one), restores the active model,
    /// replays the log into the engine's online state and starts the background work.
    pub async fn start(config: EmbeddedConfig) -> anyhow::Result<Self> {
        let roles = config.roles;
        if !roles.is_all() && matches!(config.store, Location::Dir(_)) {
            anyhow::bail!(
                "a process that plays only some roles ({roles}) shares its store with the others: \
                 give --store postgres://… (the data directory's SQLite store serves one process)"
            );
        }
        let days = |d: f64| (d > 0.0).then(|| Duration::from_secs_f64(d.min(36_500.0) * 86_400.0));
        let options = OpenOptions {
            impression_retention: days(config.impression_retention_days),
            event_retention: days(config.event_retention_days),
            pool_size: config.pool_size,
            timeout: config.store_timeout,
        };
        let opened = Opened::open(&config.store, options)
            .await
            .with_context(|| format!("opening the store at {}", config.store.describe()))?;
        let store = opened.store();
        let (mut cluster, redis) =
            connect(roles, store.log_id(), config.bus_url.as_deref(), config.cache_url.as_deref()).await?;
        if opened.created() && config.demo {
            load_demo(store.as_ref()).await.context("loading the demo data")?;
        }
        // The revision before the read: the first periodic re-read skips what this one read.
        let catalogue_revision = store.catalogue_revision().await?;
        let products = all_products(store.as_ref()).await?;
        let engine = Arc::new(Engine::new(products, config.ranking.clone()));
        // With Redis the replicas share their lists; a list is kept there as product ids
        // and served with the products this process holds.
        let cache: Arc<dyn RecommendationCache> = match redis {
            Some((redis, log)) => {
                let held = engine.clone();
                let lists = Arc::new(SharedLists::new(
                    redis,
                    &log,
                    config.cache_ttl,
                    Arc::new(move |id| held.product(id)),
                ));
                cluster.lists = Some(lists.clone());
                lists
            }
            None => Arc::new(MemoryCache::new(config.cache_users, config.cache_ttl)),
        };
        let ports = Ports::of_store(store.clone(), Arc::new(InProcessBus::new(4096)), cache);
        engine.limit_visitors(config.limits.online_visitors);
        let settings = CheckpointSettings { every: config.checkpoint_every };
        let checkpoints = Checkpoints::new(store.clone(), engine.clone(), settings);
        // An api replica hears commits from the broker; any other process from the log.
        let broker = cluster.broker.clone().filter(|_| roles.has(Role::Api));
        let follower = Follower::checkpointed(ports.clone(), engine.clone(), Some(checkpoints), broker);
        let (attributor, attributing) = Attributor::spawn(ports.clone());
        let artefacts = Artefacts::new(store.clone());
        let training = Arc::new(Training::new(
            TrainingSettings {
                threads: config.schedule.threads,
                stuck_after: Duration::from_secs(config.schedule.stuck_after_seconds.max(1)),
            },
            artefacts.clone(),
        )?);
        let serves_models = roles.has(Role::Api) || roles.has(Role::Training);
        let restored = if serves_models {
            training::restore_active(&ports, &engine, &artefacts)
                .await
                .context("restoring the active model")?
        } else {
            None
        };
        let experiments = Arc::new(
            Experiments::load(ports.experiments.clone(), cluster.clone(), &ports, &engine, &artefacts)
                .await?,
        );
        let auth = Arc::new(Auth {
            keys: Keys::load(ports.keys.clone()).await.context("loading the API keys")?,
            limiter: Limiter::new(&config.rate_limits),
            config: config.auth.clone(),
        });
        let state = AppState::new(Shared {
            ports: ports.clone(),
            engine: engine.clone(),
            follower: follower.clone(),
            attributor,
            training: training.clone(),
            experiments: experiments.clone(),
            auth,
            limits: config.limits.clone(),
            gorse: crate::gorse::Gorse::new(&config.gorse).map_err(anyhow::Error::msg)?,
            started: std::time::Instant::now(),
            cluster: cluster.clone(),
        });
        if !config.serve {
            return Ok(Self { state, store: opened, following: None, tasks: Vec::new() });
        }
        if roles.has(Role::Api) {
            follower.replay().await.context("replaying the event log")?;
            engine.refresh();
        }
        let events = ports.log.stats().await.context("reading the event log's size")?.events;
        if roles.has(Role::Training) && restored.is_none() && events > 0 {
            let defaults = vitrina_engine::TrainingConfig::default();
            training.submit(defaults, Trigger::Startup)?;
            if events <= SYNC_TRAINING_EVENTS {
                training.run_once(&ports, &engine).await;
            } else {
                tracing::info!(
                    events,
                    "no usable model: training one in the background; lists use live popularity meanwhile"
                );
            }
        }
        let stats = engine.stats();
        tracing::info!(%roles, model_version = %engine.model().version, products = stats.products, visitors = stats.visitors, "engine ready");
        let mut tasks = vec![attributing];
        let mut following = None;
        if roles.has(Role::Api) {
            following = Some(follower.spawn());
            tasks.push(tokio::spawn(refresh_forever(engine.clone())));
        }
        if serves_models {
            tasks.push(tokio::spawn(training::follow_registry(
                ports.clone(),
                engine.clone(),
                artefacts.clone(),
            )));
        }
        // Other processes may change the store: over PostgreSQL, or with a broker.
        if !matches!(config.store, Location::Dir(_)) || cluster.broker.is_some() {
            tasks.push(tokio::spawn(cluster::follow_changes(state.clone(), catalogue_revision)));
        }
        if roles.has(Role::Training) {
            tasks.push(training.spawn_worker(ports.clone(), engine.clone()));
        }
        if roles.has(Role::Training) && config.experiment_step_seconds > 0 {
            tasks.push(tokio::spawn(step_experiments_forever(
                Duration::from_secs(config.experiment_step_seconds),
                state.clone(),
            )));
        }
        let scheduled = config.schedule.interval_seconds > 0 || config.schedule.after_events > 0;
        if roles.has(Role::Training) && scheduled {
            tasks.push(tokio::spawn(schedule_forever(
                config.schedule.clone(),
                ports.clone(),
                training.clone(),
                engine.clone(),
            )));
        }
        Ok(Self { state, store: opened, following, tasks })
    }

    /// Stops the background work and closes the store after committing every queued write.
    /// The follower checkpoints the online state first (up to [`SHUTDOWN_CHECKPOINT_WAIT`]).
    /// A running training job is cancelled at its next checkpoint and given up to
    /// [`SHUTDOWN_TRAINING_WAIT`] to record that; past it, the next start marks it failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.training.stop();
        if let Some(mut following) = self.following {
            self.state.follower.stop();
            if tokio::time::timeout(SHUTDOWN_CHECKPOINT_WAIT, &mut following).await.is_err() {
                tracing::warn!("the last checkpoint of the online state was not written in time; the next start replays more of the log");
                following.abort();
            }
        }
        let deadline = std::time::Instant::now() + SHUTDOWN_TRAINING_WAIT;
        while self.state.training.running() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        drop(self.state);
        self.store.close().await;
        tracing::info!("store closed");
        Ok(())
    }
}

/// Connects to the deployment's broker and Redis, when given; returns the Redis connection
/// for the shared lists too, with the log's id.
async fn connect(
    roles: Roles,
    log: Option<String>,
    bus: Option<&str>,
    cache: Option<&str>,
) -> anyhow::Result<(Cluster, Option<(Connection, String)>)> {
    let broker = match (bus, log.as_deref()) {
        (Some(url), Some(log)) => Some(Broker::connect(url, log).await.context("connecting to the bus (--bus)")?),
        (Some(_), None) => anyhow::bail!(
            "--bus connects the processes of a deployment over PostgreSQL; the data directory's store serves one process"
        ),
        (None, _) => None,
    };
    let redis = match (cache, log) {
        (Some(url), Some(log)) => Some((
            vitrina_store::redis::connect(url)
                .await
                .with_context(|| format!("connecting to Redis at {url} (--cache)"))?,
            log,
        )),
        (Some(_), None) => anyhow::bail!(
            "--cache connects the processes of a deployment over PostgreSQL; the data directory's store serves one process"
        ),
        (None, _) => None,
    };
    if !roles.is_all() && broker.is_none() {
        tracing::warn!(%roles, "no --bus: api replicas hear new events, catalogue and experiment changes at their next read of the store (every second; 30 s for changes)");
    }
    let watermarks = redis.as_ref().map(|(redis, log)| Watermarks::new(redis.clone(), log));
    if !roles.is_all() && watermarks.is_none() {
        tracing::warn!(%roles, "no --cache: an api replica may answer a visitor before it applied the event another process just acknowledged");
    }
    Ok((Cluster { roles, broker, watermarks, lists: None }, redis))
}

/// The lock the process that steps the experiments holds.
const EXPERIMENTS_LOCK: &str = "experiments";

/// Steps the automated experiments (bandit reallocation, weight tuning) every `every`. One
/// process of the deployment does: the one holding the `experiments` lock, which it keeps
/// for as long as it runs (a process that dies releases it, and another takes over at its
/// next tick). It reads back what a previous holder did before its first step.
async fn step_experiments_forever(every: Duration, state: AppState) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut held = None;
    loop {
        tick.tick().await;
        let artefacts = state.training.artefacts().clone();
        if held.is_none() {
            match state.ports.locks.try_lock(EXPERIMENTS_LOCK).await {
                Ok(Some(guard)) => held = Some(guard),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "taking the experiments' lock failed");
                    continue;
                }
            }
            if let Err(e) = state.experiments.reload(&state.ports, &state.engine, &artefacts).await {
                tracing::warn!(error = %e, "re-reading the experiments failed");
                held = None;
                continue;
            }
        }
        for id in state.experiments.automated() {
            if let Err(e) = state.experiments.step(&id, &state.ports, &state.engine, &artefacts).await {
                tracing::warn!(experiment = %id, error = %e, "experiment step failed");
            }
        }
    }
}

/// Re-ranks live popularity every second.
async fn refresh_forever(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let engine = engine.clone();
        if tokio::task::spawn_blocking(move || engine.refresh()).await.is_ok() {
            metrics::counter!("vitrina_trending_refreshes_total").increment(1);
        }
    }
}

/// Starts training jobs by interval and by the number of new events.
/// A scheduled job trains with the active model's configuration (the defaults when none is
/// active), so what a shop promoted is what it keeps retraining.
async fn schedule_forever(
    schedule: TrainingSchedule,
    ports: Ports,
    training: Arc<Training>,
    engine: Arc<Engine>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_start = std::time::Instant::now();
    loop {
        tick.tick().await;
        if training.busy() {
            continue;
        }
        let due_by_time = schedule.interval_seconds > 0
            && last_start.elapsed() >= Duration::from_secs(schedule.interval_seconds);
        let due_by_events = schedule.after_events > 0 && {
            let trained =
                ports.registry.models().await.ok().and_then(|m| m.iter().map(|m| m.data_range.1).max());
            let max_seq = ports.log.stats().await.map(|s| s.max_seq).unwrap_or(0);
            max_seq.saturating_sub(trained.unwrap_or(0)) >= schedule.after_events
        };
        if due_by_time || due_by_events {
            let trigger = if due_by_time { Trigger::Schedule } else { Trigger::NewEvents };
            let model = engine.model();
            let config = if model.bundle.items.is_empty() {
                vitrina_engine::TrainingConfig::default()
            } else {
                model.bundle.config.clone()
            };
            if training.submit(config, trigger).is_ok() {
                tracing::info!(?trigger, "scheduled training job queued");
                last_start = std::time::Instant::now();
            }
        }
    }
}

async fn load_demo(store: &dyn Store) -> anyhow::Result<()> {
    let now = Utc::now();
    store.upsert_products(demo::products(now)).await?;
    for user in demo::users(now) {
        store.upsert_user(user).await?;
    }
    store.append(demo::activity(now)).await?;
    tracing::info!("demo data loaded: 5 users, 10 products, {} events", demo::activity(now).len());
    Ok(())
}

/// Every product of the catalogue.
pub async fn all_products(store: &dyn CatalogStore) -> anyhow::Result<Vec<vitrina_core::Product>> {
    let mut out = Vec::new();
    loop {
        let (page, _) =
            store.products(ProductQuery { category: None, offset: out.len(), limit: 10_000 }).await?;
        let done = page.len() < 10_000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}
