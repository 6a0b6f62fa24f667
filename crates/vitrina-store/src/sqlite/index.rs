//! The in-memory index of the event log: which events belong to a user, and which `seq`
//! holds an `eventId`.
//!
//! The `events` table has no secondary index on purpose: both lookups would be B-trees with
//! random insert positions, and each commit would rewrite one page per event into the WAL
//! (measured: 36k events/s with them, 120k without; see ADR 0004). Instead the writer keeps
//! this index in memory, updated after each commit, and [`LogIndex::rebuild`] recreates it
//! at open with one sequential scan of the table.
//!
//! Memory: 16 bytes per event in its user's list, 16 bytes per slot of the `eventId` table
//! (1.33–2.67 slots per event as it grows; up to 8 once deletions took most events, before it
//! shrinks), plus a little per user (≈ 0.9 GB for 20 M events). A rebuild holds 16 bytes per
//! event more until it has built the table.

use std::{collections::HashMap, sync::mpsc};

use rusqlite::Connection;
use vitrina_core::UserId;

use super::event_ids::{EventIds, Slot};

/// The 64-bit hash of an `eventId`: XXH3 with a seed drawn once per process (the index lives
/// only in this process's memory), so clients cannot choose ids that crowd one stretch of the
/// `eventId` table.
pub fn event_hash(event_id: &str) -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    xxhash_rust::xxh3::xxh3_64_with_seed(event_id.as_bytes(), *SEED.get_or_init(rand::random))
}

/// The `user_id` column of an `events` row as a [`UserId`]: a row the index cannot hold is
/// an error, never a silent skip that would leave the index out of step with the table.
pub fn user_column(raw: &str) -> rusqlite::Result<UserId> {
    UserId::parse(raw).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.to_string().into())
    })
}

/// One event as the index sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub ts_ms: i64,
    pub seq: u64,
}

/// Per user, their events sorted by (event time, seq); per `eventId` hash, the `seq`s with
/// that hash (almost always one).
#[derive(Default)]
pub struct LogIndex {
    by_user: HashMap<UserId, Vec<Entry>>,
    ids: EventIds,
}

impl LogIndex {
    /// Builds the index from the `events` table, in `seq` order.
    ///
    /// Two threads share the work: this one steps SQLite through the table, collects every
    /// `(eventId hash, seq)` and then builds [`EventIds`] from them in hash order; a scoped
    /// thread fills the per-user lists from the batches of rows it sends. (20 M events: see
    /// "Start-up from a checkpoint" in docs/BENCHMARKS.md.)
    pub fn rebuild(conn: &Connection) -> rusqlite::Result<Self> {
        let span: i64 =
            conn.query_row("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM events", [], |r| r.get(0))?;
        // The span is an upper bound of the events (fewer after deletions); reserve at most
        // 2^25 pairs (512 MiB) up front, beyond that the vector grows as it must.
        let mut pairs = Vec::with_capacity(usize::try_from(span).unwrap_or(0).min(1 << 25));
        let (batches, received) = mpsc::sync_channel::<Batch>(4);
        std::thread::scope(|scope| {
            let builder = std::thread::Builder::new()
                .name("vitrina-log-index".into())
                .spawn_scoped(scope, move || users_from(received))
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let read = read_rows(conn, batches, &mut pairs);
            // While the builder finishes the per-user lists (unless it failed: then the reader
            // stopped early and the builder's error is the answer).
            let ids = if matches!(read, Ok(true)) { EventIds::build(pairs) } else { EventIds::default() };
            let built = builder.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // A builder error ends the reader early (its channel closes): report the builder's.
            let by_user = built?;
            read?;
            Ok(Self { by_user, ids })
        })
    }

    /// The `seq`s of events whose id has `hash`: candidates to confirm against the table.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        self.ids.candidates(hash)
    }

    /// Records a committed event.
    pub fn insert(&mut self, hash: u64, user: UserId, entry: Entry) {
        self.ids.insert(hash, entry.seq);
        add_entry(self.by_user.entry(user).or_default(), entry);
    }

    /// The user's events, oldest first by (event time, seq).
    pub fn user_events(&self, user: &UserId) -> &[Entry] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// Forgets a deleted user's events; `hashes` are their events' id hashes with their seqs.
    pub fn remove_user(&mut self, user: &UserId, hashes: &[(u64, u64)]) {
        self.by_user.remove(user);
        for &(hash, seq) in hashes {
            self.ids.forget(hash, seq);
        }
    }

    /// Forgets events past the retention: `(user, id hash, seq)` each.
    pub fn remove_events(&mut self, events: &[(UserId, u64, u64)]) {
        let mut by_user: HashMap<&UserId, Vec<u64>> = HashMap::new();
        for (user, hash, seq) in events {
            by_user.entry(user).or_default().push(*seq);
            self.ids.forget(*hash, *seq);
        }
        for (user, mut seqs) in by_user {
            seqs.sort_unstable();
            if let Some(list) = self.by_user.get_mut(user) {
                list.retain(|e| seqs.binary_search(&e.seq).is_err());
                if list.is_empty() {
                    self.by_user.remove(user);
                } else if list.capacity() > 2 * list.len() + 8 {
                    list.shrink_to_fit();
                }
            }
        }
    }

    pub fn users(&self) -> usize {
        self.by_user.len()
    }

    /// Events in the log.
    pub fn events(&self) -> u64 {
        self.ids.len() as u64
    }
}

/// Adds an event to a user's list, keeping it sorted by (event time, seq).
fn add_entry(events: &mut Vec<Entry>, entry: Entry) {
    // Events mostly arrive in time order: append, else insert in place.
    match events.last() {
        Some(last) if *last > entry => {
            let at = events.partition_point(|e| *e < entry);
            events.insert(at, entry);
        }
        _ => events.push(entry),
    }
}

/// The per-user lists from the rows of the batches (the builder thread of
/// [`LogIndex::rebuild`]); a user id is parsed (and allocated) only the first time it is seen.
fn users_from(batches: mpsc::Receiver<Batch>) -> rusqlite::Result<HashMap<UserId, Vec<Entry>>> {
    let mut by_user: HashMap<UserId, Vec<Entry>> = HashMap::new();
    for batch in batches {
        let mut start = 0;
        for row in &batch.rows {
            let user = &batch.users[start..row.user_end];
            start = row.user_end;
            match by_user.get_mut(user) {
                Some(events) => add_entry(events, row.entry),
                None => {
                    by_user.insert(user_column(user)?, vec![row.entry]);
                }
            }
        }
    }
    Ok(by_user)
}

/// Rows read by [`LogIndex::rebuild`]'s reader, with their user ids packed in one string.
struct Batch {
    rows: Vec<Row>,
    users: String,
}

struct Row {
    entry: Entry,
    /// Where this row's user id ends in [`Batch::users`] (it starts where the previous ends).
    user_end: usize,
}

const BATCH_ROWS: usize = 16_384;

/// Steps through `events` in `seq` order, collects each event's `(eventId hash, seq)` in
/// `pairs` and sends the rows in batches. `Ok(false)` when it stopped early because the
/// builder hung up (it failed and reports why).
fn read_rows(
    conn: &Connection,
    batches: mpsc::SyncSender<Batch>,
    pairs: &mut Vec<Slot>,
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT seq, event_id, user_id, ts_ms FROM events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let fresh =
        || Batch { rows: Vec::with_capacity(BATCH_ROWS), users: String::with_capacity(BATCH_ROWS * 16) };
    let mut batch = fresh();
    while let Some(row) = rows.next()? {
        let seq = row.get::<_, i64>(0)?;
        if seq <= 0 {
            // The log numbers from 1; the `eventId` table takes 0 for an empty slot.
            return Err(rusqlite::Error::IntegralValueOutOfRange(0, seq));
        }
        let seq = seq as u64;
        pairs.push(Slot { hash: event_hash(row.get_ref(1)?.as_str()?), seq });
        batch.users.push_str(row.get_ref(2)?.as_str()?);
        batch.rows.push(Row { entry: Entry { ts_ms: row.get(3)?, seq }, user_end: batch.users.len() });
        if batch.rows.len() == BATCH_ROWS && batches.send(std::mem::replace(&mut batch, fresh())).is_err() {
            return Ok(false);
        }
    }
    Ok(batch.rows.is_empty() || batches.send(batch).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap()
    }

    #[test]
    fn user_events_stay_sorted_by_time_even_when_they_arrive_out_of_order() {
        let mut ix = LogIndex::default();
        ix.insert(1, user("a"), Entry { ts_ms: 10, seq: 1 });
        ix.insert(2, user("a"), Entry { ts_ms: 30, seq: 2 });
        ix.insert(3, user("a"), Entry { ts_ms: 20, seq: 3 });
        ix.insert(4, user("b"), Entry { ts_ms: 5, seq: 4 });
        let seqs: Vec<u64> = ix.user_events(&user("a")).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3, 2]);
        assert_eq!(ix.users(), 2);
    }

    #[test]
    fn colliding_hashes_keep_every_candidate_and_survive_removal() {
        let mut ix = LogIndex::default();
        ix.insert(7, user("a"), Entry { ts_ms: 1, seq: 1 });
        ix.insert(7, user("b"), Entry { ts_ms: 2, seq: 2 });
        ix.insert(7, user("c"), Entry { ts_ms: 3, seq: 3 });
        let mut all: Vec<u64> = ix.candidates(7).collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
        ix.remove_user(&user("a"), &[(7, 1)]);
        let mut left: Vec<u64> = ix.candidates(7).collect();
        left.sort_unstable();
        assert_eq!(left, [2, 3]);
        ix.remove_user(&user("c"), &[(7, 3)]);
        ix.remove_user(&user("b"), &[(7, 2)]);
        assert_eq!(ix.candidates(7).count(), 0);
        assert!(ix.user_events(&user("b")).is_empty());
    }

    #[test]
    fn removed_events_leave_the_rest_of_each_visitor_and_empty_visitors_go() {
        let mut ix = LogIndex::default();
        ix.insert(1, user("a"), Entry { ts_ms: 10, seq: 1 });
        ix.insert(2, user("b"), Entry { ts_ms: 11, seq: 2 });
        ix.insert(3, user("a"), Entry { ts_ms: 12, seq: 3 });
        ix.insert(3, user("c"), Entry { ts_ms: 13, seq: 4 });
        ix.remove_events(&[(user("a"), 1, 1), (user("b"), 2, 2), (user("a"), 3, 3)]);
        assert!(ix.user_events(&user("a")).is_empty() && ix.user_events(&user("b")).is_empty());
        assert_eq!(ix.users(), 1);
        assert_eq!(ix.candidates(3).collect::<Vec<_>>(), [4], "the colliding event takes the slot");
        assert_eq!(ix.events(), 1);
    }

    fn table(rows: impl IntoIterator<Item = (String, String, i64)>) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::sqlite::schema::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for (event_id, user, ts) in rows {
            tx.execute(
                "INSERT INTO events (event_id, user_id, activity_type, metadata, ts_ms, received_ms)
                 VALUES (?1, ?2, 'view', '{}', ?3, 0)",
                rusqlite::params![event_id, user, ts],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        conn
    }

    #[test]
    fn rebuild_reads_every_row_across_batches_in_time_order_per_user() {
        let n = 2 * BATCH_ROWS + 7;
        // Three users; each user's times run backwards every third event.
        let conn = table(
            (0..n).map(|i| (format!("e{i}"), format!("u{}", i % 3), (i as i64 / 3) * 10 - (i % 2) as i64)),
        );
        conn.execute("DELETE FROM events WHERE seq % 1000 = 0", []).unwrap();
        let ix = LogIndex::rebuild(&conn).unwrap();
        let kept = (1..=n as u64).filter(|s| s % 1000 != 0).count() as u64;
        assert_eq!((ix.events(), ix.users()), (kept, 3));
        for u in ["u0", "u1", "u2"] {
            let events = ix.user_events(&user(u));
            assert!(events.windows(2).all(|w| w[0] < w[1]), "{u}'s events are sorted");
            assert_eq!(
                events.len() as u64,
                (1..=n as u64)
                    .filter(|s| s % 1000 != 0 && (s - 1) % 3 == u[1..].parse::<u64>().unwrap())
                    .count() as u64
            );
        }
        assert_eq!(ix.candidates(event_hash("e5")).collect::<Vec<_>>(), [6]);
        assert_eq!(ix.candidates(event_hash("e999")).count(), 0, "seq 1000 was deleted");
    }

    #[test]
    fn rebuild_of_an_empty_log_is_empty() {
        let ix = LogIndex::rebuild(&table([])).unwrap();
        assert_eq!((ix.events(), ix.users()), (0, 0));
    }

    #[test]
    fn rebuild_fails_on_a_row_whose_user_id_is_not_valid_however_late_it_comes() {
        let n = BATCH_ROWS + 3;
        let conn = table(
            (0..n)
                .map(|i| (format!("e{i}"), if i == n - 2 { "bad user".into() } else { format!("u{i}") }, 0)),
        );
        let err = LogIndex::rebuild(&conn).err().expect("an invalid user id is an error");
        assert!(err.to_string().contains("userId"), "{err}");
    }

    #[test]
    fn rebuild_fails_without_hanging_when_the_builder_fails_while_the_reader_has_batches_left() {
        let n = 8 * BATCH_ROWS;
        let conn = table(
            (0..n).map(|i| (format!("e{i}"), if i == 5 { "bad user".into() } else { format!("u{i}") }, 0)),
        );
        let err = LogIndex::rebuild(&conn).err().expect("an invalid user id is an error");
        assert!(err.to_string().contains("userId"), "{err}");
    }

    #[test]
    fn rebuild_fails_on_a_row_sqlite_cannot_give_as_text_or_a_sequence_below_one() {
        let conn = table((0..10).map(|i| (format!("e{i}"), format!("u{i}"), 0)));
        conn.execute("UPDATE events SET event_id = x'00ff' WHERE seq = 4", []).unwrap();
        assert!(LogIndex::rebuild(&conn).is_err(), "a blob eventId is an error");
        let conn = table((0..10).map(|i| (format!("e{i}"), format!("u{i}"), 0)));
        conn.execute("UPDATE events SET seq = 0 WHERE seq = 1", []).unwrap();
        let err = LogIndex::rebuild(&conn).err().expect("seq 0 is an error");
        assert!(matches!(err, rusqlite::Error::IntegralValueOutOfRange(0, 0)), "{err}");
    }

    #[test]
    fn event_hash_is_stable_within_a_process() {
        assert_eq!(event_hash("e-1"), event_hash("e-1"));
        assert_ne!(event_hash("e-1"), event_hash("e-2"));
    }
}
