//! The backends behind the ports, as trait objects: what every part of the server reaches
//! the store, the bus and the cache through.

use std::sync::Arc;

use vitrina_core::ports::{
    CatalogStore, EventBus, EventLog, ExperimentStore, ImpressionStore, KeyStore, Locks, ModelRegistry,
    RecommendationCache, UserStore,
};

/// The backends behind the ports.
#[derive(Clone)]
pub struct Ports {
    pub log: Arc<dyn EventLog>,
    pub catalog: Arc<dyn CatalogStore>,
    pub users: Arc<dyn UserStore>,
    pub impressions: Arc<dyn ImpressionStore>,
    pub registry: Arc<dyn ModelRegistry>,
    pub experiments: Arc<dyn ExperimentStore>,
    pub keys: Arc<dyn KeyStore>,
    /// Locks with one holder across the deployment's processes.
    pub locks: Arc<dyn Locks>,
    pub bus: Arc<dyn EventBus>,
    pub cache: Arc<dyn RecommendationCache>,
}

impl Ports {
    /// Every storage port from one store, beside a bus and a cache.
    pub fn of_store(
        store: Arc<dyn vitrina_store::Store>,
        bus: Arc<dyn EventBus>,
        cache: Arc<dyn RecommendationCache>,
    ) -> Self {
        Self {
            log: store.clone(),
            catalog: store.clone(),
            users: store.clone(),
            impressions: store.clone(),
            registry: store.clone(),
            experiments: store.clone(),
            keys: store.clone(),
            locks: store,
            bus,
            cache,
        }
    }
}

/// For this crate's unit tests: a fresh embedded store in a temporary directory behind
/// [`Ports`], with the in-process bus and cache.
#[cfg(test)]
pub(crate) struct TestStore {
    _dir: tempfile::TempDir,
    pub store: vitrina_store::Opened,
    pub ports: Ports,
}

#[cfg(test)]
impl TestStore {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let location = vitrina_store::Location::Dir(dir.path().into());
        let store = vitrina_store::Opened::open(&location, Default::default()).await.unwrap();
        let ports = Ports::of_store(
            store.store(),
            Arc::new(vitrina_bus::InProcessBus::new(16)),
            Arc::new(vitrina_store::MemoryCache::new(1000, std::time::Duration::from_secs(600))),
        );
        Self { _dir: dir, store, ports }
    }
}
