//! The visitors this process knows to have a `users` row, so that an append registers only
//! the others: the row's upsert was 15 % of the PostgreSQL writer's time in batch ingest,
//! almost all of it finding the row already there (docs/BENCHMARKS.md, "Skipping the `users`
//! upsert").
//!
//! Triggers on `users` bump `log_head.deletions` whenever rows are deleted, renamed or
//! truncated, by any code or person (migration V5); appends read the count, with the server's
//! start time, under the head's row lock. An appender that sees either change forgets every
//! visitor it knew — as it does after any failed write — so it never trusts a row that may be
//! gone: not after an erasure or retention in another process, nor after a failover to a
//! server that lost the commits it learned from. Ids are kept as 128-bit hashes seeded per
//! process, at most [`CAPACITY`] of them (then forgotten and learned again).

use std::{collections::HashSet, sync::OnceLock};

/// Visitors remembered at most: 7/8 of 2^20, the most a set of 2^20 slots holds (17 bytes a
/// slot: ≈ 17 MiB).
pub const CAPACITY: usize = 917_504;

/// What the remembered rows depend on: the deletion count and the database server's start
/// time, read under the head's row lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    pub deletions: i64,
    pub server_started: String,
}

#[derive(Debug)]
pub struct KnownUsers {
    /// When `ids` were learned (`None`: nothing learned yet, or forgotten).
    generation: Option<Generation>,
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
        Self { generation: None, ids: HashSet::new(), capacity }
    }

    /// Of `users`, those not known to have a row, given the `generation` read under the head's
    /// lock in the appending transaction.
    pub fn unknown<'a>(&mut self, generation: &Generation, users: &[&'a str]) -> Vec<&'a str> {
        if self.generation.as_ref() != Some(generation) {
            self.ids.clear();
            self.generation = Some(generation.clone());
        }
        users.iter().copied().filter(|u| !self.ids.contains(&key(u))).collect()
    }

    /// Remembers that `users`, those [`unknown`](Self::unknown) answered, have rows once the
    /// transaction that read `generation` (and registered them) has committed. Only they are
    /// hashed again: the visitors already known, nearly all of them in steady traffic, are not.
    pub fn learn(&mut self, generation: &Generation, users: &[&str]) {
        if self.generation.as_ref() != Some(generation) {
            return;
        }
        if self.ids.len() + users.len() > self.capacity {
            self.ids.clear();
        }
        self.ids.extend(users.iter().take(self.capacity).map(|u| key(u)));
    }

    /// Forgets everything (a write failed: what the database holds is not known).
    pub fn forget(&mut self) {
        self.ids.clear();
        self.generation = None;
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

fn key(user: &str) -> u128 {
    static SEED: OnceLock<u64> = OnceLock::new();
    xxhash_rust::xxh3::xxh3_128_with_seed(user.as_bytes(), *SEED.get_or_init(rand::random))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(deletions: i64, server_started: &str) -> Generation {
        Generation { deletions, server_started: server_started.into() }
    }

    #[test]
    fn learned_users_are_skipped_until_a_deletion_is_seen() {
        let mut known = KnownUsers::default();
        let g0 = generation(0, "t0");
        assert_eq!(known.unknown(&g0, &["a", "b"]), ["a", "b"]);
        known.learn(&g0, &["a", "b"]);
        assert_eq!(known.unknown(&g0, &["a", "b", "c"]), ["c"]);
        // Another process erased someone: nothing is trusted any more.
        assert_eq!(known.unknown(&generation(1, "t0"), &["a", "c"]), ["a", "c"]);
        assert_eq!(known.len(), 0);
    }

    #[test]
    fn a_restarted_database_server_or_a_failed_write_forgets_everything() {
        let mut known = KnownUsers::default();
        let g0 = generation(4, "t0");
        known.unknown(&g0, &["a"]);
        known.learn(&g0, &["a"]);
        assert_eq!(known.unknown(&generation(4, "t1"), &["a"]), ["a"], "a failover lost the row, maybe");
        let g1 = generation(4, "t1");
        known.learn(&g1, &["a"]);
        assert!(known.unknown(&g1, &["a"]).is_empty());
        known.forget();
        assert_eq!(known.unknown(&g1, &["a"]), ["a"]);
    }

    #[test]
    fn what_a_transaction_learned_under_an_older_generation_is_not_kept() {
        let mut known = KnownUsers::default();
        let (g3, g4) = (generation(3, "t0"), generation(4, "t0"));
        assert_eq!(known.unknown(&g3, &["a"]), ["a"]);
        // A later transaction saw a deletion before the first one reported its commit.
        assert_eq!(known.unknown(&g4, &["b"]), ["b"]);
        known.learn(&g3, &["a"]);
        assert_eq!(known.unknown(&g4, &["a"]), ["a"]);
    }

    /// What an append does: registers the unknown ones, then learns them.
    fn append(known: &mut KnownUsers, g: &Generation, users: &[&str]) {
        let new = known.unknown(g, users);
        known.learn(g, &new);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_known_visitors_do_not_count_twice() {
        let g = generation(0, "t0");
        let mut known = KnownUsers::with_capacity(3);
        append(&mut known, &g, &["a", "b"]);
        append(&mut known, &g, &["a", "b", "c"]);
        assert_eq!(known.len(), 3, "a and b were known: nothing to make room for");
        append(&mut known, &g, &["d"]);
        assert!(known.len() <= 3, "{}", known.len());
        assert!(known.unknown(&g, &["d"]).is_empty());
        append(&mut known, &g, &["e", "f", "g", "h"]);
        assert_eq!(known.len(), 3);
    }
}
