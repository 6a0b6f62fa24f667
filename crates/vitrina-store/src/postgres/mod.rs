//! The PostgreSQL store (ADR 0008): the backend for deployments that outgrow one machine.
//!
//! The tables hold what the SQLite store's hold, in the same representation. Appends go
//! through one task per process with group commit ([`append`]); reads use a connection pool.
//! The event log is numbered in commit order, so that followers reading it by sequence
//! never skip an event.

mod append;
mod artefacts;
mod catalog;
mod impressions;
mod known_users;
mod locks;
mod registry;
mod rows;
pub mod schema;

use std::{sync::Mutex, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_postgres::{Config, NoTls};
use vitrina_core::{
    ports::{AppendOutcome, EventLog, LogStats, StoreError, StoreResult},
    LogEvent, NewActivity, StoredActivity, UserId,
};

/// Appends queued before callers wait.
const QUEUE: usize = 16_384;
/// Connections of the writers' pool: the appender, the impression writer, event retention.
const WRITER_CONNECTIONS: usize = 3;

/// Connection settings and retention of the PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections the pool opens at most.
    pub pool_size: usize,
    /// How long opening a connection, or waiting for a free one, may take.
    pub timeout: Duration,
    /// Served lists and attributed outcomes are deleted this long after they were served
    /// (`None`: kept forever).
    pub impression_retention: Option<Duration>,
    /// Events are deleted from the log this long after they were received (`None`: forever).
    pub event_retention: Option<Duration>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(5),
            impression_retention: Some(Duration::from_secs(30 * 86_400)),
            event_retention: None,
        }
    }
}

/// Error connecting to the store.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: tokio_postgres::Error },
    #[error("PostgreSQL at {target}: {source}")]
    Schema { target: String, source: schema::SchemaError },
    #[error("cannot create the connection pool: {0}")]
    Pool(String),
}

/// The PostgreSQL store; implements the storage ports.
pub struct PgStore {
    /// Connections for reads and for writes made by the caller's task.
    pool: Pool,
    /// Connections of the appender, the impression writer and event retention.
    writers: Pool,
    appends: Mutex<Option<mpsc::Sender<append::Append>>>,
    appender: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    impressions: impressions::Impressions,
    /// Dropped at close: each ends a retention thread.
    stop: Mutex<Vec<std::sync::mpsc::Sender<()>>>,
    created: bool,
    /// See [`EventLog::log_id`].
    log_id: String,
}

/// `host:port/database` of a connection config, without user or password.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default database)"))
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    // The error's own text says only "db error" for what the server refused; its reason
    // (message, constraint) is in the database error.
    let text = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {db}"),
        None => format!("PostgreSQL: {e}"),
    };
    if unreachable(&e) {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

/// Whether an error means the database cannot be reached now — a closed connection, an I/O
/// failure, or the server refusing work (SQLSTATE classes 08 connection exception, 53
/// insufficient resources, 57 operator intervention: a shutdown or a terminated backend) —
/// rather than a failure of the statement itself.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    use std::error::Error;
    if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    // 25006: a read-only transaction (connected to a standby after a failover); 55P03: a lock
    // not granted within `lock_timeout` (another process stalled holding it).
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        ["08", "53", "57"].iter().any(|class| code.starts_with(class)) || ["25006", "55P03"].contains(&code)
    })
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        // Failing to open a connection is the database being unreachable, whatever the cause.
        other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
    }
}

/// A READ COMMITTED transaction, whatever the database's default: the log's ordering and
/// deduplication rely on each statement seeing every transaction committed before it.
async fn begin(client: &mut deadpool_postgres::Object) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(backend)
}

/// Deletes events by `sql` (with `params`; a `DELETE … RETURNING user_id`) in `tx`, first
/// taking the head's row lock, which orders the deletion with appends, and takes them off the
/// head's count; answers the users of the deleted events, one per event. (A deletion of
/// `users` rows bumps `log_head.deletions` by trigger, V5; in such a transaction the head is
/// already locked.)
async fn delete_counted(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<Vec<String>> {
    tx.execute("SELECT 1 FROM log_head FOR UPDATE", &[]).await.map_err(backend)?;
    let gone: Vec<String> = tx.query(sql, params).await.map_err(backend)?.iter().map(|r| r.get(0)).collect();
    tx.execute("UPDATE log_head SET events = events - $1", &[&(gone.len() as i64)]).await.map_err(backend)?;
    Ok(gone)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), brings its schema
    /// up to date and starts the appender.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, ConnectError> {
        Self::connect_with(url.parse().map_err(ConnectError::Url)?, options).await
    }

    /// [`PgStore::connect`] with a parsed configuration.
    pub async fn connect_with(mut config: Config, options: PgOptions) -> Result<Self, ConnectError> {
        config.connect_timeout(options.timeout);
        // A process that stalls holding the log head's lock must not stop every writer for
        // long: waits for a lock give up, and so do idle transactions and dead peers.
        config.options("-c lock_timeout=10000 -c idle_in_transaction_session_timeout=60000");
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        #[cfg(target_os = "linux")]
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("vitrina");
        }
        let target = describe(&config);
        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|source| ConnectError::Connect { target: target.clone(), source })?;
        let driver = tokio::spawn(connection);
        let found = schema::migrate(&mut client)
            .await
            .map_err(|source| ConnectError::Schema { target: target.clone(), source })?;
        drop(client);
        let _ = driver.await;
        let build = |size: usize, recycling_method: RecyclingMethod| {
            Pool::builder(Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method }))
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(options.timeout))
                .create_timeout(Some(options.timeout))
                .recycle_timeout(Some(options.timeout))
                .build()
                .map_err(|e| ConnectError::Pool(e.to_string()))
        };
        let pool = build(options.pool_size.max(1), RecyclingMethod::Fast)?;
        // The appender, the impression writer and retention have connections of their own,
        // so that busy reads never hold up a commit.
        // Verified: a connection the server killed is found at checkout (one round trip per
        // commit group), so the write after a lost connection gets a fresh one.
        let writers = build(WRITER_CONNECTIONS, RecyclingMethod::Verified)?;
        let names = impressions::pseudonyms(&pool)
            .await
            .map_err(|e| ConnectError::Pool(format!("reading the pseudonym key: {e}")))?;
        let log_id = names.of(&vitrina_core::UserId::parse("vitrina-log").expect("a valid id"));
        let log_id: String = log_id.chars().filter(char::is_ascii_alphanumeric).collect();
        let impressions = impressions::Impressions::start(writers.clone(), names);
        let (tx, rx) = mpsc::channel(QUEUE);
        let appender = tokio::spawn(append::run(writers.clone(), rx));
        let mut stop = Vec::new();
        if let Some(retention) = options.impression_retention {
            let weak = impressions.sender().map(|s| s.downgrade());
            stop.push(retention_thread("impressions", retention, move |cutoff| {
                crate::retention::ask(weak.as_ref()?, |r| impressions::Op::Prune(cutoff, r))
            }));
        }
        if let Some(retention) = options.event_retention {
            let (pool, runtime) = (writers.clone(), tokio::runtime::Handle::current());
            stop.push(retention_thread("events", retention, move |cutoff| {
                (!pool.is_closed()).then(|| runtime.block_on(append::prune(&pool, cutoff)))
            }));
        }
        tracing::info!(target = %target, schema_found = found, "PostgreSQL store connected");
        Ok(Self {
            pool,
            writers,
            log_id,
            appends: Mutex::new(Some(tx)),
            appender: tokio::sync::Mutex::new(Some(appender)),
            impressions,
            stop: Mutex::new(stop),
            created: found == 0,
        })
    }

    /// Deletes the events received before `before` now, step by step (with the configured
    /// event retention, a thread does this every ten minutes); returns how many.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = before.timestamp_millis();
        crate::retention::until_done(|| append::prune(&self.writers, cutoff)).await
    }

    /// Whether this connect created the schema (an empty database).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Stops taking writes, waits for the queued ones, and closes the pool.
    pub async fn close(&self) {
        self.stop.lock().expect("retention stop lock").clear();
        self.impressions.close().await;
        self.appends.lock().expect("appender lock").take();
        if let Some(task) = self.appender.lock().await.take() {
            let _ = task.await;
        }
        self.pool.close();
        self.writers.close();
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn query<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: impl Fn(&tokio_postgres::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query(&statement, params).await.map_err(backend)?.iter().map(map).collect()
    }
}

/// Runs the shared retention loop on a thread of its own; dropping the returned sender ends it.
fn retention_thread(
    what: &'static str,
    retention: Duration,
    step: impl FnMut(i64) -> Option<StoreResult<crate::retention::Step>> + Send + 'static,
) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("vitrina-pg-retention-{what}"))
        .spawn(move || crate::retention::run(stopped, retention, what, step));
    if let Err(e) = spawned {
        tracing::error!(error = %e, what, "cannot start the retention thread: nothing is deleted past the retention");
    }
    stop
}

#[async_trait]
impl EventLog for PgStore {
    fn log_id(&self) -> Option<String> {
        Some(self.log_id.clone())
    }

    async fn append(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<AppendOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let sender = self.appends.lock().expect("appender lock").clone().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender.send(append::Append { batch, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn recent_for_user(&self, user: &UserId, limit: usize) -> StoreResult<Vec<StoredActivity>> {
        let sql = format!(
            "SELECT {} FROM events WHERE user_id = $1 ORDER BY ts_ms DESC, seq DESC LIMIT $2",
            rows::EVENT_COLUMNS
        );
        self.query(&sql, &[&user.as_str(), &(limit as i64)], rows::event).await
    }

    async fn user_events_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<StoredActivity>> {
        let sql = format!(
            "SELECT {} FROM events WHERE user_id = $1 AND ts_ms >= $2 ORDER BY ts_ms, seq",
            rows::EVENT_COLUMNS
        );
        self.query(&sql, &[&user.as_str(), &since.timestamp_millis()], rows::event).await
    }

    async fn page(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredActivity>> {
        let sql = format!("SELECT {} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", rows::EVENT_COLUMNS);
        self.query(&sql, &[&(after_seq as i64), &(limit as i64)], rows::event).await
    }

    async fn scan(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<LogEvent>> {
        self.query(
            // A rating's value is read from its metadata in Rust: casting the text to jsonb
            // would refuse what JSON allows and jsonb does not (a \u0000 escape).
            "SELECT seq, user_id, product_id, activity_type, ts_ms,
               CASE WHEN activity_type = 'rating' THEN metadata END AS rating_metadata
             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&(after_seq as i64), &(limit as i64)],
            rows::log_event,
        )
        .await
    }

    async fn delete_events(&self, user: &UserId, seqs: &[u64]) -> StoreResult<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = seqs.iter().map(|&s| s as i64).collect();
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let sql = "DELETE FROM events WHERE user_id = $1 AND seq = ANY($2) RETURNING user_id";
        let deleted = delete_counted(&tx, sql, &[&user.as_str(), &seqs]).await?.len() as u64;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn stats(&self) -> StoreResult<LogStats> {
        // `log_head.events` counts what is stored (appends minus deletions), so no scan is
        // needed; the highest sequence present comes from the primary key.
        let stats = self
            .query("SELECT events, (SELECT COALESCE(MAX(seq), 0) FROM events) FROM log_head", &[], |r| {
                Ok(LogStats { events: r.get::<_, i64>(0) as u64, max_seq: r.get::<_, i64>(1) as u64 })
            })
            .await?;
        Ok(stats.first().copied().unwrap_or_default())
    }

    fn health(&self) -> Result<(), String> {
        match self.appender.try_lock() {
            Ok(guard) => match guard.as_ref() {
                Some(task) if !task.is_finished() => Ok(()),
                Some(_) => Err("the event log's appender stopped: no event can be stored".into()),
                None => Err("the store is closed".into()),
            },
            // Held only while closing.
            Err(_) => Err("the store is closing".into()),
        }
    }
}
