//! Which `seq`s hold an event with a given `eventId` hash: the idempotency half of the
//! in-memory log index (ADR 0004).
//!
//! An open-addressing table with linear probing whose home slot is the hash's top bits. A
//! hash map of 20 M events misses the CPU caches on nearly every insert when the events come
//! in log order (their hashes are random); this table is built at open from all the log's
//! `(hash, seq)` pairs sorted by hash, so the build writes it front to back
//! ([`EventIds::build`]). Several events may share a hash (ids that collide): every one has a
//! slot, and a lookup returns them all for the caller to confirm against the table.

/// One slot: `seq` 0 marks it empty (the log's sequences start at 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    pub hash: u64,
    pub seq: u64,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.seq == 0
    }
}

/// The smallest table; it never shrinks below this.
const MIN_SLOTS: usize = 16;

pub struct EventIds {
    /// A power of two in length, at most 3/4 full.
    slots: Vec<Slot>,
    len: usize,
}

impl Default for EventIds {
    fn default() -> Self {
        Self { slots: vec![Slot::default(); MIN_SLOTS], len: 0 }
    }
}

impl EventIds {
    /// The table holding `pairs` (their order does not matter; they are sorted here).
    pub fn build(mut pairs: Vec<Slot>) -> Self {
        debug_assert!(pairs.iter().all(|p| !p.is_empty()), "seq 0 is not a log sequence");
        pairs.sort_unstable_by_key(|p| p.hash);
        let mut ids = Self { slots: vec![Slot::default(); Self::slots_for(pairs.len())], len: 0 };
        for pair in pairs {
            ids.place(pair);
        }
        ids
    }

    /// Records that `seq` holds an event whose id has `hash`.
    pub fn insert(&mut self, hash: u64, seq: u64) {
        debug_assert!(seq != 0, "seq 0 is not a log sequence");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(self.slots.len() * 2);
        }
        self.place(Slot { hash, seq });
    }

    /// The `seq`s recorded with `hash`.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u64> + '_ {
        self.run(self.home(hash)).filter(move |&i| self.slots[i].hash == hash).map(|i| self.slots[i].seq)
    }

    /// Forgets that `seq` holds an event with id hash `hash` (nothing when it was not recorded).
    pub fn forget(&mut self, hash: u64, seq: u64) {
        let Some(found) = self.run(self.home(hash)).find(|&i| self.slots[i] == Slot { hash, seq }) else {
            return;
        };
        self.remove_at(found);
        self.len -= 1;
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(Self::slots_for(self.len));
        }
    }

    /// Events recorded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The fewest slots that hold `n` entries at most 3/4 full.
    fn slots_for(n: usize) -> usize {
        (n * 4).div_ceil(3).next_power_of_two().max(MIN_SLOTS)
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot where probing for `hash` starts: the hash's top bits.
    fn home(&self, hash: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (hash >> (64 - bits)) as usize
    }

    /// The occupied slots from `start` up to the first empty one, wrapping around.
    fn run(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        let mask = self.mask();
        (0..self.slots.len()).map(move |k| (start + k) & mask).take_while(|&i| !self.slots[i].is_empty())
    }

    /// Puts `slot` in the first empty slot from its home (there is one: at most 3/4 full).
    fn place(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut i = self.home(slot.hash);
        while !self.slots[i].is_empty() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    /// Empties slot `i` and moves later entries of its run back, so every entry stays
    /// reachable from its home without passing an empty slot (deletion by backward shift).
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if self.slots[j].is_empty() {
                break;
            }
            let home = self.home(self.slots[j].hash);
            // The entry at j may move to i unless its home lies cyclically in (i, j].
            let stays = if i <= j { i < home && home <= j } else { i < home || home <= j };
            if !stays {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = Slot::default();
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); slots]);
        self.len = 0;
        for slot in old.into_iter().filter(|s| !s.is_empty()) {
            self.place(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Hashes that crowd a few home slots and wrap around the table's end.
    fn crowded_hash() -> impl Strategy<Value = u64> {
        (prop_oneof![Just(0u64), Just(1), Just(7), Just(15)], 0u64..4)
            .prop_map(|(top, low)| (top << 60) | low)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        /// Forget the n-th recorded event (modulo how many there are), or a never-recorded one.
        Forget(usize),
        ForgetUnknown(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => crowded_hash().prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Forget),
            1 => crowded_hash().prop_map(Op::ForgetUnknown),
        ]
    }

    /// Mostly forgets: the table shrinks (often several times) with entries left in it.
    fn draining_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => crowded_hash().prop_map(Op::Insert),
            6 => any::<usize>().prop_map(Op::Forget),
        ]
    }

    fn sorted(it: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut v: Vec<u64> = it.collect();
        v.sort_unstable();
        v
    }

    proptest! {
        /// Against a plain multimap: whatever the inserts, forgets, growths and shrinks, every
        /// hash answers exactly the seqs recorded with it.
        #[test]
        fn answers_like_a_multimap(
            initial in prop::collection::vec(crowded_hash(), 0..40),
            ops in prop::collection::vec(op(), 0..200),
            drain in prop::collection::vec(draining_op(), 0..200),
        ) {
            let mut model: HashMap<u64, Vec<u64>> = HashMap::new();
            let mut live: Vec<(u64, u64)> = Vec::new();
            let mut seq = 0;
            let mut pairs = Vec::new();
            for hash in initial {
                seq += 1;
                pairs.push(Slot { hash, seq });
                model.entry(hash).or_default().push(seq);
                live.push((hash, seq));
            }
            let mut ids = EventIds::build(pairs);
            for op in ops.into_iter().chain(drain) {
                match op {
                    Op::Insert(hash) => {
                        seq += 1;
                        ids.insert(hash, seq);
                        model.entry(hash).or_default().push(seq);
                        live.push((hash, seq));
                    }
                    Op::Forget(n) if !live.is_empty() => {
                        let (hash, seq) = live.swap_remove(n % live.len());
                        ids.forget(hash, seq);
                        model.get_mut(&hash).unwrap().retain(|s| *s != seq);
                    }
                    Op::Forget(_) => {}
                    Op::ForgetUnknown(hash) => ids.forget(hash, u64::MAX),
                }
                prop_assert_eq!(ids.len(), live.len());
                prop_assert!(ids.len() * 4 <= ids.slots.len() * 3);
            }
            for hash in (0..16u64).flat_map(|top| (0..4).map(move |low| (top << 60) | low)) {
                let want = sorted(model.get(&hash).into_iter().flatten().copied());
                prop_assert_eq!(sorted(ids.candidates(hash)), want, "hash {:x}", hash);
            }
        }
    }

    #[test]
    fn a_built_table_takes_the_fewest_slots_and_finds_every_pair() {
        let pairs: Vec<Slot> =
            (1..=1000u64).map(|seq| Slot { hash: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), seq }).collect();
        let ids = EventIds::build(pairs.clone());
        assert_eq!((ids.len(), ids.slots.len()), (1000, 2048));
        for p in pairs {
            assert_eq!(ids.candidates(p.hash).collect::<Vec<_>>(), [p.seq]);
        }
        assert_eq!(ids.candidates(42).count(), 0);
    }

    #[test]
    fn after_shrinking_every_remaining_pair_is_found() {
        let hash = |seq: u64| seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut ids = EventIds::default();
        for seq in 1..=1000u64 {
            ids.insert(hash(seq), seq);
        }
        let grown = ids.slots.len();
        for seq in (1..=1000u64).filter(|s| s % 20 != 0) {
            ids.forget(hash(seq), seq);
        }
        assert!(ids.slots.len() < grown / 4, "{grown} -> {}", ids.slots.len());
        for seq in 1..=1000u64 {
            let want: &[u64] = if seq % 20 == 0 { &[seq] } else { &[] };
            assert_eq!(ids.candidates(hash(seq)).collect::<Vec<_>>(), want, "seq {seq}");
        }
        assert_eq!(ids.len(), 50);
    }

    #[test]
    fn it_shrinks_when_mostly_forgotten_and_never_below_the_minimum() {
        let mut ids = EventIds::default();
        for seq in 1..=1000u64 {
            ids.insert(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), seq);
        }
        let grown = ids.slots.len();
        for seq in 1..=1000u64 {
            ids.forget(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), seq);
        }
        assert!(grown >= 1024 && ids.slots.len() == MIN_SLOTS, "{grown} -> {}", ids.slots.len());
        assert_eq!(ids.len(), 0);
    }
}
