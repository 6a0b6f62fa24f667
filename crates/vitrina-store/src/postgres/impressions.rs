//! The impression log on PostgreSQL: served lists and attributed outcomes.
//!
//! As on SQLite, recording never waits: lists and outcomes queue for a task of their own,
//! which writes whatever is queued in one transaction with `synchronous_commit = off` (best
//! effort: a crash of the database server may lose the last commits, never corrupts them);
//! a full queue drops and counts. Visitors are stored as keyed pseudonyms; the key is made
//! once per database and kept in `meta`, so every process names a visitor alike. Erasure
//! goes through the same queue, so lists queued before it are deleted with the rest.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Instant,
};

use deadpool_postgres::Pool;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use vitrina_core::{
    ports::{AttributedOutcome, Exposure, Exposures, Impression, StoreError, StoreResult},
    time::from_millis,
    ActivityType, ProductId, UserId,
};

use super::{backend, pool_error};
use crate::{
    exposure,
    retention::Step,
    served::{self, Progress, Pseudonyms, SEED_KEY},
};

/// Lists and outcomes queued before new ones are dropped.
const QUEUE: usize = 65_536;
/// Operations written in one transaction at most.
const MAX_BATCH: usize = 4096;
/// Rows deleted per statement while pruning.
const PRUNE_CHUNK: i64 = 20_000;

pub enum Op {
    Record(Impression),
    Outcome(AttributedOutcome),
    DeleteUser(UserId, oneshot::Sender<StoreResult<u64>>),
    /// One step of pruning rows created before the cutoff (epoch ms).
    Prune(i64, oneshot::Sender<StoreResult<Step>>),
    Flush(oneshot::Sender<()>),
}

/// The impression log of a PostgreSQL store.
pub struct Impressions {
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    names: Pseudonyms,
    progress: Arc<Progress>,
    started: Instant,
}

/// The database's pseudonym key, made by the first process that needs it.
pub async fn pseudonyms(pool: &Pool) -> StoreResult<Pseudonyms> {
    let client = pool.get().await.map_err(pool_error)?;
    let candidate: u64 = rand::random();
    client
        .execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&SEED_KEY, &candidate.to_string()],
        )
        .await
        .map_err(backend)?;
    let stored: String = client
        .query_one("SELECT value FROM meta WHERE key = $1", &[&SEED_KEY])
        .await
        .map_err(backend)?
        .get(0);
    let seed = stored.parse().map_err(|_| StoreError::Backend(format!("corrupt {SEED_KEY} in meta")))?;
    Ok(Pseudonyms::new(seed))
}

impl Impressions {
    pub fn start(pool: Pool, names: Pseudonyms) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let progress = Arc::new(Progress::default());
        let task = tokio::spawn(run(pool, rx, names, progress.clone()));
        Self {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            names,
            progress,
            started: Instant::now(),
        }
    }

    pub fn names(&self) -> Pseudonyms {
        self.names
    }

    pub fn sender(&self) -> Option<mpsc::Sender<Op>> {
        self.tx.lock().expect("impression sender lock").clone()
    }

    /// Queues a list or an outcome without waiting; a full queue drops it and counts it
    /// under `dropped`.
    pub fn offer(&self, op: Op, dropped: &'static str) {
        let Some(tx) = self.sender() else { return };
        match tx.try_send(op) {
            Ok(()) => self.progress.queued(),
            Err(_) => metrics::counter!(dropped).increment(1),
        }
    }

    /// Sends an operation that waits for its answer.
    pub async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Op) -> StoreResult<T> {
        let tx = self.sender().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        tx.send(op(reply)).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let Some(tx) = self.sender() else { return };
        let (reply, answer) = oneshot::channel();
        if tx.send(Op::Flush(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// `Err` when the writer stopped, or has lists waiting and finished nothing for a while.
    pub fn health(&self) -> Result<(), String> {
        match self.task.lock().expect("impression task lock").as_ref() {
            Some(t) if t.is_finished() => return Err("the impression writer stopped".into()),
            None => return Err("the impression log is closed".into()),
            Some(_) => {}
        }
        self.progress.check(Instant::now(), self.started)
    }

    /// Stops taking lists and waits until the queued ones are written.
    pub async fn close(&self) {
        self.tx.lock().expect("impression sender lock").take();
        let task = self.task.lock().expect("impression task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<Op>, names: Pseudonyms, progress: Arc<Progress>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let recorded = batch.iter().filter(|op| matches!(op, Op::Record(_) | Op::Outcome(_))).count();
        write(&pool, batch, names).await;
        progress.handled(recorded, Instant::now());
    }
}

/// The lists and outcomes of a batch as columns, for one multi-row insert each (borrowed from
/// the batch, which the exposure totals read afterwards).
#[derive(Default)]
struct Columns<'a> {
    rec_id: Vec<&'a str>,
    rec_user: Vec<String>,
    rec_model: Vec<&'a str>,
    rec_variant: Vec<&'a str>,
    rec_created: Vec<i64>,
    rec_items: Vec<String>,
    out_event: Vec<&'a str>,
    out_rec: Vec<&'a str>,
    out_user: Vec<String>,
    out_variant: Vec<&'a str>,
    out_product: Vec<&'a str>,
    out_source: Vec<&'a str>,
    out_position: Vec<i32>,
    out_kind: Vec<&'static str>,
    out_value: Vec<f64>,
    out_created: Vec<i64>,
}

async fn write(pool: &Pool, batch: Vec<Op>, names: Pseudonyms) {
    let mut c = Columns::default();
    let mut lists = Vec::new();
    let mut outcomes = Vec::new();
    let mut erasures = Vec::new();
    let mut prunes = Vec::new();
    let mut flushes = Vec::new();
    for op in batch {
        match op {
            Op::Record(i) => lists.push(i),
            Op::Outcome(o) => outcomes.push(o),
            Op::DeleteUser(user, reply) => erasures.push((names.of(&user), reply)),
            Op::Prune(cutoff, reply) => prunes.push((cutoff, reply)),
            Op::Flush(reply) => flushes.push(reply),
        }
    }
    for i in &lists {
        {
            c.rec_id.push(&i.recommendation_id);
            c.rec_user.push(names.of(&i.user_id));
            c.rec_model.push(&i.model_version);
            c.rec_variant.push(&i.variant);
            c.rec_created.push(i.created_at.timestamp_millis());
            c.rec_items.push(served::items_text(&i.items));
        }
    }
    for o in &outcomes {
        c.out_event.push(&o.event_id);
        c.out_rec.push(&o.recommendation_id);
        c.out_user.push(names.of(&o.user_id));
        c.out_variant.push(&o.variant);
        c.out_product.push(o.product_id.as_str());
        c.out_source.push(&o.source);
        c.out_position.push(o.position as i32);
        c.out_kind.push(o.kind.as_str());
        c.out_value.push(o.value);
        c.out_created.push(o.created_at.timestamp_millis());
    }
    let recorded = c.rec_id.len() + c.out_event.len();
    if recorded > 0 {
        if let Err(e) = insert(pool, &c, &lists, &outcomes).await {
            tracing::warn!(error = %e, lists = c.rec_id.len(), "impressions not recorded");
            metrics::counter!("vitrina_store_impressions_failed_total").increment(1);
        }
    }
    // Erasures and pruning run after the inserts queued before them.
    for (name, reply) in erasures {
        let _ = reply.send(erase(pool, &name).await);
    }
    for (cutoff, reply) in prunes {
        let _ = reply.send(prune(pool, cutoff).await);
    }
    for reply in flushes {
        let _ = reply.send(());
    }
}

/// Inserts the batch's lists and outcomes and adds those that were new (not recorded before)
/// to the per-product daily totals, in one transaction.
async fn insert(
    pool: &Pool,
    c: &Columns<'_>,
    lists: &[Impression],
    outcomes: &[AttributedOutcome],
) -> StoreResult<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SET LOCAL synchronous_commit = off", &[]).await.map_err(backend)?;
    let mut delta = exposure::Delta::default();
    if !c.rec_id.is_empty() {
        let mut stored = stored_keys(
            &tx,
            "INSERT INTO impressions (recommendation_id, user_id, model_version, variant, created_ms, items)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[])
                 ON CONFLICT (recommendation_id) DO NOTHING RETURNING recommendation_id",
            &[&c.rec_id, &c.rec_user, &c.rec_model, &c.rec_variant, &c.rec_created, &c.rec_items],
        )
        .await?;
        // Each stored id once: a list queued twice in one batch is inserted once.
        lists.iter().filter(|l| stored.remove(&l.recommendation_id)).for_each(|l| delta.shown(l));
    }
    if !c.out_event.is_empty() {
        let mut stored = stored_keys(
            &tx,
            "INSERT INTO outcomes (event_id, recommendation_id, user_id, variant, product_id, source, position,
               kind, value, created_ms)
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
               $7::INTEGER[], $8::TEXT[], $9::DOUBLE PRECISION[], $10::BIGINT[])
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            &[
                &c.out_event,
                &c.out_rec,
                &c.out_user,
                &c.out_variant,
                &c.out_product,
                &c.out_source,
                &c.out_position,
                &c.out_kind,
                &c.out_value,
                &c.out_created,
            ],
        )
        .await?;
        outcomes.iter().filter(|o| stored.remove(&o.event_id)).for_each(|o| delta.outcome(o));
    }
    add_exposure(&tx, &delta).await?;
    tx.commit().await.map_err(backend)
}

/// Runs an `INSERT … ON CONFLICT DO NOTHING RETURNING key` and gives the keys it stored.
async fn stored_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<HashSet<String>> {
    Ok(tx.query(sql, params).await.map_err(backend)?.iter().map(|r| r.get(0)).collect())
}

/// Adds a batch's totals to `product_exposure`, rows in key order (so that two processes
/// writing the same rows lock them in one order and never deadlock).
async fn add_exposure(tx: &deadpool_postgres::Transaction<'_>, delta: &exposure::Delta) -> StoreResult<()> {
    if delta.is_empty() {
        return Ok(());
    }
    let (mut keys, mut products, mut days) = (Vec::new(), Vec::new(), Vec::new());
    let (mut shown, mut clicks, mut carts, mut purchases, mut revenue) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, product, day, e) in delta.rows() {
        keys.push(key);
        products.push(product);
        days.push(day);
        shown.push(e.impressions as i64);
        clicks.push(e.clicks as i64);
        carts.push(e.add_to_carts as i64);
        purchases.push(e.purchases as i64);
        revenue.push(e.revenue);
    }
    tx.execute(
        "INSERT INTO product_exposure (key, product_id, day, impressions, clicks, add_to_carts, purchases, revenue)
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[],
           $7::BIGINT[], $8::DOUBLE PRECISION[]) ORDER BY 1
         ON CONFLICT (key) DO UPDATE SET impressions = product_exposure.impressions + EXCLUDED.impressions,
           clicks = product_exposure.clicks + EXCLUDED.clicks,
           add_to_carts = product_exposure.add_to_carts + EXCLUDED.add_to_carts,
           purchases = product_exposure.purchases + EXCLUDED.purchases,
           revenue = product_exposure.revenue + EXCLUDED.revenue",
        &[&keys, &products, &days, &shown, &clicks, &carts, &purchases, &revenue],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Deletes a pseudonym's lists and outcomes; returns how many lists.
async fn erase(pool: &Pool, name: &str) -> StoreResult<u64> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(backend)?;
    let lists = tx.execute("DELETE FROM impressions WHERE user_id = $1", &[&name]).await.map_err(backend)?;
    tx.execute("DELETE FROM outcomes WHERE user_id = $1", &[&name]).await.map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(lists)
}

/// Deletes up to [`PRUNE_CHUNK`] lists and as many outcomes created before `cutoff_ms`.
async fn prune(pool: &Pool, cutoff_ms: i64) -> StoreResult<Step> {
    let client = pool.get().await.map_err(pool_error)?;
    let lists = client
        .execute(
            "DELETE FROM impressions WHERE id IN
               (SELECT id FROM impressions WHERE created_ms < $1 ORDER BY created_ms LIMIT $2)",
            &[&cutoff_ms, &PRUNE_CHUNK],
        )
        .await
        .map_err(backend)?;
    let outcomes = client
        .execute(
            "DELETE FROM outcomes WHERE event_id IN
               (SELECT event_id FROM outcomes WHERE created_ms < $1 ORDER BY created_ms LIMIT $2)",
            &[&cutoff_ms, &PRUNE_CHUNK],
        )
        .await
        .map_err(backend)?;
    // A day's totals go once the whole day is older than the cutoff.
    let days = client
        .execute(
            "DELETE FROM product_exposure WHERE key IN
               (SELECT key FROM product_exposure WHERE day < $1 ORDER BY key LIMIT $2)",
            &[&exposure::day_of(cutoff_ms), &PRUNE_CHUNK],
        )
        .await
        .map_err(backend)?;
    let more = [lists, outcomes, days].iter().any(|n| *n as i64 == PRUNE_CHUNK);
    Ok(Step { deleted: lists, more })
}

pub const IMPRESSION_COLUMNS: &str = "recommendation_id, user_id, model_version, variant, created_ms, items";
pub const OUTCOME_COLUMNS: &str =
    "event_id, recommendation_id, user_id, variant, product_id, source, position, kind, value, created_ms";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt impression log row: {what}"))
}

/// The visitor of a row: `user` when the caller asked for that visitor, else the pseudonym
/// the row holds (lists read by variant carry it; ADR 0007).
fn visitor(row: &tokio_postgres::Row, user: Option<&UserId>) -> StoreResult<UserId> {
    match user {
        Some(u) => Ok(u.clone()),
        None => UserId::parse(row.get::<_, &str>("user_id")).map_err(corrupt),
    }
}

/// A stored list (columns [`IMPRESSION_COLUMNS`]).
pub fn impression(row: &tokio_postgres::Row, user: Option<&UserId>) -> StoreResult<Impression> {
    Ok(Impression {
        recommendation_id: row.get("recommendation_id"),
        user_id: visitor(row, user)?,
        model_version: row.get("model_version"),
        variant: row.get("variant"),
        created_at: from_millis(row.get("created_ms")),
        items: served::items_from_text(row.get("items")).map_err(corrupt)?,
    })
}

/// A stored outcome (columns [`OUTCOME_COLUMNS`]).
pub fn outcome(row: &tokio_postgres::Row, user: Option<&UserId>) -> StoreResult<AttributedOutcome> {
    Ok(AttributedOutcome {
        event_id: row.get("event_id"),
        recommendation_id: row.get("recommendation_id"),
        user_id: visitor(row, user)?,
        variant: row.get("variant"),
        product_id: ProductId::parse(row.get("product_id")).map_err(corrupt)?,
        source: row.get("source"),
        position: row.get::<_, i32>("position") as u32,
        kind: row.get::<_, &str>("kind").parse::<ActivityType>().map_err(corrupt)?,
        value: row.get("value"),
        created_at: from_millis(row.get("created_ms")),
    })
}

impl super::PgStore {
    /// `user`'s lists since `since` as stored (without waiting for queued ones).
    async fn lists_since(
        &self,
        user: &UserId,
        since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Impression>> {
        let sql = format!(
            "SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE user_id = $1 AND created_ms >= $2 ORDER BY created_ms, id"
        );
        let name = self.impressions.names().of(user);
        self.query(&sql, &[&name, &since.timestamp_millis()], |r| impression(r, Some(user))).await
    }
}

#[async_trait::async_trait]
impl vitrina_core::ports::ImpressionStore for super::PgStore {
    fn record_impression(&self, impression: Impression) {
        self.impressions.offer(Op::Record(impression), "vitrina_store_impressions_dropped_total");
    }

    async fn impressions_for_user(
        &self,
        user: &UserId,
        since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Impression>> {
        self.impressions.flush().await;
        self.lists_since(user, since).await
    }

    async fn impressions_for_users(
        &self,
        queries: Vec<(UserId, chrono::DateTime<chrono::Utc>)>,
    ) -> StoreResult<Vec<Vec<Impression>>> {
        self.impressions.flush().await;
        let mut out = Vec::with_capacity(queries.len());
        for (user, since) in &queries {
            out.push(self.lists_since(user, *since).await?);
        }
        Ok(out)
    }

    async fn impression(&self, user: &UserId, recommendation_id: &str) -> StoreResult<Option<Impression>> {
        self.impressions.flush().await;
        let sql = format!(
            "SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE recommendation_id = $1 AND user_id = $2"
        );
        let name = self.impressions.names().of(user);
        Ok(self.query(&sql, &[&recommendation_id, &name], |r| impression(r, Some(user))).await?.pop())
    }

    async fn exposure(
        &self,
        product: &ProductId,
        since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Exposure> {
        self.impressions.flush().await;
        let (from, to) = exposure::range(product.as_str(), since);
        let sql = "SELECT COALESCE(SUM(impressions), 0)::BIGINT, COALESCE(SUM(clicks), 0)::BIGINT,
                COALESCE(SUM(add_to_carts), 0)::BIGINT, COALESCE(SUM(purchases), 0)::BIGINT,
                COALESCE(SUM(revenue), 0)::DOUBLE PRECISION
              FROM product_exposure WHERE key >= $1 AND key < $2";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&from, &to];
        let totals = self.query(sql, &params, |row| {
            Ok(Exposure {
                impressions: row.get::<_, i64>(0) as u64,
                clicks: row.get::<_, i64>(1) as u64,
                add_to_carts: row.get::<_, i64>(2) as u64,
                purchases: row.get::<_, i64>(3) as u64,
                revenue: row.get(4),
            })
        });
        Ok(totals.await?.pop().unwrap_or_default())
    }

    async fn exposures(&self, days: (i64, i64)) -> StoreResult<Exposures> {
        self.impressions.flush().await;
        let count = "SELECT COUNT(DISTINCT day) FROM product_exposure WHERE day >= $1 AND day < $2";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&days.0, &days.1];
        let covered = self.query(count, &params, |row| Ok(row.get::<_, i64>(0))).await?.pop().unwrap_or(0);
        let sql =
            "SELECT product_id, SUM(impressions)::BIGINT, SUM(clicks)::BIGINT, SUM(add_to_carts)::BIGINT,
                SUM(purchases)::BIGINT, SUM(revenue)::DOUBLE PRECISION
              FROM product_exposure WHERE day >= $1 AND day < $2 GROUP BY product_id ORDER BY product_id";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&days.0, &days.1];
        let rows = self.query(sql, &params, |row| {
            let totals = Exposure {
                impressions: row.get::<_, i64>(1) as u64,
                clicks: row.get::<_, i64>(2) as u64,
                add_to_carts: row.get::<_, i64>(3) as u64,
                purchases: row.get::<_, i64>(4) as u64,
                revenue: row.get(5),
            };
            Ok((row.get::<_, String>(0), totals))
        });
        let products =
            rows.await?.into_iter().filter_map(|(id, t)| Some((ProductId::parse(&id).ok()?, t))).collect();
        Ok(Exposures { days: covered as u32, products })
    }

    async fn outcomes_for_user(&self, user: &UserId) -> StoreResult<Vec<AttributedOutcome>> {
        self.impressions.flush().await;
        let sql = format!(
            "SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE user_id = $1 ORDER BY created_ms, event_id"
        );
        let name = self.impressions.names().of(user);
        self.query(&sql, &[&name], |r| outcome(r, Some(user))).await
    }

    fn record_outcome(&self, outcome: AttributedOutcome) {
        self.impressions.offer(Op::Outcome(outcome), "vitrina_store_outcomes_dropped_total");
    }

    async fn experiment_log(
        &self,
        variant_prefix: &str,
    ) -> StoreResult<(Vec<Impression>, Vec<AttributedOutcome>)> {
        self.impressions.flush().await;
        // A byte-wise range (the columns are COLLATE "C"): a range scan of the index.
        let end = format!("{variant_prefix}\u{10FFFF}");
        let lists = format!(
            "SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE variant >= $1 AND variant < $2 ORDER BY id"
        );
        let outcomes = format!(
            "SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE variant >= $1 AND variant < $2 ORDER BY created_ms, event_id"
        );
        let lists = self.query(&lists, &[&variant_prefix, &end], |r| impression(r, None)).await?;
        let outcomes = self.query(&outcomes, &[&variant_prefix, &end], |r| outcome(r, None)).await?;
        Ok((lists, outcomes))
    }

    fn health(&self) -> Result<(), String> {
        self.impressions.health()
    }

    async fn flush_impressions(&self) {
        self.impressions.flush().await;
    }
}
