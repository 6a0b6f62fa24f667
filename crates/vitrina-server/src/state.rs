//! The application state handed to every handler: the ports (as trait objects), the
//! engine and the training service.

use std::{sync::Arc, time::Instant};

use vitrina_engine::Engine;

use crate::ports::Ports;
use crate::{
    attribution::Attributor, auth::Auth, cluster::Cluster, experiments::Experiments, follower::Follower,
    training::Training,
};

/// Limits the API enforces (the `[limits]` section of the config file).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes for ordinary endpoints.
    pub body_bytes: usize,
    /// Largest request body in bytes for batch endpoints.
    pub batch_body_bytes: usize,
    /// Most events in one batch.
    pub batch_events: usize,
    /// Most products in one bulk upsert.
    pub bulk_products: usize,
    /// Visitors whose online state (latest events) is kept in memory; past it, the longest
    /// idle are forgotten and read back from the log when they return.
    pub online_visitors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            batch_body_bytes: 32 * 1024 * 1024,
            batch_events: 10_000,
            bulk_products: 10_000,
            online_visitors: 2_000_000,
        }
    }
}

/// Everything a handler can reach: one shared allocation, so the clone that every request
/// and layer makes is one reference count (it was thirteen, 2 % of the CPU of a cache-miss
/// load in the scale benchmark's profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub ports: Ports,
    pub engine: Arc<Engine>,
    /// Applies the event log to the engine; says how far it got.
    pub follower: Arc<Follower>,
    /// Ties outcome events to the lists that earned them, off the request path.
    pub attributor: Attributor,
    pub training: Arc<Training>,
    pub experiments: Arc<Experiments>,
    /// API keys, rate limits and the request guard's settings.
    pub auth: Arc<Auth>,
    pub limits: Limits,
    pub started: Instant,
    /// The Gorse-compatible API's settings (feedback types, auto-inserted items).
    pub gorse: crate::gorse::Gorse,
    /// The roles this process plays and how it reaches the deployment's other processes.
    pub cluster: Cluster,
}
