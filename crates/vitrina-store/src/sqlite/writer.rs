//! The single writer thread and its group commit.
//!
//! Requests queue up as [`Op`]s. The thread takes everything queued (up to
//! [`MAX_GROUP`] operations), applies them all in one transaction and commits once (one
//! fsync for the group), and only then answers every caller, so a caller never sees success
//! for a write that is not durable. If any operation of the group fails, the transaction is
//! rolled back and each operation is retried in a transaction of its own, so a failing
//! request fails alone and the others still succeed. (Savepoints per operation would give
//! the same isolation, but profiling showed them costing more than half of the writer's
//! time; failures are rare, so the optimistic group is faster.)

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Instant,
};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot};
use vitrina_core::{
    keys::ApiKey,
    ports::{
        AppendOutcome, CommitListener, Committed, DeletedUser, ModelRecord, ModelStatus, StoreError,
        StoreResult,
    },
    LogEvent, NewActivity, Product, ProductId, StoredActivity, User, UserId,
};

use super::backend;
use super::index::{event_hash, user_column, Entry, LogIndex};
use crate::identity::{reused, Identity};
use crate::retention::Step;

/// Most operations committed in one transaction.
pub const MAX_GROUP: usize = 512;

pub type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// One queued write.
pub enum Op {
    Append(Vec<NewActivity>, Reply<Vec<AppendOutcome>>),
    InsertProduct(Product, Reply<()>),
    UpsertProducts(Vec<Product>, Reply<()>),
    DeleteProduct(ProductId, Reply<bool>),
    UpsertUser(User, Reply<()>),
    DeleteUser(UserId, Reply<Option<DeletedUser>>),
    /// Deletes those of the sequences that are the user's events; answers how many.
    DeleteEvents(UserId, Vec<u64>, Reply<u64>),
    SaveModel(ModelRecord, Reply<()>),
    /// Experiment id and its JSON document.
    SaveExperiment(String, String, Reply<()>),
    ActivateModel(String, DateTime<Utc>, bool, Reply<()>),
    InsertKey(ApiKey, Reply<()>),
    RevokeKey(String, DateTime<Utc>, Reply<bool>),
    /// Deletes the oldest events received before the time (epoch ms), at most
    /// [`PRUNE_EVENTS_CHUNK`] of them; answers how many and whether more may be left.
    PruneEvents(i64, Reply<Step>),
    /// Answers once everything queued before it is committed.
    Flush(Reply<()>),
}

/// Events one retention step deletes at most, so that writes queued behind it wait briefly.
pub const PRUNE_EVENTS_CHUNK: usize = 10_000;

impl Op {
    /// Whether the operation must be committed in a group of its own.
    fn exclusive(&self) -> bool {
        matches!(self, Op::DeleteUser(..) | Op::PruneEvents(..))
    }
}

/// Index changes of a transaction, applied once it has committed.
#[derive(Default)]
struct Pending {
    events: Vec<(u64, UserId, Entry)>,
    /// `eventId` → `seq` and identity of events written in this transaction.
    ids: HashMap<String, (u64, Identity)>,
    users: HashSet<UserId>,
    removed: Vec<(UserId, Vec<(u64, u64)>)>,
    /// Events deleted past the retention or one by one: user, id hash, seq.
    pruned: Vec<(UserId, u64, u64)>,
}

impl Pending {
    fn apply(self, index: &mut LogIndex) {
        for (hash, user, entry) in self.events {
            index.insert(hash, user, entry);
        }
        for (user, hashes) in self.removed {
            index.remove_user(&user, &hashes);
        }
        if !self.pruned.is_empty() {
            index.remove_events(&self.pruned);
        }
    }
}

/// The writer thread's state: its connection, the log index it maintains, and the log's
/// follower it tells of each commit.
pub struct Writer {
    pub conn: Connection,
    pub index: Arc<RwLock<LogIndex>>,
    pub listener: Arc<RwLock<Option<CommitListener>>>,
    /// The highest `seq` the log has given (`AUTOINCREMENT` never gives one twice).
    pub head: u64,
}

impl Writer {
    /// The log's head as the database holds it.
    pub fn head(conn: &Connection) -> rusqlite::Result<u64> {
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'events'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|s| s as u64)
    }

    /// Tells the follower what a commit added (the writer thread commits in `seq` order).
    fn committed(&mut self, results: &[Done]) {
        let stored = || {
            results
                .iter()
                .filter_map(|d| if let Done::Events(outcomes) = d { Some(outcomes) } else { None })
                .flatten()
                .filter_map(|o| if let AppendOutcome::Stored(s) = o { Some(s) } else { None })
        };
        let Some(last) = stored().map(|s| s.seq).max() else { return };
        let after = std::mem::replace(&mut self.head, last);
        // Events are copied for a listener only (imports and migrations have none).
        if let Some(listener) = self.listener.read().expect("commit listener lock").as_ref() {
            listener(Committed { after, events: stored().map(LogEvent::from).collect() });
        }
    }
}

/// What an applied operation produced, before its caller is answered.
enum Done {
    Events(Vec<AppendOutcome>),
    Unit,
    Flag(bool),
    Deleted(Option<DeletedUser>),
    Pruned(Step),
    Count(u64),
}

/// Runs the writer loop until every sender is dropped, then checkpoints the WAL.
pub fn run(mut w: Writer, mut rx: mpsc::Receiver<Op>) {
    let mut carry: Option<Op> = None;
    loop {
        let first = match carry.take() {
            Some(op) => op,
            None => match rx.blocking_recv() {
                Some(op) => op,
                None => break,
            },
        };
        let mut group = vec![first];
        while !group[0].exclusive() && group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) if op.exclusive() => {
                    carry = Some(op);
                    break;
                }
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        commit_group(&mut w, group);
    }
    if let Err(e) = w.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final wal checkpoint failed");
    }
    tracing::info!("store writer stopped");
}

fn commit_group(w: &mut Writer, group: Vec<Op>) {
    let started = Instant::now();
    let size = group.len();
    match transact(w, &group) {
        Ok(results) => {
            if group.iter().any(|op| matches!(op, Op::DeleteUser(..))) {
                // An erasure is acknowledged only once the erased rows' page images have
                // left the WAL (the database file has them zeroed: secure_delete).
                if let Err(e) = super::truncate_wal(&w.conn) {
                    tracing::warn!(error = %e, "checkpoint after an erasure failed; the next one removes the rows");
                }
            }
            for (op, done) in group.into_iter().zip(results) {
                answer(op, Ok(done));
            }
        }
        Err(e) if size == 1 => {
            if let Some(op) = group.into_iter().next() {
                answer(op, Err(e));
            }
        }
        Err(_) => {
            for op in group {
                let result =
                    transact(w, std::slice::from_ref(&op)).map(|mut d| d.pop().unwrap_or(Done::Unit));
                answer(op, result);
            }
        }
    }
    metrics::histogram!("vitrina_store_commit_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("vitrina_store_commit_ops").record(size as f64);
}

/// Applies `ops` in one transaction, commits it, then updates the index.
fn transact(w: &mut Writer, ops: &[Op]) -> StoreResult<Vec<Done>> {
    let mut pending = Pending::default();
    let tx = w.conn.transaction().map_err(backend)?;
    let results = {
        let index = w.index.read().expect("log index lock");
        ops.iter().map(|op| apply(&tx, op, &index, &mut pending)).collect::<StoreResult<Vec<_>>>()?
    };
    tx.commit().map_err(|e| {
        tracing::error!(error = %e, ops = ops.len(), "store commit failed");
        backend(e)
    })?;
    pending.apply(&mut w.index.write().expect("log index lock"));
    w.committed(&results);
    Ok(results)
}

fn apply(tx: &Transaction, op: &Op, index: &LogIndex, pending: &mut Pending) -> StoreResult<Done> {
    Ok(match op {
        Op::Append(batch, _) => Done::Events(append(tx, batch, index, pending)?),
        Op::InsertProduct(p, _) => insert_product(tx, p).map(|()| Done::Unit)?,
        Op::UpsertProducts(ps, _) => {
            ps.iter().try_for_each(|p| upsert_product(tx, p)).map_err(backend)?;
            Done::Unit
        }
        Op::DeleteProduct(id, _) => {
            Done::Flag(tx.execute("DELETE FROM products WHERE id = ?1", [id.as_str()]).map_err(backend)? > 0)
        }
        Op::UpsertUser(u, _) => upsert_user(tx, u).map(|()| Done::Unit).map_err(backend)?,
        Op::DeleteUser(id, _) => Done::Deleted(delete_user(tx, id, index, pending).map_err(backend)?),
        Op::DeleteEvents(user, seqs, _) => {
            Done::Count(delete_events(tx, user, seqs, index, pending).map_err(backend)?)
        }
        Op::SaveModel(m, _) => save_model(tx, m).map(|()| Done::Unit).map_err(backend)?,
        Op::SaveExperiment(id, doc, _) => {
            let now = Utc::now().timestamp_millis();
            tx.execute(
                "INSERT INTO experiments (id, doc, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
                params![id, doc, now],
            )
            .map_err(backend)?;
            Done::Unit
        }
        Op::ActivateModel(version, at, rollback, _) => {
            activate_model(tx, version, *at, *rollback).map(|()| Done::Unit)?
        }
        Op::InsertKey(k, _) => insert_key(tx, k).map(|()| Done::Unit)?,
        Op::RevokeKey(id, at, _) => Done::Flag(
            tx.execute(
                "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
                params![id, at.timestamp_millis()],
            )
            .map_err(backend)?
                > 0,
        ),
        Op::PruneEvents(cutoff_ms, _) => {
            Done::Pruned(prune_events(tx, *cutoff_ms, index, pending).map_err(backend)?)
        }
        Op::Flush(_) => Done::Unit,
    })
}

/// Deletes the oldest events received before `cutoff_ms`, up to [`PRUNE_EVENTS_CHUNK`]: the
/// prefix of the log (in `seq` order) up to the first event received at or after the cutoff.
/// Times of receipt follow `seq` closely but not exactly; an old event just after a newer one
/// waits for a later step. A visitor of whom the users table holds nothing but the id (as the
/// log registers them on their first event) is forgotten with their last event, so that the
/// table too is bounded by the retention; one with a name or attributes stays.
fn prune_events(
    tx: &Transaction,
    cutoff_ms: i64,
    index: &LogIndex,
    pending: &mut Pending,
) -> rusqlite::Result<Step> {
    let first = pending.pruned.len();
    let mut oldest =
        tx.prepare_cached("SELECT seq, event_id, user_id, received_ms FROM events ORDER BY seq LIMIT ?1")?;
    let mut rows = oldest.query([PRUNE_EVENTS_CHUNK as i64])?;
    let mut last = None;
    while let Some(row) = rows.next()? {
        if row.get::<_, i64>(3)? >= cutoff_ms {
            break;
        }
        let seq = row.get::<_, i64>(0)?;
        let hash = event_hash(row.get_ref(1)?.as_str()?);
        let user = user_column(row.get_ref(2)?.as_str()?)?;
        pending.pruned.push((user, hash, seq as u64));
        last = Some(seq);
    }
    drop(rows);
    let Some(last) = last else { return Ok(Step { deleted: 0, more: false }) };
    let deleted = tx.execute("DELETE FROM events WHERE seq <= ?1", [last])? as u64;
    // The index still holds this step's events (it changes after the commit); a step runs in a
    // transaction of its own, so no event of the same transaction is missing from it.
    let last = last as u64;
    let mut forget =
        tx.prepare_cached("DELETE FROM users WHERE id = ?1 AND name IS NULL AND attributes = '{}'")?;
    let mut seen = HashSet::new();
    for (user, _, _) in &pending.pruned[first..] {
        if seen.insert(user) && index.user_events(user).iter().all(|e| e.seq <= last) {
            forget.execute([user.as_str()])?;
        }
    }
    Ok(Step { deleted, more: deleted >= PRUNE_EVENTS_CHUNK as u64 })
}

/// Sends an operation's outcome to its caller.
fn answer(op: Op, result: StoreResult<Done>) {
    fn send<T>(reply: Reply<T>, result: StoreResult<Done>, pick: impl FnOnce(Done) -> Option<T>) {
        let value = result.and_then(|d| {
            pick(d).ok_or_else(|| StoreError::Backend("writer produced the wrong kind of result".into()))
        });
        let _ = reply.send(value);
    }
    let unit = |d| matches!(d, Done::Unit).then_some(());
    match op {
        Op::Append(_, r) => send(r, result, |d| if let Done::Events(v) = d { Some(v) } else { None }),
        Op::DeleteProduct(_, r) | Op::RevokeKey(_, _, r) => {
            send(r, result, |d| if let Done::Flag(f) = d { Some(f) } else { None })
        }
        Op::DeleteUser(_, r) => send(r, result, |d| if let Done::Deleted(v) = d { Some(v) } else { None }),
        Op::DeleteEvents(_, _, r) => send(r, result, |d| if let Done::Count(n) = d { Some(n) } else { None }),
        Op::PruneEvents(_, r) => send(r, result, |d| if let Done::Pruned(s) = d { Some(s) } else { None }),
        Op::InsertProduct(_, r)
        | Op::UpsertProducts(_, r)
        | Op::UpsertUser(_, r)
        | Op::SaveModel(_, r)
        | Op::SaveExperiment(_, _, r)
        | Op::ActivateModel(_, _, _, r)
        | Op::InsertKey(_, r)
        | Op::Flush(r) => send(r, result, unit),
    }
}

fn insert_key(tx: &Transaction, k: &ApiKey) -> StoreResult<()> {
    let taken: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 OR hash = ?2)",
            params![k.id, k.hash],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if taken {
        return Err(StoreError::Conflict(format!("api key {} exists", k.id)));
    }
    tx.execute(
        "INSERT INTO api_keys (id, name, scope, hash, prefix, created_ms, revoked_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            k.id,
            k.name,
            k.scope.as_str(),
            k.hash,
            k.prefix,
            k.created_at.timestamp_millis(),
            k.revoked_at.map(|t| t.timestamp_millis())
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn append(
    tx: &Transaction,
    batch: &[NewActivity],
    index: &LogIndex,
    pending: &mut Pending,
) -> StoreResult<Vec<AppendOutcome>> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO events (event_id, user_id, activity_type, product_id, metadata, ts_ms, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq",
        )
        .map_err(backend)?;
    let mut stored_at = tx
        .prepare_cached("SELECT event_id, user_id, activity_type, product_id FROM events WHERE seq = ?1")
        .map_err(backend)?;
    let mut user = tx
        .prepare_cached("INSERT INTO users (id, name, attributes, created_ms) VALUES (?1, NULL, '{}', ?2) ON CONFLICT (id) DO NOTHING")
        .map_err(backend)?;
    let mut out = Vec::with_capacity(batch.len());
    for event in batch {
        let id = event.event_id.as_str();
        let identity = Identity::of(event);
        if let Some((seq, earlier)) = pending.ids.get(id) {
            if *earlier != identity {
                return Err(reused(id, *seq));
            }
            out.push(AppendOutcome::Duplicate { seq: *seq });
            continue;
        }
        let hash = event_hash(id);
        let mut earlier = None;
        for seq in index.candidates(hash) {
            let stored: Option<(String, Identity)> = stored_at
                .query_row([seq as i64], |r| {
                    Ok((r.get(0)?, Identity { user: r.get(1)?, kind: r.get(2)?, product: r.get(3)? }))
                })
                .optional()
                .map_err(backend)?;
            if let Some((stored_id, stored_identity)) = stored {
                if stored_id == id {
                    if stored_identity != identity {
                        return Err(reused(id, seq));
                    }
                    earlier = Some(seq);
                    break;
                }
            }
        }
        if let Some(seq) = earlier {
            out.push(AppendOutcome::Duplicate { seq });
            continue;
        }
        let metadata = if event.metadata.is_empty() {
            "{}".to_string()
        } else {
            serde_json::to_string(&event.metadata).unwrap_or_else(|_| "{}".into())
        };
        let ts_ms = event.timestamp.timestamp_millis();
        let seq: i64 = insert
            .query_row(
                params![
                    id,
                    event.user_id.as_str(),
                    event.activity_type.as_str(),
                    event.product_id.as_ref().map(|p| p.as_str()),
                    metadata,
                    ts_ms,
                    now_ms,
                ],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let seq = seq as u64;
        if index.user_events(&event.user_id).is_empty() && pending.users.insert(event.user_id.clone()) {
            user.execute(params![event.user_id.as_str(), now_ms]).map_err(backend)?;
        }
        pending.ids.insert(id.to_string(), (seq, identity));
        pending.events.push((hash, event.user_id.clone(), Entry { ts_ms, seq }));
        out.push(AppendOutcome::Stored(StoredActivity { seq, event: event.clone(), received_at: now }));
    }
    Ok(out)
}

fn insert_product(tx: &Transaction, p: &Product) -> StoreResult<()> {
    let exists: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM products WHERE id = ?1)", [p.id.as_str()], |r| r.get(0))
        .map_err(backend)?;
    if exists {
        return Err(StoreError::Conflict(format!("product {} already exists", p.id)));
    }
    upsert_product(tx, p).map_err(backend)
}

fn upsert_product(tx: &Transaction, p: &Product) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO products (id, name, category, price, attributes, in_stock, hidden, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, category = excluded.category,
           price = excluded.price, attributes = excluded.attributes, in_stock = excluded.in_stock,
           hidden = excluded.hidden, updated_ms = excluded.updated_ms",
    )?
    .execute(params![
        p.id.as_str(),
        p.name,
        p.category,
        p.price.as_str(),
        serde_json::Value::Object(p.attributes.clone()).to_string(),
        p.in_stock,
        p.hidden,
        p.created_at.timestamp_millis(),
        p.updated_at.timestamp_millis(),
    ])?;
    Ok(())
}

fn upsert_user(tx: &Transaction, u: &User) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO users (id, name, attributes, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, attributes = excluded.attributes",
        params![
            u.id.as_str(),
            u.name,
            serde_json::Value::Object(u.attributes.clone()).to_string(),
            u.created_at.timestamp_millis()
        ],
    )?;
    Ok(())
}

fn delete_user(
    tx: &Transaction,
    id: &UserId,
    index: &LogIndex,
    pending: &mut Pending,
) -> rusqlite::Result<Option<DeletedUser>> {
    let known = tx.execute("DELETE FROM users WHERE id = ?1", [id.as_str()])? > 0;
    let hashes = delete_by_seq(tx, index.user_events(id).iter().map(|e| e.seq))?;
    let events = hashes.len() as u64;
    pending.removed.push((id.clone(), hashes));
    Ok((known || events > 0).then_some(DeletedUser { events, impressions: 0 }))
}

/// Deletes those of `seqs` that the index holds as `user`'s events.
fn delete_events(
    tx: &Transaction,
    user: &UserId,
    seqs: &[u64],
    index: &LogIndex,
    pending: &mut Pending,
) -> rusqlite::Result<u64> {
    let theirs: HashSet<u64> = index.user_events(user).iter().map(|e| e.seq).collect();
    let deleted = delete_by_seq(tx, seqs.iter().copied().filter(|s| theirs.contains(s)))?;
    let n = deleted.len() as u64;
    pending.pruned.extend(deleted.into_iter().map(|(hash, seq)| (user.clone(), hash, seq)));
    Ok(n)
}

/// Deletes the events at `seqs` that exist; answers their id hashes with their sequences.
fn delete_by_seq(tx: &Transaction, seqs: impl Iterator<Item = u64>) -> rusqlite::Result<Vec<(u64, u64)>> {
    let mut delete = tx.prepare_cached("DELETE FROM events WHERE seq = ?1 RETURNING event_id")?;
    let mut deleted = Vec::new();
    for seq in seqs {
        let event_id: Option<String> = delete.query_row([seq as i64], |r| r.get(0)).optional()?;
        deleted.extend(event_id.map(|id| (event_hash(&id), seq)));
    }
    Ok(deleted)
}

fn save_model(tx: &Transaction, m: &ModelRecord) -> rusqlite::Result<()> {
    let artefact = m.artefact.as_ref();
    tx.execute(
        "INSERT INTO models (version, algorithm, parameters, metrics, status, status_reason, first_seq, last_seq,
           artefact_path, artefact_checksum, artefact_bytes, created_ms, finished_ms, activated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (version) DO UPDATE SET algorithm = excluded.algorithm, parameters = excluded.parameters,
           metrics = excluded.metrics, status = excluded.status, status_reason = excluded.status_reason,
           first_seq = excluded.first_seq, last_seq = excluded.last_seq, artefact_path = excluded.artefact_path,
           artefact_checksum = excluded.artefact_checksum, artefact_bytes = excluded.artefact_bytes,
           finished_ms = excluded.finished_ms, activated_ms = excluded.activated_ms",
        params![
            m.version,
            m.algorithm,
            m.parameters.to_string(),
            m.metrics.to_string(),
            m.status.as_str(),
            m.status_reason,
            m.data_range.0 as i64,
            m.data_range.1 as i64,
            artefact.map(|a| a.path.as_str()),
            artefact.map(|a| a.checksum.as_str()),
            artefact.map(|a| a.size_bytes as i64),
            m.created_at.timestamp_millis(),
            m.finished_at.map(|t| t.timestamp_millis()),
            m.activated_at.map(|t| t.timestamp_millis()),
        ],
    )?;
    Ok(())
}

fn activate_model(tx: &Transaction, version: &str, at: DateTime<Utc>, rollback: bool) -> StoreResult<()> {
    let known: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM models WHERE version = ?1)", [version], |r| r.get(0))
        .map_err(backend)?;
    if !known {
        return Err(StoreError::Backend(format!("model {version} is not in the registry")));
    }
    if !rollback {
        // The model it replaces; activating the active model again keeps the one it had.
        tx.execute(
            "UPDATE models SET previous_version = COALESCE(
               (SELECT version FROM models WHERE status = ?1 AND version <> ?2 LIMIT 1), previous_version)
             WHERE version = ?2",
            params![ModelStatus::Active.as_str(), version],
        )
        .map_err(backend)?;
    }
    tx.execute(
        "UPDATE models SET status = ?1 WHERE status = ?2 AND version <> ?3",
        params![ModelStatus::Archived.as_str(), ModelStatus::Active.as_str(), version],
    )
    .map_err(backend)?;
    tx.execute(
        "UPDATE models SET status = ?1, activated_ms = ?2 WHERE version = ?3",
        params![ModelStatus::Active.as_str(), at.timestamp_millis(), version],
    )
    .map_err(backend)?;
    Ok(())
}
