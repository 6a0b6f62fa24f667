//! The embedded deployment: every role in one process over the SQLite store, the
//! in-process bus and the in-memory cache.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::Utc;
use tokio::task::JoinHandle;
use vitrina_bus::InProcessBus;
use vitrina_core::{
    demo,
    ports::{CatalogStore, EventLog, ProductQuery, UserStore},
};
use vitrina_store::{MemoryCache, SqliteStore};

use crate::{
    engine::Engine,
    state::{AppState, Limits, Ports},
    training::{self, Training},
};

/// Settings of an embedded instance.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub data_dir: PathBuf,
    /// Load the demo shop when the data directory is new.
    pub demo: bool,
    /// Visitors whose lists the cache keeps.
    pub cache_users: u64,
    pub cache_ttl: Duration,
    pub limits: Limits,
}

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            demo: true,
            cache_users: 1_000_000,
            cache_ttl: Duration::from_secs(600),
            limits: Limits::default(),
        }
    }
}

/// A running embedded instance: its state for [`crate::app`] and its background work.
pub struct Embedded {
    pub state: AppState,
    store: Arc<SqliteStore>,
    worker: JoinHandle<()>,
}

impl Embedded {
    /// Opens the store (loading the demo shop into a new one), restores the active model and
    /// starts the training worker.
    pub async fn start(config: EmbeddedConfig) -> anyhow::Result<Self> {
        let dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
            .await?
            .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
        let store = Arc::new(store);
        if store.created() && config.demo {
            load_demo(&store).await.context("loading the demo data")?;
        }
        let products = all_products(store.as_ref()).await?;
        let bus = Arc::new(InProcessBus::new(4096));
        let cache = Arc::new(MemoryCache::new(config.cache_users, config.cache_ttl));
        let ports = Ports {
            log: store.clone(),
            catalog: store.clone(),
            users: store.clone(),
            impressions: store.clone(),
            registry: store.clone(),
            bus,
            cache,
        };
        let engine = Arc::new(Engine::new(products));
        let training = Arc::new(Training::new());
        let version = training::restore_active(&ports, &engine, &training)
            .await
            .context("restoring the active model")?;
        tracing::info!(model_version = %version, products = engine.product_count(), "engine ready");
        let worker = tokio::spawn(training.clone().run_forever(ports.clone(), engine.clone()));
        let state =
            AppState { ports, engine, training, limits: config.limits, started: std::time::Instant::now() };
        Ok(Self { state, store, worker })
    }

    /// Stops the training worker and closes the store after committing every queued write.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.worker.abort();
        drop(self.state);
        self.store.flush().await.ok();
        let store = self.store;
        tokio::task::spawn_blocking(move || store.close()).await?;
        tracing::info!("store closed");
        Ok(())
    }
}

async fn load_demo(store: &SqliteStore) -> anyhow::Result<()> {
    let now = Utc::now();
    store.upsert_products(demo::products(now)).await?;
    for user in demo::users(now) {
        store.upsert_user(user).await?;
    }
    store.append(demo::activity(now)).await?;
    tracing::info!("demo data loaded: 5 users, 10 products, {} events", demo::activity(now).len());
    Ok(())
}

async fn all_products(store: &dyn CatalogStore) -> anyhow::Result<Vec<vitrina_core::Product>> {
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
