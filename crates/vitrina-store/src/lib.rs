//! Storage and cache backends for Vitrina's ports.
//!
//! - [`sqlite::SqliteStore`]: the embedded default. One SQLite database in WAL mode holds
//!   the event log, catalogue, users, impressions and model registry. All writes go
//!   through one writer thread that commits whatever is queued in one transaction (group
//!   commit), so each acknowledged write is durable without paying one fsync per request.
//! - [`postgres::PgStore`]: the store of a deployment over several processes. The event log
//!   is numbered in commit order, so followers reading it by sequence never skip an event.
//! - [`cache::MemoryCache`]: the in-process per-user recommendation cache.
//!
//! Invariant: a write's future resolves only after its transaction has committed.

pub mod cache;
pub mod exposure;
pub mod files;
mod identity;
pub mod locks;
pub mod migrate;
pub mod open;
pub mod postgres;
pub mod redis;
mod retention;
mod served;
pub mod sqlite;
pub mod testing;

pub use cache::MemoryCache;
pub use open::{Location, OpenOptions, Opened};
use vitrina_core::ports::{
    ArtefactStore, CatalogStore, EventLog, ExperimentStore, ImpressionStore, KeyStore, Locks, ModelRegistry,
    UserStore,
};

/// The storage ports every backend implements, as one trait object.
pub trait Store:
    EventLog
    + CatalogStore
    + UserStore
    + ImpressionStore
    + ModelRegistry
    + ExperimentStore
    + KeyStore
    + ArtefactStore
    + Locks
{
}

impl<T> Store for T where
    T: EventLog
        + CatalogStore
        + UserStore
        + ImpressionStore
        + ModelRegistry
        + ExperimentStore
        + KeyStore
        + ArtefactStore
        + Locks
{
}
pub use sqlite::SqliteStore;
