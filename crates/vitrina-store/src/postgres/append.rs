//! Appends to the event log with group commit and commit-ordered sequence numbers.
//!
//! One task per process takes every queued batch and writes them in one transaction. The
//! transaction first takes the row lock of `log_head` and numbers its new events from the
//! head on; the lock is held until the commit, and PostgreSQL makes a commit visible before
//! it releases its locks. So the next writer — in this process or another — numbers its
//! events only after the previous ones are visible: sequence numbers become visible in
//! order, and a follower reading "everything after N" never skips an event (ADR 0008).
//!
//! Each batch is all-or-nothing: a batch that reuses an `eventId` for a different event is
//! refused alone (nothing of it is written) and the rest of the group is committed; a
//! database failure fails the whole group and nothing of it is written. Callers are answered
//! only after the commit.

use std::{collections::HashMap, time::Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{
    binary_copy::BinaryCopyInWriter,
    error::SqlState,
    types::{ToSql, Type},
};
use vitrina_core::{
    ports::{AppendOutcome, StoreError, StoreResult},
    NewActivity, StoredActivity,
};

use super::{
    backend, begin, delete_counted,
    known_users::{Generation, KnownUsers},
    pool_error,
};
use crate::{
    identity::{reused, Identity},
    retention::Step,
};

/// Events written in one transaction at most (a larger batch is written alone).
const MAX_GROUP_EVENTS: usize = 20_000;

/// One queued append.
pub struct Append {
    pub batch: Vec<NewActivity>,
    pub reply: oneshot::Sender<StoreResult<Vec<AppendOutcome>>>,
}

/// Runs until every sender is dropped.
pub async fn run(pool: Pool, mut rx: mpsc::Receiver<Append>) {
    let mut known_users = KnownUsers::default();
    while let Some(first) = rx.recv().await {
        let mut events = first.batch.len();
        let mut group = vec![first];
        while events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(next) => {
                    events += next.batch.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let batches: Vec<&[NewActivity]> = group.iter().map(|a| a.batch.as_slice()).collect();
        let written = write(&pool, &batches, &mut known_users).await;
        metrics::histogram!("vitrina_store_commit_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("vitrina_store_commit_ops").record(group.len() as f64);
        match written {
            Ok(results) => {
                for (append, result) in group.into_iter().zip(results) {
                    let _ = append.reply.send(result);
                }
            }
            Err(e) => {
                known_users.forget();
                tracing::warn!(error = %e, batches = group.len(), "event log commit failed");
                for append in group {
                    let _ = append.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The new events of a group as columns, for one multi-row insert.
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    event_id: Vec<String>,
    user_id: Vec<String>,
    activity_type: Vec<&'static str>,
    product_id: Vec<Option<String>>,
    metadata: Vec<String>,
    ts_ms: Vec<i64>,
}

/// Per batch of a group: its outcomes, or why it alone was refused.
type Written = Vec<StoreResult<Vec<AppendOutcome>>>;

/// Writes the batches in one transaction; per batch, its outcomes or why it was refused.
///
/// Most groups repeat no stored `eventId`, so the first attempt does not look them up: it
/// writes the events, and the unique index finds any repeat. Only when one is found is that
/// attempt rolled back and the group planned against the stored events.
async fn write(
    pool: &Pool,
    batches: &[&[NewActivity]],
    known_users: &mut KnownUsers,
) -> StoreResult<Written> {
    let mut client = pool.get().await.map_err(pool_error)?;
    if let Some(written) = attempt(&mut client, batches, Repeats::Unchecked, known_users).await? {
        return Ok(written);
    }
    attempt(&mut client, batches, Repeats::LookedUp, known_users)
        .await?
        .ok_or_else(|| StoreError::Backend("an eventId appeared while the event log was locked".into()))
}

/// Whether an attempt first looks up which of the group's `eventId`s are stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeats {
    Unchecked,
    LookedUp,
}

/// One transaction writing the group; `None` when an attempt met a stored `eventId` (and
/// rolled back). The statements that do not depend on each other's results are pipelined.
async fn attempt(
    client: &mut deadpool_postgres::Object,
    batches: &[&[NewActivity]],
    repeats: Repeats,
    known_users: &mut KnownUsers,
) -> StoreResult<Option<Written>> {
    let tx = begin(client).await?;
    let ids: Vec<&str> = batches.iter().flat_map(|b| b.iter().map(|e| e.event_id.as_str())).collect();
    // Acknowledged means durable, whatever the server's or role's default; and the head's
    // row lock, under which no other writer can add an event.
    let locked = tx.simple_query(
        "SET LOCAL synchronous_commit = on;
             SELECT seq, deletions, pg_postmaster_start_time() FROM log_head FOR UPDATE",
    );
    let mut known: HashMap<String, (u64, Identity)> = HashMap::new();
    let head = if repeats == Repeats::LookedUp {
        let lookup = tx.prepare_cached(
            "SELECT seq, event_id, user_id, activity_type, product_id FROM events WHERE event_id = ANY($1)",
        );
        let lookup = lookup.await.map_err(backend)?;
        let params: [&(dyn ToSql + Sync); 1] = [&ids];
        let (head, rows) = tokio::try_join!(locked, tx.query(&lookup, &params)).map_err(backend)?;
        for row in rows {
            let identity = Identity { user: row.get(2), kind: row.get(3), product: row.get(4) };
            known.insert(row.get(1), (row.get::<_, i64>(0) as u64, identity));
        }
        head
    } else {
        locked.await.map_err(backend)?
    };
    let (head, generation) = head_of(&head)?;
    let now = Utc::now();
    let mut next = head;
    let mut columns = Columns::default();
    let results: Vec<_> =
        batches.iter().map(|batch| plan(batch, &mut known, &mut next, &mut columns, now)).collect();
    let added = columns.seq.len() as u64;
    if added == 0 {
        tx.rollback().await.map_err(backend)?;
        return Ok(Some(results));
    }
    let received_ms = now.timestamp_millis();
    let mut users: Vec<&str> = columns.user_id.iter().map(String::as_str).collect();
    users.sort_unstable();
    users.dedup();
    let new_users = known_users.unknown(&generation, &users);
    let (register, advance) = tokio::try_join!(
        tx.prepare_cached(
            "INSERT INTO users (id, name, attributes, created_ms) SELECT u, NULL, '{}', $2 FROM UNNEST($1::TEXT[]) AS t(u)
             ON CONFLICT (id) DO NOTHING",
        ),
        tx.prepare_cached("UPDATE log_head SET seq = $1, events = events + $2"),
    )
    .map_err(backend)?;
    let (next, added_rows) = (next as i64, added as i64);
    let user_params: [&(dyn ToSql + Sync); 2] = [&new_users, &received_ms];
    // Visitors whose row this process saw committed (and no deletion since) are not registered
    // again (known_users.rs).
    let register_new = || async {
        match new_users.is_empty() {
            true => Ok(0),
            false => tx.execute(&register, &user_params).await,
        }
    };
    let head_params: [&(dyn ToSql + Sync); 2] = [&next, &added_rows];
    let all_new = if columns.seq.len() < COPY_FROM_EVENTS {
        // One pipelined round trip for the three statements.
        let insert = tx.prepare_cached(INSERT_EVENTS).await.map_err(backend)?;
        let event_params: [&(dyn ToSql + Sync); 8] = [
            &columns.seq,
            &columns.event_id,
            &columns.user_id,
            &columns.activity_type,
            &columns.product_id,
            &columns.metadata,
            &columns.ts_ms,
            &received_ms,
        ];
        let (inserted, _, _) = tokio::try_join!(
            tx.execute(&insert, &event_params),
            register_new(),
            tx.execute(&advance, &head_params),
        )
        .map_err(backend)?;
        inserted == added
    } else {
        match copy(&tx, &columns, received_ms).await {
            Ok(_) => {
                tokio::try_join!(register_new(), tx.execute(&advance, &head_params)).map_err(backend)?;
                true
            }
            // A stored `eventId` (every repeat within the group was planned away above); any
            // other violation (of `seq`, say) is an error that names its constraint.
            Err(e) if stored_event_id(&e) => false,
            Err(e) => return Err(backend(e)),
        }
    };
    if !all_new {
        tx.rollback().await.map_err(backend)?;
        return Ok(None);
    }
    tx.commit().await.map_err(backend)?;
    known_users.learn(&generation, &new_users);
    Ok(Some(results))
}

/// Groups of at least this many new events are written by binary `COPY` ([`copy`]), smaller
/// ones by one multi-row insert pipelined with the group's other statements: a copy costs
/// round trips of its own, which a few rows do not repay (single-event tracking at 4 in flight
/// lost a fifth of its requests per second when every group was copied), while batch ingest
/// gained 11–16 % (docs/BENCHMARKS.md, "Binary `COPY` for large groups").
const COPY_FROM_EVENTS: usize = 100;

/// The small groups' insert; its `ON CONFLICT DO NOTHING` skips a stored `eventId`, which
/// the caller finds by the count of rows inserted.
const INSERT_EVENTS: &str = "INSERT INTO events (seq, event_id, user_id, activity_type, product_id, metadata, ts_ms, received_ms)
     SELECT s, e, u, a, p, m, t, $8 FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[])
       AS c(s, e, u, a, p, m, t)
     ON CONFLICT (event_id) DO NOTHING";

/// Whether a failed copy met an `eventId` the log holds: a unique violation of the index
/// on `event_id` (named by PostgreSQL after the table and column, V1__schema.sql).
fn stored_event_id(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("events_event_id_key")
    })
}

/// The types of the columns [`copy`] writes, in its order.
const COPIED: [Type; 8] =
    [Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8];

/// Writes the group's new events by binary `COPY`: PostgreSQL fills heap pages many rows at a
/// time and checks `eventId` uniqueness as it adds each index entry, where `INSERT … ON
/// CONFLICT` first probes the index and writes a second WAL record per row. A stored
/// `eventId` fails the whole copy with a unique violation (the caller rolls back and plans
/// again).
async fn copy(
    tx: &deadpool_postgres::Transaction<'_>,
    columns: &Columns,
    received_ms: i64,
) -> Result<u64, tokio_postgres::Error> {
    let statement = tx
        .prepare_cached(
            "COPY events (seq, event_id, user_id, activity_type, product_id, metadata, ts_ms, received_ms)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let sink = tx.copy_in(&statement).await?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &COPIED));
    for i in 0..columns.seq.len() {
        let row: [&(dyn ToSql + Sync); 8] = [
            &columns.seq[i],
            &columns.event_id[i],
            &columns.user_id[i],
            &columns.activity_type[i],
            &columns.product_id[i],
            &columns.metadata[i],
            &columns.ts_ms[i],
            &received_ms,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await
}

/// The head's sequence, and what the visitors known to be registered depend on, from the
/// answer of the locking query.
fn head_of(messages: &[tokio_postgres::SimpleQueryMessage]) -> StoreResult<(u64, Generation)> {
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or_else(|| StoreError::Backend("log_head has no row".into()))?;
    let unreadable = |what: &str| StoreError::Backend(format!("log_head: unreadable {what}"));
    let seq = row.get(0).and_then(|v| v.parse().ok()).ok_or_else(|| unreadable("seq"))?;
    let deletions = row.get(1).and_then(|v| v.parse().ok()).ok_or_else(|| unreadable("deletions"))?;
    let server_started = row.get(2).ok_or_else(|| unreadable("server start time"))?.to_string();
    Ok((seq, Generation { deletions, server_started }))
}

/// Numbers one batch's new events after `next` and adds them to `columns`, or refuses the
/// whole batch (leaving both untouched) when it reuses an `eventId` for a different event.
fn plan(
    batch: &[NewActivity],
    known: &mut HashMap<String, (u64, Identity)>,
    next: &mut u64,
    columns: &mut Columns,
    now: DateTime<Utc>,
) -> StoreResult<Vec<AppendOutcome>> {
    let mut mine: HashMap<&str, (u64, Identity)> = HashMap::new();
    let mut out = Vec::with_capacity(batch.len());
    let mut seq = *next;
    for event in batch {
        let id = event.event_id.as_str();
        let identity = Identity::of(event);
        if let Some((at, earlier)) = mine.get(id).or_else(|| known.get(id)) {
            if *earlier != identity {
                return Err(reused(id, *at));
            }
            out.push(AppendOutcome::Duplicate { seq: *at });
            continue;
        }
        seq += 1;
        mine.insert(id, (seq, identity));
        out.push(AppendOutcome::Stored(StoredActivity { seq, event: event.clone(), received_at: now }));
    }
    *next = seq;
    for stored in &out {
        let AppendOutcome::Stored(s) = stored else { continue };
        let e = &s.event;
        columns.seq.push(s.seq as i64);
        columns.event_id.push(e.event_id.to_string());
        columns.user_id.push(e.user_id.to_string());
        columns.activity_type.push(e.activity_type.as_str());
        columns.product_id.push(e.product_id.as_ref().map(|p| p.to_string()));
        columns.metadata.push(if e.metadata.is_empty() {
            "{}".to_string()
        } else {
            serde_json::to_string(&e.metadata).unwrap_or_else(|_| "{}".into())
        });
        columns.ts_ms.push(e.timestamp.timestamp_millis());
    }
    known.extend(mine.into_iter().map(|(id, v)| (id.to_string(), v)));
    Ok(out)
}

/// Events one retention step deletes at most.
const PRUNE_EVENTS_CHUNK: i64 = 10_000;

/// One step of event retention, under the head's lock (the head counts the events): deletes
/// the oldest events received before `cutoff_ms`, at most [`PRUNE_EVENTS_CHUNK`] — as on
/// SQLite, the prefix of the log in `seq` order up to the first event received at or after
/// the cutoff — and, as on SQLite, the users of whom nothing but the id is held once their
/// last event is gone.
pub async fn prune(pool: &Pool, cutoff_ms: i64) -> StoreResult<Step> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = begin(&mut client).await?;
    let gone = delete_counted(
        &tx,
        "WITH oldest AS (SELECT seq, received_ms FROM events ORDER BY seq LIMIT $2),
              kept AS (SELECT MIN(seq) AS seq FROM oldest WHERE received_ms >= $1)
         DELETE FROM events WHERE seq IN
           (SELECT seq FROM oldest WHERE seq < COALESCE((SELECT seq FROM kept), 9223372036854775807))
         RETURNING user_id",
        &[&cutoff_ms, &PRUNE_EVENTS_CHUNK],
    )
    .await?;
    let deleted = gone.len() as u64;
    let mut users: Vec<&str> = gone.iter().map(String::as_str).collect();
    users.sort_unstable();
    users.dedup();
    tx.execute(
        "DELETE FROM users u WHERE u.id = ANY($1) AND u.name IS NULL AND u.attributes = '{}'
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.id)",
        &[&users],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(Step { deleted, more: deleted as i64 >= PRUNE_EVENTS_CHUNK })
}
