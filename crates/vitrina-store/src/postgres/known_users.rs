//! The visitors this process knows to have a `users` row, so that an append registers only
//! the others: the row's upsert was 15 % of the PostgreSQL writer's time in batch ingest,
//! almost all of it finding the row already there (docs/BENCHMARKS.md, "Binary `COPY` for
//! large groups").
//!
//! Rows are deleted only with events (erasure, retention), and every such deletion bumps
//! `log_head.deletions` under the head's row lock, which appends take too. So an appender
//! that reads the count under that lock and forgets everything it knew when the count moved
//! (in any process) never trusts a row that may be gone. Ids are kept as 128-bit hashes, at
//! most [`CAPACITY`] of them (then forgotten and learned again).

use std::collections::HashSet;

/// Visitors remembered at most (16 bytes each, ≈ 24 MiB with the set's slack).
pub const CAPACITY: usize = 1_000_000;

#[derive(Debug)]
pub struct KnownUsers {
    /// `log_head.deletions` when `ids` were learned.
    deletions: i64,
    ids: HashSet<u128>,
    capacity: usize,
}

impl Default for KnownUsers {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl KnownUsers {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { deletions: 0, ids: HashSet::new(), capacity }
    }

    /// Of `users`, those not known to have a row, given the head's `deletions` read under its
    /// lock in the appending transaction.
    pub fn unknown<'a>(&mut self, deletions: i64, users: &[&'a str]) -> Vec<&'a str> {
        if deletions != self.deletions {
            self.ids.clear();
            self.deletions = deletions;
        }
        users.iter().copied().filter(|u| !self.ids.contains(&key(u))).collect()
    }

    /// Remembers that `users` have rows, once the transaction that read `deletions` (and
    /// registered the unknown ones) has committed.
    pub fn learn(&mut self, deletions: i64, users: &[&str]) {
        if deletions != self.deletions {
            return;
        }
        if self.ids.len() + users.len() > self.capacity {
            self.ids.clear();
        }
        self.ids.extend(users.iter().take(self.capacity).map(|u| key(u)));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

fn key(user: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(user.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_users_are_skipped_until_a_deletion_is_seen() {
        let mut known = KnownUsers::default();
        assert_eq!(known.unknown(0, &["a", "b"]), ["a", "b"]);
        known.learn(0, &["a", "b"]);
        assert_eq!(known.unknown(0, &["a", "b", "c"]), ["c"]);
        // Another process erased someone: nothing is trusted any more.
        assert_eq!(known.unknown(1, &["a", "c"]), ["a", "c"]);
        assert_eq!(known.len(), 0);
    }

    #[test]
    fn what_a_transaction_learned_under_an_older_count_is_not_kept() {
        let mut known = KnownUsers::default();
        assert_eq!(known.unknown(3, &["a"]), ["a"]);
        // A later transaction saw a deletion before the first one reported its commit.
        assert_eq!(known.unknown(4, &["b"]), ["b"]);
        known.learn(3, &["a"]);
        assert_eq!(known.unknown(4, &["a"]), ["a"]);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let mut known = KnownUsers::with_capacity(3);
        known.learn(0, &["a", "b"]);
        known.learn(0, &["c", "d"]);
        assert!(known.len() <= 3, "{}", known.len());
        assert_eq!(known.unknown(0, &["c", "d"]), Vec::<&str>::new());
        known.learn(0, &["e", "f", "g", "h"]);
        assert_eq!(known.len(), 3);
    }
}
