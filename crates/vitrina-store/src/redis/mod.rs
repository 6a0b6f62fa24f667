//! Redis, shared by the processes of a deployment: visitors' [`Watermarks`] for
//! read-your-writes across replicas, and the [`SharedLists`] cache.
//!
//! Redis holds nothing that is not elsewhere: when it is lost or flushed, replicas answer
//! from what they applied (only a visitor's event of the last moment may be missing) and
//! compute the lists they would have found there.

mod lists;
mod watermarks;

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{aio::ConnectionManager, RedisResult};
use vitrina_core::{
    ports::{StoreError, StoreResult},
    UserId,
};

pub use lists::{Fetched, Resolve, SharedLists};
pub use watermarks::{Watermarks, WATERMARK_TTL};

/// A call to Redis that takes longer fails (the caller goes on without it).
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long Redis is not asked after it did not answer: callers go on without it at once
/// rather than each waiting [`TIMEOUT`] on a Redis that is away.
const PAUSE: Duration = Duration::from_secs(1);

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

/// A visitor as Redis keys name them: a hash, so the visitor's id is never in Redis.
fn visitor(user: &UserId) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(user.as_str().as_bytes()))
}

/// A connection to Redis, shared by everything of one process that uses it. It reconnects
/// by itself.
#[derive(Clone)]
pub struct Connection {
    pub(crate) manager: ConnectionManager,
    paused_until: Arc<Mutex<Option<Instant>>>,
}

/// Connects to `url` (`redis://host:6379`).
pub async fn connect(url: &str) -> StoreResult<Connection> {
    let client = redis::Client::open(url).map_err(backend)?;
    // Few, short reconnection attempts: a caller waits for them, and one lost with Redis
    // should learn it in well under a second (each call is bounded by TIMEOUT anyway).
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(400));
    let manager =
        tokio::time::timeout(Duration::from_secs(6), client.get_connection_manager_with_config(config))
            .await
            .map_err(|_| backend(format!("no answer from {url}")))?
            .map_err(backend)?;
    Ok(Connection { manager, paused_until: Arc::default() })
}

impl Connection {
    /// Sends `cmd` through [`Self::call`].
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        self.call(|mut conn| async move { cmd.query_async(&mut conn).await }).await
    }

    /// Makes a call to Redis, within [`TIMEOUT`]. A call that failed because the connection
    /// broke is made once more: the first command on a connection Redis dropped (restarted,
    /// or a network cut) fails, and the connection manager reconnects for the next. After
    /// Redis did not answer, calls fail at once for [`PAUSE`].
    async fn call<T, F, Fut>(&self, mut f: F) -> StoreResult<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.paused_until.lock().expect("pause lock").is_some_and(|until| Instant::now() < until) {
            return Err(backend("not asked: Redis did not answer a moment ago"));
        }
        let attempts = async {
            match f(self.manager.clone()).await {
                Err(e) if e.is_io_error() || e.is_connection_dropped() => f(self.manager.clone()).await,
                done => done,
            }
        };
        // Only a Redis that is away pauses the calls; one that answered with an error (out
        // of memory, a script error) is asked again next time.
        let away = |e: &redis::RedisError| {
            e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
        };
        let (done, pause) = match tokio::time::timeout(TIMEOUT, attempts).await {
            Ok(Ok(v)) => (Ok(v), false),
            Ok(Err(e)) => (Err(backend(&e)), away(&e)),
            Err(_) => (Err(backend("no answer in time")), true),
        };
        if pause {
            *self.paused_until.lock().expect("pause lock") = Some(Instant::now() + PAUSE);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    /// Needs `VITRINA_TEST_REDIS_URL`; without it there is nothing to test against.
    async fn connection() -> Option<Connection> {
        let url = crate::testing::service_url(crate::testing::REDIS_URL)?;
        Some(connect(&url).await.expect("VITRINA_TEST_REDIS_URL is set but Redis does not answer"))
    }

    /// How many times `call` tries a call that always fails with `error`, and its answer.
    async fn attempts(redis: &Connection, error: fn() -> redis::RedisError) -> (usize, StoreResult<()>) {
        let tried = AtomicUsize::new(0);
        let done = redis
            .call(|_| {
                tried.fetch_add(1, SeqCst);
                let e = error();
                async move { Err::<(), _>(e) }
            })
            .await;
        (tried.load(SeqCst), done)
    }

    #[tokio::test]
    async fn a_broken_connection_is_tried_once_more_then_redis_is_left_alone_a_moment() {
        let Some(redis) = connection().await else { return };
        let broken = || redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let (tried, done) = attempts(&redis, broken).await;
        assert_eq!(tried, 2, "{done:?}");
        let (tried, done) = attempts(&redis, broken).await;
        assert_eq!(tried, 0, "paused after Redis did not answer");
        assert!(done.unwrap_err().to_string().contains("not asked"));
    }

    #[tokio::test]
    async fn a_call_without_an_answer_ends_at_the_bound_and_pauses() {
        let Some(redis) = connection().await else { return };
        let silent = redis.call(|_| std::future::pending::<RedisResult<()>>()).await;
        assert!(silent.unwrap_err().to_string().contains("no answer in time"));
        let next: StoreResult<String> = redis.query(&redis::cmd("PING")).await;
        assert!(next.unwrap_err().to_string().contains("not asked"));
    }

    #[tokio::test]
    async fn an_error_reply_is_made_once_and_does_not_pause() {
        let Some(redis) = connection().await else { return };
        let refused = attempts(&redis, || (redis::ErrorKind::Client, "refused").into()).await;
        assert_eq!(refused.0, 1);
        assert!(redis.query::<()>(&redis::cmd("NO-SUCH-COMMAND")).await.is_err());
        let pong: String = redis.query(&redis::cmd("PING")).await.expect("Redis is asked again");
        assert_eq!(pong, "PONG");
    }
}
