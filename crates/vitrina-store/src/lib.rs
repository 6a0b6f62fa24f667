//! Storage and cache backends for Vitrina's ports.
//!
//! - [`sqlite::SqliteStore`]: the embedded default. One SQLite database in WAL mode holds
//!   the event log, catalogue, users, impressions and model registry. All writes go
//!   through one writer thread that commits whatever is queued in one transaction (group
//!   commit), so each acknowledged write is durable without paying one fsync per request.
//! - [`cache::MemoryCache`]: the in-process per-user recommendation cache.
//!
//! Invariant: a write's future resolves only after its transaction has committed.

pub mod cache;
pub mod sqlite;

pub use cache::MemoryCache;
pub use sqlite::SqliteStore;
