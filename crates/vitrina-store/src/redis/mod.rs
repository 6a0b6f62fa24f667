//! Redis, shared by the processes of a deployment: visitors' [`Watermarks`] for
//! read-your-writes across replicas, and the [`SharedLists`] cache.
//!
//! Redis holds nothing that is not elsewhere: when it is lost or flushed, replicas answer
//! from what they applied (only a visitor's event of the last moment may be missing) and
//! compute the lists they would have found there.

mod lists;
mod watermarks;

use std::time::Duration;

use redis::aio::ConnectionManager;
use vitrina_core::{
    ports::{StoreError, StoreResult},
    UserId,
};

pub use lists::{Resolve, SharedLists};
pub use watermarks::{Watermarks, WATERMARK_TTL};

/// A connection to Redis, shared by everything of one process that uses it.
pub type Connection = ConnectionManager;

/// A Redis command that takes longer fails (the caller goes on without it).
const TIMEOUT: Duration = Duration::from_millis(500);

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

/// A visitor as Redis keys name them: a hash, so the visitor's id is never in Redis.
fn visitor(user: &UserId) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(user.as_str().as_bytes()))
}

/// Connects to `url` (`redis://host:6379`). The connection reconnects by itself; a command
/// fails after [`TIMEOUT`].
pub async fn connect(url: &str) -> StoreResult<ConnectionManager> {
    let client = redis::Client::open(url).map_err(backend)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(TIMEOUT));
    tokio::time::timeout(Duration::from_secs(6), client.get_connection_manager_with_config(config))
        .await
        .map_err(|_| backend(format!("no answer from {url}")))?
        .map_err(backend)
}
