//! [`Watermarks`]: each visitor's highest acknowledged log sequence, written by the activity
//! process before it acknowledges and read by an api replica before it answers that visitor,
//! so the replica can wait until its online state holds what the visitor was told is stored
//! (read-your-writes across replicas, ADR 0012). Keys name a hash of the visitor, not the
//! visitor, and expire: past [`WATERMARK_TTL`] every replica has long applied the event.

use std::time::Duration;

use vitrina_core::{ports::StoreResult, UserId};

use super::{visitor, Connection};

/// How long a watermark is kept after its last raise.
pub const WATERMARK_TTL: Duration = Duration::from_secs(3600);

/// Sets the key to the argument if that is higher, and renews its expiry.
const RAISE: &str = r"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > now then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0";

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

    fn key(&self, user: &UserId) -> String {
        format!("{}{}", self.prefix, visitor(user))
    }

    /// Raises each visitor's watermark to their sequence (never lowers one).
    pub async fn raise(&self, marks: &[(UserId, u64)]) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        for (user, seq) in marks {
            // EVAL, not EVALSHA: a Redis restarted or flushed has no scripts loaded.
            pipe.cmd("EVAL").arg(RAISE).arg(1).arg(self.key(user)).arg(*seq).arg(WATERMARK_TTL.as_secs());
        }
        let pipe = &pipe;
        let _: Vec<i64> =
            self.redis.call(|mut conn| async move { pipe.query_async(&mut conn).await }).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs `VITRINA_TEST_REDIS_URL`; without it there is nothing to test against.
    async fn redis() -> Option<Watermarks> {
        let url = crate::testing::service_url(crate::testing::REDIS_URL)?;
        let redis = super::super::connect(&url)
            .await
            .expect("VITRINA_TEST_REDIS_URL is set but Redis does not answer");
        Some(Watermarks::new(redis, "test"))
    }

    #[tokio::test]
    async fn a_watermark_only_rises_and_is_forgotten_on_erasure() {
        let Some(marks) = redis().await else { return };
        let user = UserId::parse(&format!("wm-{}", uuid::Uuid::new_v4())).unwrap();
        assert_eq!(marks.get(&user).await.unwrap(), 0);
        marks.raise(&[(user.clone(), 7)]).await.unwrap();
        marks.raise(&[(user.clone(), 5)]).await.unwrap();
        assert_eq!(marks.get(&user).await.unwrap(), 7, "a lower sequence does not lower it");
        marks.raise(&[(user.clone(), 9)]).await.unwrap();
        assert_eq!(marks.get(&user).await.unwrap(), 9);
        marks.forget(&user).await.unwrap();
        assert_eq!(marks.get(&user).await.unwrap(), 0);
    }
}
