//! [`Watermarks`]: each visitor's highest acknowledged log sequence, raised by the activity
//! process before it acknowledges (with the visitor's lists dropped in the same script,
//! [`super::SharedLists::acknowledge`]) and read by an api replica before it answers that visitor,
//! so the replica can wait until its online state holds what the visitor was told is stored
//! (read-your-writes across replicas, ADR 0012). Keys name a hash of the visitor, not the
//! visitor, and expire: past [`WATERMARK_TTL`] every replica has long applied the event.

use std::time::Duration;

use vitrina_core::{ports::StoreResult, UserId};

use super::{visitor, Connection};

/// How long a watermark is kept after its last raise.
pub const WATERMARK_TTL: Duration = Duration::from_secs(3600);

/// Per-visitor watermarks of acknowledged events, in Redis.
#[derive(Clone)]
pub struct Watermarks {
    redis: Connection,
    /// Key prefix: the deployment's log id, so deployments sharing a Redis never mix.
    prefix: String,
}

impl Watermarks {
    /// The watermarks of the deployment whose log is `log`.
    pub fn new(redis: Connection, log: &str) -> Self {
        Self { redis, prefix: format!("vitrina:{log}:wm:") }
    }

    pub(super) fn key(&self, user: &UserId) -> String {
        format!("{}{}", self.prefix, visitor(user))
    }

    /// The visitor's watermark: 0 when none is known.
    pub async fn get(&self, user: &UserId) -> StoreResult<u64> {
        let seq: Option<u64> = self.redis.query(redis::cmd("GET").arg(self.key(user))).await?;
        Ok(seq.unwrap_or(0))
    }

    /// Forgets the visitor's watermark (erasure).
    pub async fn forget(&self, user: &UserId) -> StoreResult<()> {
        let _: i64 = self.redis.query(redis::cmd("DEL").arg(self.key(user))).await?;
        Ok(())
    }
}
