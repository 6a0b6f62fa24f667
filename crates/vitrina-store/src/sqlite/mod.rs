//! The embedded store: one SQLite database in WAL mode.
//!
//! Writes go to the writer thread ([`writer`]); reads use a small pool of read-only
//! connections on the blocking thread pool, so async callers never block.

mod event_ids;
mod impressions;
mod index;
mod read_pool;
mod rows;
mod schema;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    thread::JoinHandle,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use index::LogIndex;

use crate::retention;
use read_pool::ReadPool;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use vitrina_core::{
    keys::ApiKey,
    ports::{
        AppendOutcome, ArtefactStore, AttributedOutcome, CatalogStore, CommitListener, DeletedUser, EventLog,
        ExperimentStore, Exposure, Exposures, Impression, ImpressionStore, KeyStore, LogStats, ModelRecord,
        ModelRegistry, ProductQuery, StoreError, StoreResult, UserStore,
    },
    LogEvent, NewActivity, Product, ProductId, StoredActivity, User, UserId,
};
use writer::{Op, Reply, Writer};

/// Queued writes before callers wait (impressions are dropped instead).
const QUEUE: usize = 16_384;

/// The embedded SQLite store; implements every storage port.
pub struct SqliteStore {
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    index: Arc<RwLock<LogIndex>>,
    /// The follower the writer thread tells of each commit.
    listener: Arc<RwLock<Option<CommitListener>>>,
    impressions: Arc<impressions::ImpressionLog>,
    /// Dropped at close: ends the event retention thread.
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    created: bool,
    /// Model artefacts: files under the data directory.
    artefacts: crate::files::DirArtefacts,
    /// Cluster-wide locks: this process is the only one on the data directory.
    locks: crate::locks::LocalLocks,
    /// Held for the store's lifetime; see [`lock_data_dir`].
    _lock: std::fs::File,
}

/// Error opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot open database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {path} has schema version {found}, newer than this build knows ({known}); upgrade vitrina"
    )]
    TooNew { path: PathBuf, found: u32, known: u32 },
    #[error(
        "data directory {path} is in use by another vitrina process{holder}; stop it first (one process owns a data directory)"
    )]
    Locked { path: PathBuf, holder: String },
}

/// Takes the data directory's lock file: one process per data directory, because the log
/// index lives in the owning process's memory (ADR 0004). Released when the file closes,
/// including when the process dies.
pub(crate) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, OpenError> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("vitrina.lock");
    let dir_err = |source| OpenError::Dir { path: data_dir.to_path_buf(), source };
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(dir_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => String::new(),
                p => format!(" (pid {p})"),
            };
            return Err(OpenError::Locked { path: data_dir.to_path_buf(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(dir_err(e)),
    }
    file.set_len(0).map_err(dir_err)?;
    file.rewind().map_err(dir_err)?;
    write!(file, "{}", std::process::id()).map_err(dir_err)?;
    file.flush().map_err(dir_err)?;
    Ok(file)
}

/// How long what the store keeps beyond the event log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Served lists and attributed outcomes are deleted this long after they were served
    /// (`None`: kept forever).
    pub impression_retention: Option<std::time::Duration>,
    /// Events are deleted from the log this long after they were received (`None`: kept
    /// forever, the default). An `eventId` is recognised as a repeat only while its event is
    /// kept.
    pub event_retention: Option<std::time::Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            impression_retention: Some(std::time::Duration::from_secs(30 * 86_400)),
            event_retention: None,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `vitrina.db` in `data_dir` with the default options.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// Opens (creating if needed) `vitrina.db` in `data_dir` and starts the writer thread.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| OpenError::Dir { path: data_dir.to_path_buf(), source })?;
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join("vitrina.db");
        let sqlite = |source| OpenError::Sqlite { path: path.clone(), source };
        // The writer thread owns this connection: no SQLite mutexes needed.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = OFF; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 16384;
             PRAGMA secure_delete = ON;",
        )
        .map_err(sqlite)?;
        let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
        if found > schema::latest() {
            return Err(OpenError::TooNew { path, found, known: schema::latest() });
        }
        let found = schema::migrate(&mut conn).map_err(sqlite)?;
        let impressions = impressions::ImpressionLog::open(data_dir, options.impression_retention)
            .map_err(|source| OpenError::Sqlite { path: data_dir.join("impressions.db"), source })?;
        let started = std::time::Instant::now();
        let index = LogIndex::rebuild(&conn).map_err(sqlite)?;
        tracing::info!(
            events = index.events(),
            users = index.users(),
            seconds = started.elapsed().as_secs_f64(),
            "event log index built"
        );
        let index = Arc::new(RwLock::new(index));
        let (tx, rx) = mpsc::channel(QUEUE);
        let head = Writer::head(&conn).map_err(sqlite)?;
        let listener = Arc::new(RwLock::new(None));
        let w = Writer { conn, index: index.clone(), listener: listener.clone(), head };
        let writer = std::thread::Builder::new()
            .name("vitrina-store-writer".into())
            .spawn(move || writer::run(w, rx))
            .map_err(|source| OpenError::Dir { path: data_dir.to_path_buf(), source })?;
        let (stop, stopped) = std::sync::mpsc::channel();
        if let Some(retention) = options.event_retention {
            let weak = tx.downgrade();
            std::thread::Builder::new()
                .name("vitrina-event-retention".into())
                .spawn(move || {
                    retention::run(stopped, retention, "events", |cutoff| {
                        retention::ask(&weak, |r| Op::PruneEvents(cutoff, r))
                    })
                })
                .map_err(|source| OpenError::Dir { path: data_dir.to_path_buf(), source })?;
        }
        Ok(Self {
            stop: Mutex::new(Some(stop)),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(ReadPool::new(path)),
            index,
            listener,
            impressions: Arc::new(impressions),
            created: found == 0,
            artefacts: crate::files::DirArtefacts::new(data_dir),
            locks: Default::default(),
            _lock: lock,
        })
    }

    /// Whether this open created the database (an empty data directory).
    pub fn created(&self) -> bool {
        self.created
    }

    fn sender(&self) -> StoreResult<mpsc::Sender<Op>> {
        self.tx.lock().expect("store sender lock").clone().ok_or(StoreError::Closed)
    }

    async fn write<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.sender()?.send(op(reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes the events received before `before` now, in steps of at most
    /// [`writer::PRUNE_EVENTS_CHUNK`] (with the configured event retention, a thread does this
    /// every [`retention::PRUNE_EVERY`]); returns how many.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = before.timestamp_millis();
        crate::retention::until_done(|| self.write(move |r| Op::PruneEvents(cutoff, r))).await
    }

    /// Waits until every write queued so far is committed.
    pub async fn flush(&self) -> StoreResult<()> {
        self.impressions.flush().await;
        self.write(Op::Flush).await
    }

    /// Stops accepting writes, lets the writer commit what is queued, checkpoints the WAL and
    /// joins the writer thread. Blocking; call from a blocking context at shutdown.
    pub fn close(&self) {
        self.stop.lock().expect("retention stop lock").take();
        self.impressions.close();
        self.tx.lock().expect("store sender lock").take();
        if let Some(handle) = self.writer.lock().expect("store writer lock").take() {
            if handle.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }

    /// Reads the impression log on the blocking pool, after committing what is queued: a read
    /// sees every list served before it (the writer gathers lists for a moment per commit).
    async fn read_impressions<T: Send + 'static>(
        &self,
        f: impl FnOnce(&impressions::ImpressionLog) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.impressions.catch_up().await;
        let log = self.impressions.clone();
        tokio::task::spawn_blocking(move || f(&log))
            .await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Checkpoints the WAL into the database and truncates it, retrying while readers hold it
/// (`wal_checkpoint` reports that in its result row, not as an error); `Err` when it could
/// not complete within about a second.
fn truncate_wal(conn: &Connection) -> rusqlite::Result<()> {
    for attempt in 0..20 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10 * (attempt + 1)));
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("the WAL stayed in use by readers".into()),
    ))
}

/// A SQLite error as the ports report it.
fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, map)?;
    rows.collect()
}

/// The events at `seqs`, in that order; seqs deleted meanwhile are skipped.
fn events_by_seq(c: &Connection, seqs: &[u64]) -> rusqlite::Result<Vec<StoredActivity>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {} FROM events WHERE seq = ?1", rows::EVENT_COLUMNS))?;
    let mut out = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        if let Some(event) = stmt.query_row([seq as i64], rows::event).optional()? {
            out.push(event);
        }
    }
    Ok(out)
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<AppendOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|r| Op::Append(batch, r)).await
    }

    async fn recent_for_user(&self, user: &UserId, limit: usize) -> StoreResult<Vec<StoredActivity>> {
        let seqs: Vec<u64> = {
            let index = self.index.read().expect("log index lock");
            index.user_events(user).iter().rev().take(limit).map(|e| e.seq).collect()
        };
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.read(move |c| events_by_seq(c, &seqs)).await
    }

    async fn user_events_since(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<StoredActivity>> {
        let since = since.timestamp_millis();
        let seqs: Vec<u64> = {
            let index = self.index.read().expect("log index lock");
            let events = index.user_events(user);
            let from = events.partition_point(|e| e.ts_ms < since);
            events[from..].iter().map(|e| e.seq).collect()
        };
        self.read(move |c| events_by_seq(c, &seqs)).await
    }

    async fn page(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<StoredActivity>> {
        self.read(move |c| {
            let sql =
                format!("SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", rows::EVENT_COLUMNS);
            collect(c, &sql, params![after_seq as i64, limit as i64], rows::event)
        })
        .await
    }

    async fn scan(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<LogEvent>> {
        self.read(move |c| {
            collect(
                c,
                "SELECT seq, user_id, product_id, activity_type, ts_ms,
                   CASE WHEN activity_type = 'rating' THEN json_extract(metadata, '$.value') END
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after_seq as i64, limit as i64],
                rows::log_event,
            )
        })
        .await
    }

    async fn delete_events(&self, user: &UserId, seqs: &[u64]) -> StoreResult<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let (user, seqs) = (user.clone(), seqs.to_vec());
        self.write(|r| Op::DeleteEvents(user, seqs, r)).await
    }

    fn on_commit(&self, listener: CommitListener) -> bool {
        *self.listener.write().expect("commit listener lock") = Some(listener);
        true
    }

    fn health(&self) -> Result<(), String> {
        match self.writer.lock().expect("store writer lock").as_ref() {
            Some(w) if !w.is_finished() => Ok(()),
            Some(_) => Err("the store's writer thread stopped: no write can be stored".into()),
            None => Err("the store is closed".into()),
        }
    }

    async fn stats(&self) -> StoreResult<LogStats> {
        let events = self.index.read().expect("log index lock").events();
        let max_seq = self
            .read(|c| c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get::<_, i64>(0)))
            .await?;
        Ok(LogStats { events, max_seq: max_seq as u64 })
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn insert_product(&self, product: Product) -> StoreResult<()> {
        self.write(|r| Op::InsertProduct(product, r)).await
    }

    async fn upsert_products(&self, products: Vec<Product>) -> StoreResult<()> {
        self.write(|r| Op::UpsertProducts(products, r)).await
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        let id = id.clone();
        self.read(move |c| {
            let sql = format!("SELECT {} FROM products WHERE id = ?1", rows::PRODUCT_COLUMNS);
            c.prepare_cached(&sql)?.query_row([id.as_str()], rows::product).optional()
        })
        .await
    }

    async fn products(&self, q: ProductQuery) -> StoreResult<(Vec<Product>, u64)> {
        self.read(move |c| {
            let cat = q.category.as_deref();
            let sql = format!(
                "SELECT {} FROM products WHERE (?1 IS NULL OR category = ?1) ORDER BY id LIMIT ?2 OFFSET ?3",
                rows::PRODUCT_COLUMNS
            );
            let items = collect(c, &sql, params![cat, q.limit as i64, q.offset as i64], rows::product)?;
            let total: i64 = c.query_row(
                "SELECT COUNT(*) FROM products WHERE (?1 IS NULL OR category = ?1)",
                [cat],
                |r| r.get(0),
            )?;
            Ok((items, total as u64))
        })
        .await
    }

    async fn delete_product(&self, id: &ProductId) -> StoreResult<bool> {
        let id = id.clone();
        self.write(|r| Op::DeleteProduct(id, r)).await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn upsert_user(&self, user: User) -> StoreResult<()> {
        self.write(|r| Op::UpsertUser(user, r)).await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.read(move |c| {
            let sql = format!("SELECT {} FROM users WHERE id = ?1", rows::USER_COLUMNS);
            c.prepare_cached(&sql)?.query_row([id.as_str()], rows::user).optional()
        })
        .await
    }

    async fn users(&self, offset: usize, limit: usize) -> StoreResult<(Vec<User>, u64)> {
        self.read(move |c| {
            let sql = format!("SELECT {} FROM users ORDER BY id LIMIT ?1 OFFSET ?2", rows::USER_COLUMNS);
            let items = collect(c, &sql, params![limit as i64, offset as i64], rows::user)?;
            let total: i64 = c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
            Ok((items, total as u64))
        })
        .await
    }

    /// Deletes the user's events and record atomically, then their impressions (another
    /// database: a crash between the two leaves impressions of a deleted user, which a
    /// repeated deletion removes). Both databases delete securely (the rows are zeroed) and
    /// checkpoint their WAL before this returns, so the bytes are gone from the files.
    async fn delete_user(&self, id: &UserId) -> StoreResult<Option<DeletedUser>> {
        let user = id.clone();
        let deleted = self.write(|r| Op::DeleteUser(user, r)).await?;
        let impressions = self.impressions.delete_user(id).await?;
        Ok(match deleted {
            Some(d) => Some(DeletedUser { impressions, ..d }),
            None if impressions > 0 => Some(DeletedUser { events: 0, impressions }),
            None => None,
        })
    }
}

#[async_trait]
impl ImpressionStore for SqliteStore {
    fn record_impression(&self, impression: Impression) {
        self.impressions.record(impression);
    }

    async fn impressions_for_user(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<Impression>> {
        let user = user.clone();
        self.read_impressions(move |log| log.for_user(&user, since)).await
    }

    async fn impressions_for_users(
        &self,
        queries: Vec<(UserId, DateTime<Utc>)>,
    ) -> StoreResult<Vec<Vec<Impression>>> {
        self.read_impressions(move |log| {
            queries.iter().map(|(user, since)| log.for_user(user, *since)).collect()
        })
        .await
    }

    async fn impression(&self, user: &UserId, recommendation_id: &str) -> StoreResult<Option<Impression>> {
        let (user, id) = (user.clone(), recommendation_id.to_string());
        self.read_impressions(move |log| log.by_recommendation(&user, &id)).await
    }

    async fn outcomes_for_user(&self, user: &UserId) -> StoreResult<Vec<AttributedOutcome>> {
        let user = user.clone();
        self.read_impressions(move |log| log.outcomes_for_user(&user)).await
    }

    async fn exposure(&self, product: &ProductId, since: DateTime<Utc>) -> StoreResult<Exposure> {
        let product = product.clone();
        self.read_impressions(move |log| log.exposure(&product, since)).await
    }

    async fn exposures(&self, days: (i64, i64)) -> StoreResult<Exposures> {
        self.read_impressions(move |log| log.exposures(days)).await
    }

    fn record_outcome(&self, outcome: AttributedOutcome) {
        self.impressions.record_outcome(outcome);
    }

    fn health(&self) -> Result<(), String> {
        self.impressions.health(std::time::Instant::now())
    }

    async fn flush_impressions(&self) {
        self.impressions.flush().await;
    }

    async fn experiment_log(
        &self,
        variant_prefix: &str,
    ) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)> {
        let prefix = variant_prefix.to_string();
        self.read_impressions(move |log| log.for_variant_prefix(&prefix)).await
    }
}

#[async_trait]
impl ExperimentStore for SqliteStore {
    async fn save_experiment(&self, id: &str, doc: serde_json::Value) -> StoreResult<()> {
        let id = id.to_string();
        self.write(|r| Op::SaveExperiment(id, doc.to_string(), r)).await
    }

    async fn experiments(&self) -> StoreResult<Vec<serde_json::Value>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT doc FROM experiments ORDER BY created_ms, id")?;
            let docs =
                stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(docs)
        })
        .await?
        .into_iter()
        .map(|d| {
            serde_json::from_str(&d).map_err(|e| StoreError::Backend(format!("corrupt experiment: {e}")))
        })
        .collect()
    }
}

#[async_trait]
impl ModelRegistry for SqliteStore {
    async fn save_model(&self, record: ModelRecord) -> StoreResult<()> {
        self.write(|r| Op::SaveModel(record, r)).await
    }

    async fn activate_model(&self, version: &str, at: DateTime<Utc>, rollback: bool) -> StoreResult<()> {
        let version = version.to_string();
        self.write(|r| Op::ActivateModel(version, at, rollback, r)).await
    }

    async fn models(&self) -> StoreResult<Vec<ModelRecord>> {
        self.read(|c| {
            let sql =
                format!("SELECT {} FROM models ORDER BY created_ms DESC, version DESC", rows::MODEL_COLUMNS);
            collect(c, &sql, [], rows::model)
        })
        .await
    }
}

#[async_trait]
impl ArtefactStore for SqliteStore {
    async fn put_artefact(&self, path: &str, bytes: Vec<u8>) -> StoreResult<()> {
        self.artefacts.put_artefact(path, bytes).await
    }

    async fn get_artefact(&self, path: &str) -> StoreResult<Option<Vec<u8>>> {
        self.artefacts.get_artefact(path).await
    }

    async fn delete_artefact(&self, path: &str) -> StoreResult<()> {
        self.artefacts.delete_artefact(path).await
    }
}

#[async_trait]
impl vitrina_core::ports::Locks for SqliteStore {
    async fn try_lock(&self, name: &str) -> StoreResult<Option<vitrina_core::ports::LockGuard>> {
        self.locks.try_lock(name)
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: ApiKey) -> StoreResult<()> {
        self.write(|r| Op::InsertKey(key, r)).await
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.read(|c| {
            let sql = format!("SELECT {} FROM api_keys ORDER BY created_ms, id", rows::KEY_COLUMNS);
            collect(c, &sql, [], rows::key)
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(|r| Op::RevokeKey(id, at, r)).await
    }
}

#[cfg(test)]
mod tests;
