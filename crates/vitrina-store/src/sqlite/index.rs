//! The in-memory index of the event log: which events belong to a user, and which `seq`
//! holds an `eventId`.
//!
//! The `events` table has no secondary index on purpose: both lookups would be B-trees with
//! random insert positions, and each commit would rewrite one page per event into the WAL
//! (measured: 36k events/s with them, 120k without; see ADR 0004). Instead the writer keeps
//! this index in memory, updated after each commit, and [`LogIndex::rebuild`] recreates it
//! at open with one sequential scan of the table.
//!
//! Memory: about 16 bytes per event per map plus a little per user and hash-map slack
//! (≈ 0.7 GB for 20 M events).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hash, Hasher},
};

use rusqlite::Connection;
use vitrina_core::UserId;

/// A `Hasher` for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// The 64-bit hash of an `eventId` (SipHash with fixed keys, so it is stable in a process).
pub fn event_hash(event_id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    event_id.hash(&mut h);
    h.finish()
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
    by_event: HashKeyed<u64>,
    /// `seq`s of events whose id hash collides with another event's (rare).
    collisions: HashKeyed<Vec<u64>>,
}

impl LogIndex {
    /// Builds the index from the `events` table, in `seq` order.
    pub fn rebuild(conn: &Connection) -> rusqlite::Result<Self> {
        let mut index = Self::default();
        let mut stmt = conn.prepare("SELECT seq, event_id, user_id, ts_ms FROM events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let hash = event_hash(row.get_ref(1)?.as_str()?);
            let user = row.get_ref(2)?.as_str()?;
            let user = UserId::parse(user).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    e.to_string().into(),
                )
            })?;
            index.insert(hash, user, Entry { ts_ms: row.get(3)?, seq });
        }
        Ok(index)
    }

    /// The `seq`s of events whose id has `hash`: candidates to confirm against the table.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        self.by_event.get(&hash).into_iter().chain(self.collisions.get(&hash).into_iter().flatten()).copied()
    }

    /// Records a committed event.
    pub fn insert(&mut self, hash: u64, user: UserId, entry: Entry) {
        if let Some(_first) = self.by_event.get(&hash) {
            self.collisions.entry(hash).or_default().push(entry.seq);
        } else {
            self.by_event.insert(hash, entry.seq);
        }
        let events = self.by_user.entry(user).or_default();
        // Events mostly arrive in time order: append, else insert in place.
        match events.last() {
            Some(last) if *last > entry => {
                let at = events.partition_point(|e| *e < entry);
                events.insert(at, entry);
            }
            _ => events.push(entry),
        }
    }

    /// The user's events, oldest first by (event time, seq).
    pub fn user_events(&self, user: &UserId) -> &[Entry] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// Forgets a deleted user's events; `hashes` are their events' id hashes with their seqs.
    pub fn remove_user(&mut self, user: &UserId, hashes: &[(u64, u64)]) {
        self.by_user.remove(user);
        for &(hash, seq) in hashes {
            self.forget_id(hash, seq);
        }
    }

    /// Forgets events past the retention: `(user, id hash, seq)` each.
    pub fn remove_events(&mut self, events: &[(UserId, u64, u64)]) {
        let mut by_user: HashMap<&UserId, Vec<u64>> = HashMap::new();
        for (user, hash, seq) in events {
            by_user.entry(user).or_default().push(*seq);
            self.forget_id(*hash, *seq);
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

    /// Forgets that `seq` holds an event with id hash `hash`.
    fn forget_id(&mut self, hash: u64, seq: u64) {
        if let Some(list) = self.collisions.get_mut(&hash) {
            list.retain(|s| *s != seq);
            if list.is_empty() {
                self.collisions.remove(&hash);
            }
        }
        if self.by_event.get(&hash) == Some(&seq) {
            self.by_event.remove(&hash);
            // Promote a colliding event, if any, to the primary slot.
            if let Some(list) = self.collisions.get_mut(&hash) {
                if let Some(next) = list.pop() {
                    self.by_event.insert(hash, next);
                }
                if list.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        }
    }

    pub fn users(&self) -> usize {
        self.by_user.len()
    }

    /// Events in the log.
    pub fn events(&self) -> u64 {
        self.by_event.len() as u64 + self.collisions.values().map(|c| c.len() as u64).sum::<u64>()
    }
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

    #[test]
    fn event_hash_is_stable_within_a_process() {
        assert_eq!(event_hash("e-1"), event_hash("e-1"));
        assert_ne!(event_hash("e-1"), event_hash("e-2"));
    }
}
