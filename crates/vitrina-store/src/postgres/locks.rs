//! Cluster-wide locks on PostgreSQL: a session advisory lock, held by a connection taken out
//! of the pool for as long as the lock is held. Releasing unlocks it; dropping the guard (or
//! the process dying) closes the connection, which releases it too.

use async_trait::async_trait;
use vitrina_core::ports::{HeldLock, LockGuard, Locks, StoreResult};

use super::{backend, PgStore};

/// The 64-bit key of a lock name (stable across processes and builds: FNV-1a).
fn key(name: &str) -> i64 {
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash as i64
}

struct Held {
    client: deadpool_postgres::ClientWrapper,
    key: i64,
}

#[async_trait]
impl HeldLock for Held {
    async fn release(self: Box<Self>) {
        if let Err(e) = self.client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]).await {
            // Dropping the connection below releases it anyway.
            tracing::warn!(error = %e, "releasing a lock failed; closing its connection instead");
        }
    }
}

#[async_trait]
impl Locks for PgStore {
    async fn try_lock(&self, name: &str) -> StoreResult<Option<LockGuard>> {
        let client = self.client().await?;
        let key = key(name);
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map_err(backend)?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        // Out of the pool: the session holds the lock, so the connection must not serve others.
        let client = deadpool_postgres::Object::take(client);
        Ok(Some(Box::new(Held { client, key })))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_stable_and_differ_by_name() {
        assert_eq!(super::key("training"), super::key("training"));
        assert_ne!(super::key("training"), super::key("experiments"));
    }
}
