//! The impression log: every served list, in its own database (`impressions.db`) with its
//! own writer thread, so the request path never waits for it and it never competes with
//! the event log's durable commits.
//!
//! Impressions are best effort by design: recording is a non-blocking `try_send` (a full
//! queue drops the impression and counts it), commits are batched (up to
//! [`MAX_BATCH`] impressions per transaction) and use `synchronous = NORMAL` — in WAL mode a
//! crash loses at most the last commits, never corrupts.
//!
//! Visitors are stored pseudonymously: the `user_id` columns hold `p:` and a keyed 64-bit
//! hash of the id (the key is random per data directory, in the `meta` table), never the id
//! itself, so a list served after a visitor's erasure does not write their id back to disk.
//! A visitor's rows are found through an index on that column; nothing per visitor is held
//! in memory. Rows older than the retention are deleted every [`retention::PRUNE_EVERY`]; SQLite reuses
//! their pages, so the file stays at about one retention window of lists.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use vitrina_core::{
    ports::{AttributedOutcome, Exposure, Exposures, Impression, StoreError, StoreResult},
    ProductId, UserId,
};

use super::{read_pool::ReadPool, rows};
use crate::exposure;
use crate::retention::{self, Step};
use crate::served::{self, Progress, Pseudonyms, SEED_KEY};

/// Impressions committed in one transaction at most.
pub const MAX_BATCH: usize = 32_768;
/// Impressions queued before new ones are dropped.
const QUEUE: usize = 65_536;
/// Rows deleted per statement while pruning (keeps each transaction short).
pub(super) const PRUNE_CHUNK: i64 = 20_000;
/// The schema version this build writes (`PRAGMA user_version`): 2 = pseudonymous visitors.
const VERSION: u32 = 2;

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
CREATE TABLE IF NOT EXISTS product_exposure (
    key          TEXT PRIMARY KEY,
    product_id   TEXT NOT NULL,
    day          INTEGER NOT NULL,
    impressions  INTEGER NOT NULL,
    clicks       INTEGER NOT NULL,
    add_to_carts INTEGER NOT NULL,
    purchases    INTEGER NOT NULL,
    revenue      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS product_exposure_day ON product_exposure (day);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#;

/// The data directory's pseudonym key: made at first open, kept in `meta`.
fn load_pseudonyms(conn: &Connection) -> rusqlite::Result<Pseudonyms> {
    let stored: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [SEED_KEY], |r| r.get(0)).optional()?;
    let seed = match stored.and_then(|s| s.parse().ok()) {
        Some(seed) => seed,
        None => {
            let seed: u64 = rand::random();
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![SEED_KEY, seed.to_string()],
            )?;
            seed
        }
    };
    Ok(Pseudonyms::new(seed))
}

/// Brings an older `impressions.db` to [`VERSION`]: raw visitor ids become pseudonyms
/// (version 1 had raw ids and an in-memory per-visitor index).
fn migrate(conn: &mut Connection, names: Pseudonyms) -> rusqlite::Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found >= VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (table, key) in [("impressions", "id"), ("outcomes", "event_id")] {
        let rows: Vec<(rusqlite::types::Value, String)> = tx
            .prepare(&format!("SELECT {key}, user_id FROM {table}"))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut update = tx.prepare(&format!("UPDATE {table} SET user_id = ?2 WHERE {key} = ?1"))?;
        for (k, user) in rows {
            let name = UserId::parse(&user).map(|u| names.of(&u)).unwrap_or_else(|_| "p:invalid".into());
            update.execute(params![k, name])?;
        }
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS impressions_user ON impressions (user_id, created_ms);
         CREATE INDEX IF NOT EXISTS outcomes_user ON outcomes (user_id);",
    )?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    // The raw ids were in pages now rewritten: drop them from the WAL too.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

enum Op {
    Record(Impression),
    Outcome(AttributedOutcome),
    DeleteUser(UserId, oneshot::Sender<StoreResult<u64>>),
    /// Deletes rows older than the cutoff (ms) now; answers how many impressions went.
    /// One step of pruning: answers what it deleted and whether more is left.
    Prune(i64, oneshot::Sender<StoreResult<Step>>),
    Flush(oneshot::Sender<()>),
}

/// The impression log of a data directory.
pub struct ImpressionLog {
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Dropped at close: ends the retention thread.
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    pub(super) progress: Arc<Progress>,
    started: Instant,
    names: Pseudonyms,
    readers: ReadPool,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl ImpressionLog {
    /// Opens (creating if needed) `impressions.db` in `data_dir` and starts its writer, which
    /// keeps lists and outcomes for `retention` (`None`: forever).
    pub fn open(data_dir: &Path, retention: Option<Duration>) -> rusqlite::Result<Self> {
        let path = data_dir.join("impressions.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -65536; PRAGMA secure_delete = ON;",
        )?;
        conn.execute_batch(SCHEMA)?;
        let names = load_pseudonyms(&conn)?;
        migrate(&mut conn, names)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let spawn_error = |e| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
        let progress = Arc::new(Progress::default());
        let writer_progress = progress.clone();
        let writer = std::thread::Builder::new()
            .name("vitrina-impressions".into())
            .spawn(move || run(conn, rx, names, writer_progress))
            .map_err(spawn_error)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        if let Some(retention) = retention {
            let weak = tx.downgrade();
            std::thread::Builder::new()
                .name("vitrina-impressions-retention".into())
                .spawn(move || {
                    retention::run(stopped, retention, "impressions", |cutoff| {
                        retention::ask(&weak, |r| Op::Prune(cutoff, r))
                    })
                })
                .map_err(spawn_error)?;
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            stop: Mutex::new(Some(stop)),
            progress,
            started: Instant::now(),
            names,
            readers: ReadPool::new(path),
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<Op>> {
        self.tx.lock().expect("impression sender lock").clone()
    }

    /// Queues an impression; never waits. A full queue drops it (counted in metrics).
    pub fn record(&self, impression: Impression) {
        let Some(tx) = self.sender() else { return };
        match tx.try_send(Op::Record(impression)) {
            Ok(()) => self.progress.queued(),
            Err(_) => metrics::counter!("vitrina_store_impressions_dropped_total").increment(1),
        }
    }

    /// Queues an attributed outcome; never waits. An event id already recorded is ignored.
    pub fn record_outcome(&self, outcome: AttributedOutcome) {
        let Some(tx) = self.sender() else { return };
        match tx.try_send(Op::Outcome(outcome)) {
            Ok(()) => self.progress.queued(),
            Err(_) => metrics::counter!("vitrina_store_outcomes_dropped_total").increment(1),
        }
    }

    /// Impressions and outcomes of the variants starting with `prefix`. Blocking.
    pub fn for_variant_prefix(&self, prefix: &str) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)> {
        // `variant >= prefix AND variant < prefix + U+10FFFF` is a range scan of the index.
        let end = format!("{prefix}\u{10FFFF}");
        self.readers.with(|c| {
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

    /// `Err` when the writer stopped, or has lists waiting and finished nothing for
    /// [`STUCK_AFTER`] before `now`.
    pub fn health(&self, now: Instant) -> Result<(), String> {
        match self.writer.lock().expect("impression writer lock").as_ref() {
            Some(w) if w.is_finished() => return Err("the impression writer stopped".into()),
            None => return Err("the impression log is closed".into()),
            Some(_) => {}
        }
        self.progress.check(now, self.started)
    }

    /// Deletes a user's impressions and outcomes (and checkpoints, so the bytes leave the
    /// WAL too); returns how many impressions.
    pub async fn delete_user(&self, user: &UserId) -> StoreResult<u64> {
        let (reply, answer) = oneshot::channel();
        let tx = self.sender().ok_or(StoreError::Closed)?;
        tx.send(Op::DeleteUser(user.clone(), reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes impressions and outcomes older than `before` now, step by step (the retention
    /// thread does this every [`retention::PRUNE_EVERY`]); returns how many impressions.
    #[cfg(test)]
    pub async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = before.timestamp_millis();
        retention::until_done(|| async move {
            let (reply, answer) = oneshot::channel();
            let tx = self.sender().ok_or(StoreError::Closed)?;
            tx.send(Op::Prune(cutoff, reply)).await.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
        .await
    }

    /// Reads see every list queued before them: lists wait up to [`GATHER`] before their
    /// commit, and a click sent right after its list is attributed to it. Commits now when
    /// anything waits.
    pub async fn catch_up(&self) {
        if self.progress.waiting() {
            self.flush().await;
        }
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
        self.stop.lock().expect("impression stop lock").take();
        self.tx.lock().expect("impression sender lock").take();
        if let Some(handle) = self.writer.lock().expect("impression writer lock").take() {
            if handle.join().is_err() {
                tracing::error!("impression writer thread panicked");
            }
        }
    }

    /// The user's impressions served at or after `since`, oldest first. Blocking.
    pub fn for_user(&self, user: &UserId, since: DateTime<Utc>) -> StoreResult<Vec<Impression>> {
        let name = self.names.of(user);
        let mut found = self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM impressions WHERE user_id = ?1 AND created_ms >= ?2 ORDER BY created_ms, id",
                rows::IMPRESSION_COLUMNS
            ))?
            .query_map(params![name, since.timestamp_millis()], rows::impression)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        found.iter_mut().for_each(|i| i.user_id = user.clone());
        Ok(found)
    }

    /// `product`'s totals from the day of `since` on. Blocking.
    pub fn exposure(&self, product: &ProductId, since: DateTime<Utc>) -> StoreResult<Exposure> {
        let (from, to) = exposure::range(product.as_str(), since);
        self.readers.with(|c| {
            c.prepare_cached(
                "SELECT COALESCE(SUM(impressions), 0), COALESCE(SUM(clicks), 0), COALESCE(SUM(add_to_carts), 0),
                   COALESCE(SUM(purchases), 0), COALESCE(SUM(revenue), 0.0)
                 FROM product_exposure WHERE key >= ?1 AND key < ?2",
            )?
            .query_row([from, to], |r| {
                Ok(Exposure {
                    impressions: r.get::<_, i64>(0)? as u64,
                    clicks: r.get::<_, i64>(1)? as u64,
                    add_to_carts: r.get::<_, i64>(2)? as u64,
                    purchases: r.get::<_, i64>(3)? as u64,
                    revenue: r.get(4)?,
                })
            })
        })
    }

    /// Every product's totals over the UTC days `days.0..days.1`. Blocking.
    pub fn exposures(&self, days: (i64, i64)) -> StoreResult<Exposures> {
        self.readers.with(|c| {
            let covered: i64 = c
                .prepare_cached("SELECT COUNT(DISTINCT day) FROM product_exposure WHERE day >= ?1 AND day < ?2")?
                .query_row([days.0, days.1], |r| r.get(0))?;
            let products = c
                .prepare_cached(
                "SELECT product_id, SUM(impressions), SUM(clicks), SUM(add_to_carts), SUM(purchases), SUM(revenue)
                 FROM product_exposure WHERE day >= ?1 AND day < ?2 GROUP BY product_id ORDER BY product_id",
            )?
            .query_map([days.0, days.1], |r| {
                let id: String = r.get(0)?;
                let totals = Exposure {
                    impressions: r.get::<_, i64>(1)? as u64,
                    clicks: r.get::<_, i64>(2)? as u64,
                    add_to_carts: r.get::<_, i64>(3)? as u64,
                    purchases: r.get::<_, i64>(4)? as u64,
                    revenue: r.get(5)?,
                };
                Ok((id, totals))
            })?
            .filter_map(|row| match row {
                Ok((id, totals)) => ProductId::parse(&id).ok().map(|id| Ok((id, totals))),
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<_>>()?;
            Ok(Exposures { days: covered as u32, products })
        })
    }

    /// The outcomes attributed to the user's events, oldest first. Blocking.
    pub fn outcomes_for_user(&self, user: &UserId) -> StoreResult<Vec<AttributedOutcome>> {
        let name = self.names.of(user);
        let mut found = self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM outcomes WHERE user_id = ?1 ORDER BY created_ms",
                rows::OUTCOME_COLUMNS
            ))?
            .query_map([name], rows::outcome)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        found.iter_mut().for_each(|o| o.user_id = user.clone());
        Ok(found)
    }

    /// The impression with this recommendation id, if it was served to `user`. Blocking.
    pub fn by_recommendation(
        &self,
        user: &UserId,
        recommendation_id: &str,
    ) -> StoreResult<Option<Impression>> {
        let name = self.names.of(user);
        let found = self.readers.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM impressions WHERE recommendation_id = ?1 AND user_id = ?2",
                rows::IMPRESSION_COLUMNS
            ))?
            .query_row([recommendation_id, name.as_str()], rows::impression)
            .optional()
        })?;
        Ok(found.map(|i| Impression { user_id: user.clone(), ..i }))
    }
}

impl Drop for ImpressionLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Commits start at most this often while nobody waits for one: each commit rewrites every
/// page it touched into the WAL, and the visitor index puts each list on a page of its own,
/// so a commit of a few lists cost a page write per list (and SQLite scans its page cache at
/// every commit). Gathering lists for a moment makes one page write serve many of them.
const GATHER: Duration = Duration::from_millis(100);

impl Op {
    /// Someone waits for this to be done: commit without gathering more.
    fn awaited(&self) -> bool {
        matches!(self, Op::DeleteUser(..) | Op::Prune(..) | Op::Flush(_))
    }
}

/// The next batch: what is queued, and while nobody waits and the last commit started less
/// than [`GATHER`] ago, what arrives until then (up to [`MAX_BATCH`]). `None` once the queue
/// is closed and empty.
fn gather(rx: &mut mpsc::Receiver<Op>, last_commit: Instant) -> Option<Vec<Op>> {
    let mut batch = vec![rx.blocking_recv()?];
    loop {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Some(batch),
            }
        }
        let waited = last_commit.elapsed();
        if complete(&batch, waited) {
            return Some(batch);
        }
        std::thread::sleep((GATHER - waited).min(Duration::from_millis(10)));
    }
}

/// Whether `batch` is committed now, `since_commit` after the last commit started.
fn complete(batch: &[Op], since_commit: Duration) -> bool {
    batch.len() >= MAX_BATCH || since_commit >= GATHER || batch.iter().any(Op::awaited)
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Op>, names: Pseudonyms, progress: Arc<Progress>) {
    let mut last_commit = Instant::now();
    while let Some(batch) = gather(&mut rx, last_commit) {
        last_commit = Instant::now();
        let recorded = batch.iter().filter(|op| matches!(op, Op::Record(_) | Op::Outcome(_))).count();
        if let Err(e) = commit(&mut conn, batch, names) {
            tracing::warn!(error = %e, "impressions not recorded");
            metrics::counter!("vitrina_store_impressions_failed_total").increment(1);
        }
        progress.handled(recorded, Instant::now());
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final impression checkpoint failed");
    }
}

/// Deletes up to [`PRUNE_CHUNK`] impressions and as many outcomes created before
/// `cutoff_ms`. Impressions are written in time order, so the old ones are a prefix of the row
/// ids: found by binary search and deleted by id range.
fn prune(conn: &mut Connection, cutoff_ms: i64) -> rusqlite::Result<Step> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(id), MAX(id) FROM impressions", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut step = Step { deleted: 0, more: false };
    if let (Some(lo), Some(hi)) = (lo, hi) {
        // First id whose list is at or after the cutoff (hi + 1 when none is).
        let mut at = conn.prepare("SELECT created_ms FROM impressions WHERE id >= ?1 ORDER BY id LIMIT 1")?;
        let (mut a, mut b) = (lo, hi + 1);
        while a < b {
            let mid = a + (b - a) / 2;
            let created: Option<i64> = at.query_row([mid], |r| r.get(0)).optional()?;
            if created.is_none_or(|c| c >= cutoff_ms) {
                b = mid;
            } else {
                a = mid + 1;
            }
        }
        let end = a;
        drop(at);
        if lo < end {
            let upto = (lo + PRUNE_CHUNK).min(end);
            step.deleted =
                conn.execute("DELETE FROM impressions WHERE id >= ?1 AND id < ?2", params![lo, upto])? as u64;
            step.more = upto < end;
        }
    }
    let outcomes = conn.execute(
        "DELETE FROM outcomes WHERE rowid IN (SELECT rowid FROM outcomes WHERE created_ms < ?1 LIMIT ?2)",
        params![cutoff_ms, PRUNE_CHUNK],
    )?;
    step.more |= outcomes as i64 == PRUNE_CHUNK;
    // A day's totals go once the whole day is older than the cutoff.
    let days = conn.execute(
        "DELETE FROM product_exposure WHERE rowid IN (SELECT rowid FROM product_exposure WHERE day < ?1 LIMIT ?2)",
        params![exposure::day_of(cutoff_ms), PRUNE_CHUNK],
    )?;
    step.more |= days as i64 == PRUNE_CHUNK;
    Ok(step)
}

fn commit(conn: &mut Connection, batch: Vec<Op>, names: Pseudonyms) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut deleted: Vec<(u64, oneshot::Sender<StoreResult<u64>>)> = Vec::new();
    let mut pruned = Vec::new();
    let mut flushes = Vec::new();
    let mut exposure = exposure::Delta::default();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO impressions (recommendation_id, user_id, model_version, variant, created_ms, items)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for op in batch {
            match op {
                Op::Record(imp) => {
                    let stored = insert.execute(params![
                        imp.recommendation_id,
                        names.of(&imp.user_id),
                        imp.model_version,
                        imp.variant,
                        imp.created_at.timestamp_millis(),
                        served::items_text(&imp.items),
                    ])?;
                    if stored == 1 {
                        exposure.shown(&imp);
                    }
                }
                Op::Outcome(o) => {
                    let stored = tx
                        .prepare_cached(
                        "INSERT OR IGNORE INTO outcomes (event_id, recommendation_id, user_id, variant, product_id,
                           source, position, kind, value, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        o.event_id,
                        o.recommendation_id,
                        names.of(&o.user_id),
                        o.variant,
                        o.product_id.as_str(),
                        o.source,
                        o.position,
                        o.kind.as_str(),
                        o.value,
                        o.created_at.timestamp_millis(),
                    ])?;
                    if stored == 1 {
                        exposure.outcome(&o);
                    }
                }
                Op::DeleteUser(user, reply) => {
                    let name = names.of(&user);
                    let n = tx.execute("DELETE FROM impressions WHERE user_id = ?1", [&name])? as u64;
                    tx.execute("DELETE FROM outcomes WHERE user_id = ?1", [&name])?;
                    deleted.push((n, reply));
                }
                Op::Prune(cutoff, reply) => pruned.push((cutoff, reply)),
                Op::Flush(reply) => flushes.push(reply),
            }
        }
        let mut add = tx.prepare_cached(
            "INSERT INTO product_exposure (key, product_id, day, impressions, clicks, add_to_carts, purchases, revenue)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (key) DO UPDATE SET impressions = impressions + excluded.impressions,
               clicks = clicks + excluded.clicks, add_to_carts = add_to_carts + excluded.add_to_carts,
               purchases = purchases + excluded.purchases, revenue = revenue + excluded.revenue",
        )?;
        for (key, product, day, e) in exposure.rows() {
            add.execute(params![
                key,
                product,
                day,
                e.impressions as i64,
                e.clicks as i64,
                e.add_to_carts as i64,
                e.purchases as i64,
                e.revenue
            ])?;
        }
    }
    tx.commit()?;
    if !deleted.is_empty() {
        // Erased rows are zeroed in the database (secure_delete); their old page images must
        // leave the WAL too before the deletion is acknowledged.
        if let Err(e) = super::truncate_wal(conn) {
            tracing::warn!(error = %e, "checkpoint after an erasure failed; the next one removes the rows");
        }
    }
    for (n, reply) in deleted {
        let _ = reply.send(Ok(n));
    }
    for (cutoff, reply) in pruned {
        let _ = reply.send(prune(conn, cutoff).map_err(backend));
    }
    for reply in flushes {
        let _ = reply.send(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush_op() -> (Op, oneshot::Receiver<()>) {
        let (reply, answer) = oneshot::channel();
        (Op::Flush(reply), answer)
    }

    fn list() -> Op {
        Op::Record(Impression {
            recommendation_id: "r1".into(),
            user_id: UserId::parse("u1").unwrap(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: Utc::now(),
            items: Vec::new(),
        })
    }

    #[test]
    fn lists_wait_for_more_until_the_gathering_ends_or_someone_waits() {
        let soon = GATHER / 2;
        assert!(!complete(&[list(), list()], soon), "lists alone gather");
        assert!(complete(&[list()], GATHER), "until the gathering time has passed");
        assert!(complete(&[list(), flush_op().0], soon), "a flush is answered at once");
        assert!(complete(&[Op::Prune(0, oneshot::channel().0)], Duration::ZERO));
        let full: Vec<Op> = (0..MAX_BATCH).map(|_| list()).collect();
        assert!(complete(&full, Duration::ZERO), "a full batch goes");
    }

    #[test]
    fn a_batch_takes_everything_queued_and_ends_with_the_queue() {
        let (tx, mut rx) = mpsc::channel(16);
        let long_ago = Instant::now() - GATHER * 2;
        for op in [list(), list(), flush_op().0] {
            tx.try_send(op).unwrap();
        }
        assert_eq!(gather(&mut rx, long_ago).map(|b| b.len()), Some(3));
        // Lists queued right after a commit, then the queue closes: they go, the writer ends.
        tx.try_send(list()).unwrap();
        drop(tx);
        assert_eq!(gather(&mut rx, Instant::now()).map(|b| b.len()), Some(1));
        assert!(gather(&mut rx, long_ago).is_none());
    }
}
