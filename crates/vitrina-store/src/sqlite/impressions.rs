//! The impression log: every served list, in its own database (`impressions.db`) with its
//! own writer thread, so the request path never waits for it and it never competes with
//! the event log's durable commits.
//!
//! Impressions are best effort by design: recording is a non-blocking `try_send` (a full
//! queue drops the impression and counts it), commits are batched (up to
//! [`MAX_BATCH`] impressions per transaction) and use `synchronous = NORMAL` — in WAL mode a
//! crash loses at most the last commits, never corrupts. Like the event log, the table has
//! no secondary index on the user; a per-user index lives in memory and is rebuilt at open.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    thread::JoinHandle,
};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use vitrina_core::{
    ports::{AttributedOutcome, Impression, StoreError, StoreResult},
    UserId,
};

use super::rows;

/// Impressions committed in one transaction at most.
pub const MAX_BATCH: usize = 4096;
/// Impressions queued before new ones are dropped.
const QUEUE: usize = 65_536;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS impressions (
    id                INTEGER PRIMARY KEY,
    recommendation_id TEXT NOT NULL UNIQUE,
    user_id           TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    variant           TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    items             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_variant ON impressions (variant);
CREATE TABLE IF NOT EXISTS outcomes (
    event_id          TEXT PRIMARY KEY,
    recommendation_id TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    variant           TEXT NOT NULL,
    product_id        TEXT NOT NULL,
    source            TEXT NOT NULL,
    position          INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    value             REAL NOT NULL,
    created_ms        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_variant ON outcomes (variant);
"#;

enum Op {
    Record(Impression),
    Outcome(AttributedOutcome),
    DeleteUser(UserId, oneshot::Sender<StoreResult<u64>>),
    Flush(oneshot::Sender<()>),
}

/// Per user, `(created ms, row id)` of their impressions, oldest first.
type UserIndex = HashMap<UserId, Vec<(i64, i64)>>;

/// The impression log of a data directory.
pub struct ImpressionLog {
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    index: Arc<RwLock<UserIndex>>,
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl ImpressionLog {
    /// Opens (creating if needed) `impressions.db` in `data_dir` and starts its writer.
    pub fn open(data_dir: &Path) -> rusqlite::Result<Self> {
        let path = data_dir.join("impressions.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -16384;",
        )?;
        conn.execute_batch(SCHEMA)?;
        let mut index = UserIndex::new();
        {
            let mut stmt = conn.prepare("SELECT id, user_id, created_ms FROM impressions ORDER BY id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let Ok(user) = UserId::parse(row.get_ref(1)?.as_str()?) else { continue };
                index.entry(user).or_default().push((row.get(2)?, row.get(0)?));
            }
        }
        for list in index.values_mut() {
            list.sort_unstable();
        }
        let index = Arc::new(RwLock::new(index));
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer_index = index.clone();
        let writer = std::thread::Builder::new()
            .name("vitrina-impressions".into())
            .spawn(move || run(conn, rx, writer_index))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            index,
            path,
            readers: Mutex::new(Vec::new()),
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<Op>> {
        self.tx.lock().expect("impression sender lock").clone()
    }

    /// Queues an impression; never waits. A full queue drops it (counted in metrics).
    pub fn record(&self, impression: Impression) {
        let Some(tx) = self.sender() else { return };
        if tx.try_send(Op::Record(impression)).is_err() {
            metrics::counter!("vitrina_store_impressions_dropped_total").increment(1);
        }
    }

    /// Queues an attributed outcome; never waits. An event id already recorded is ignored.
    pub fn record_outcome(&self, outcome: AttributedOutcome) {
        let Some(tx) = self.sender() else { return };
        if tx.try_send(Op::Outcome(outcome)).is_err() {
            metrics::counter!("vitrina_store_outcomes_dropped_total").increment(1);
        }
    }

    /// Impressions and outcomes of the variants starting with `prefix`. Blocking.
    pub fn for_variant_prefix(&self, prefix: &str) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)> {
        // `variant >= prefix AND variant < prefix + U+10FFFF` is a range scan of the index.
        let end = format!("{prefix}\u{10FFFF}");
        self.with_reader(|c| {
            let impressions = c
                .prepare_cached(&format!(
                    "SELECT {} FROM impressions WHERE variant >= ?1 AND variant < ?2 ORDER BY id",
                    rows::IMPRESSION_COLUMNS
                ))?
                .query_map([prefix, end.as_str()], rows::impression)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let outcomes = c
                .prepare_cached(&format!(
                    "SELECT {} FROM outcomes WHERE variant >= ?1 AND variant < ?2 ORDER BY created_ms",
                    rows::OUTCOME_COLUMNS
                ))?
                .query_map([prefix, end.as_str()], rows::outcome)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((impressions, outcomes))
        })
    }

    /// Deletes a user's impressions; returns how many.
    pub async fn delete_user(&self, user: &UserId) -> StoreResult<u64> {
        let (reply, answer) = oneshot::channel();
        let tx = self.sender().ok_or(StoreError::Closed)?;
        tx.send(Op::DeleteUser(user.clone(), reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until every impression queued so far is committed.
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        if let Some(tx) = self.sender() {
            if tx.send(Op::Flush(reply)).await.is_ok() {
                let _ = answer.await;
            }
        }
    }

    /// Stops the writer after it committed what is queued. Blocking.
    pub fn close(&self) {
        self.tx.lock().expect("impression sender lock").take();
        if let Some(handle) = self.writer.lock().expect("impression writer lock").take() {
            if handle.join().is_err() {
                tracing::error!("impression writer thread panicked");
            }
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let conn = self.readers.lock().expect("impression readers lock").pop();
        let conn = match conn {
            Some(c) => c,
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(backend)?,
        };
        let result = f(&conn).map_err(backend);
        self.readers.lock().expect("impression readers lock").push(conn);
        result
    }

    /// The user's impressions served at or after `since`, oldest first. Blocking.
    pub fn for_user(&self, user: &UserId, since: DateTime<Utc>) -> StoreResult<Vec<Impression>> {
        let since = since.timestamp_millis();
        let ids: Vec<i64> = {
            let index = self.index.read().expect("impression index lock");
            let list = index.get(user).map_or(&[][..], Vec::as_slice);
            let from = list.partition_point(|e| e.0 < since);
            list[from..].iter().map(|e| e.1).collect()
        };
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM impressions WHERE id = ?1",
                rows::IMPRESSION_COLUMNS
            ))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(imp) = stmt.query_row([id], rows::impression).optional()? {
                    out.push(imp);
                }
            }
            Ok(out)
        })
    }

    /// The impression with this recommendation id, if recorded. Blocking.
    pub fn by_recommendation(&self, recommendation_id: &str) -> StoreResult<Option<Impression>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM impressions WHERE recommendation_id = ?1",
                rows::IMPRESSION_COLUMNS
            ))?
            .query_row([recommendation_id], rows::impression)
            .optional()
        })
    }
}

impl Drop for ImpressionLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Op>, index: Arc<RwLock<UserIndex>>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = commit(&mut conn, batch, &index) {
            tracing::warn!(error = %e, "impressions not recorded");
            metrics::counter!("vitrina_store_impressions_failed_total").increment(1);
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final impression checkpoint failed");
    }
}

fn commit(conn: &mut Connection, batch: Vec<Op>, index: &RwLock<UserIndex>) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut added: Vec<(UserId, i64, i64)> = Vec::new();
    let mut deleted: Vec<(UserId, u64, oneshot::Sender<StoreResult<u64>>)> = Vec::new();
    let mut flushes = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO impressions (recommendation_id, user_id, model_version, variant, created_ms, items)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for op in batch {
            match op {
                Op::Record(imp) => {
                    let created = imp.created_at.timestamp_millis();
                    let n = insert.execute(params![
                        imp.recommendation_id,
                        imp.user_id.as_str(),
                        imp.model_version,
                        imp.variant,
                        created,
                        rows::impression_items_text(&imp.items),
                    ])?;
                    if n > 0 {
                        added.push((imp.user_id, created, tx.last_insert_rowid()));
                    }
                }
                Op::Outcome(o) => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO outcomes (event_id, recommendation_id, user_id, variant, product_id,
                           source, position, kind, value, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        o.event_id,
                        o.recommendation_id,
                        o.user_id.as_str(),
                        o.variant,
                        o.product_id.as_str(),
                        o.source,
                        o.position,
                        o.kind.as_str(),
                        o.value,
                        o.created_at.timestamp_millis(),
                    ])?;
                }
                Op::DeleteUser(user, reply) => {
                    let mut ids: Vec<i64> = index
                        .read()
                        .expect("impression index lock")
                        .get(&user)
                        .map(|l| l.iter().map(|e| e.1).collect())
                        .unwrap_or_default();
                    ids.extend(added.iter().filter(|a| a.0 == user).map(|a| a.2));
                    added.retain(|a| a.0 != user);
                    let mut n = 0u64;
                    for id in ids {
                        n += tx.execute("DELETE FROM impressions WHERE id = ?1", [id])? as u64;
                    }
                    tx.execute("DELETE FROM outcomes WHERE user_id = ?1", [user.as_str()])?;
                    deleted.push((user, n, reply));
                }
                Op::Flush(reply) => flushes.push(reply),
            }
        }
    }
    tx.commit()?;
    {
        let mut index = index.write().expect("impression index lock");
        for (user, created, id) in added {
            let list = index.entry(user).or_default();
            match list.last() {
                Some(&last) if last > (created, id) => {
                    let at = list.partition_point(|e| *e < (created, id));
                    list.insert(at, (created, id));
                }
                _ => list.push((created, id)),
            }
        }
        for (user, _, _) in &deleted {
            index.remove(user);
        }
    }
    for (_, n, reply) in deleted {
        let _ = reply.send(Ok(n));
    }
    for reply in flushes {
        let _ = reply.send(());
    }
    Ok(())
}
