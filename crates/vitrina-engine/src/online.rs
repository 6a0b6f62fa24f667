//! Visitors' online state: each visitor's latest events, purchases and rated items, updated by every
//! acknowledged event, read by every recommendation. Sharded so writers of different
//! visitors rarely meet; events are packed to 12 bytes.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        RwLock,
    },
};

use vitrina_core::{ActivityType, UserId};

/// Event times are kept as seconds since 1990-01-01 (the earliest accepted event time).
pub const EPOCH_SECS: i64 = 631_152_000;

/// Seconds since [`EPOCH_SECS`] of a unix-milliseconds time (saturating).
pub fn online_secs(ts_ms: i64) -> u32 {
    (ts_ms / 1000 - EPOCH_SECS).clamp(0, i64::from(u32::MAX)) as u32
}

/// One event in a visitor's online history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnlineEvent {
    pub item: u32,
    /// [`online_secs`] of the event time.
    pub ts: u32,
    pub kind: ActivityType,
    /// A rating's value × 10 (0–100), else 0.
    pub value10: u8,
}

impl OnlineEvent {
    pub fn new(item: u32, ts_ms: i64, kind: ActivityType, value: Option<f32>) -> Self {
        let value10 = value.map_or(0.0, |v| (v * 10.0).round().clamp(0.0, 255.0)) as u8;
        Self { item, ts: online_secs(ts_ms), kind, value10 }
    }

    pub fn value(&self) -> Option<f32> {
        (self.kind == ActivityType::Rating).then(|| f32::from(self.value10) / 10.0)
    }
}

/// Purchases kept per visitor (beyond the recent-events window), for the purchased rule.
const MAX_PURCHASES: usize = 200;
/// Rated items kept per visitor (the latest rated), beyond the recent-events window: a
/// rating says the item was consumed, so `excludeSeen` keeps it out over the whole history.
pub const MAX_RATED: usize = 1_000;
const SHARDS: usize = 64;

#[derive(Debug, Default, Clone)]
struct UserState {
    /// Oldest first, at most the capacity.
    events: Vec<OnlineEvent>,
    /// `(item, ts)`, oldest first.
    purchases: Vec<(u32, u32)>,
    /// Distinct items rated, latest last, at most [`MAX_RATED`].
    rated: Vec<u32>,
    /// The highest log sequence of the visitor's events observed (at least), so a list
    /// computed from a state that had applied less is known to be older.
    seq: u64,
}

/// What ranking reads of one visitor.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserSnapshot {
    /// The latest events, oldest first.
    pub events: Vec<OnlineEvent>,
    /// `(item, ts)` of purchases, oldest first.
    pub purchases: Vec<(u32, u32)>,
    /// Distinct items rated over the whole history (the latest [`MAX_RATED`]), latest last.
    pub rated: Vec<u32>,
}

/// The latest `n` of `events` (oldest first).
fn latest(events: &[OnlineEvent], n: usize) -> Vec<OnlineEvent> {
    events[events.len().saturating_sub(n)..].to_vec()
}

/// Notes that `item` was rated: it moves to the end of `rated` (the latest), and the
/// earliest rated item goes when there are more than [`MAX_RATED`].
fn note_rated(rated: &mut Vec<u32>, item: u32) {
    if let Some(at) = rated.iter().position(|&i| i == item) {
        rated.remove(at);
    }
    rated.push(item);
    if rated.len() > MAX_RATED {
        rated.remove(0);
    }
}

impl UserState {
    /// Time of the latest event kept ([`online_secs`]).
    fn last_seen(&self) -> u32 {
        let event = self.events.last().map_or(0, |e| e.ts);
        event.max(self.purchases.last().map_or(0, |p| p.1))
    }
}

/// The online state of every visitor, bounded: past the configured number of visitors, the
/// ones whose latest event is oldest are forgotten (an eighth of a shard at a time, so the
/// cost per new visitor stays constant). A forgotten visitor who returns is read back from
/// the event log by the server ([`crate::Engine::hydrate`]).
pub struct Users {
    shards: Box<[RwLock<HashMap<UserId, UserState>>]>,
    hasher: RandomState,
    capacity: usize,
    max_per_shard: AtomicUsize,
    evicted: AtomicU64,
    /// The highest sequence of any visitor forgotten (evicted, erased, or dropped to be read
    /// back): what [`Users::seq`] answers for a visitor without state, who may be one.
    forgotten_seq: AtomicU64,
}

impl Users {
    /// Keeps the latest `capacity` events of each visitor, of any number of visitors.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            max_per_shard: AtomicUsize::new(usize::MAX),
            evicted: AtomicU64::new(0),
            forgotten_seq: AtomicU64::new(0),
        }
    }

    /// Keeps at most about `visitors` visitors (rounded up to a multiple of the shards).
    pub fn limit(&self, visitors: usize) {
        self.max_per_shard.store(visitors.div_ceil(SHARDS).max(1), Ordering::Relaxed);
    }

    /// Visitors forgotten to stay within the limit so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Whether the visitor has online state.
    pub fn contains(&self, user: &UserId) -> bool {
        self.shard(user).read().expect("online shard lock").contains_key(user)
    }

    fn evict(&self, shard: &mut HashMap<UserId, UserState>, max: usize) {
        if shard.len() <= max {
            return;
        }
        let n = (shard.len() - max).max(max / 8).min(shard.len());
        let mut by_age: Vec<(u32, UserId)> = shard.iter().map(|(u, s)| (s.last_seen(), u.clone())).collect();
        by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, user) in by_age.iter().take(n) {
            if let Some(state) = shard.remove(user) {
                self.forgotten_seq.fetch_max(state.seq, Ordering::Relaxed);
            }
        }
        self.evicted.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn shard(&self, user: &UserId) -> &RwLock<HashMap<UserId, UserState>> {
        &self.shards[self.hasher.hash_one(user) as usize % SHARDS]
    }

    /// Records an event of `user`, at log sequence `seq`. Events arriving out of time order
    /// are placed by time; one older than everything kept for a full history is dropped.
    pub fn observe(&self, user: &UserId, event: OnlineEvent, seq: u64) {
        let mut shard = self.shard(user).write().expect("online shard lock");
        if !shard.contains_key(user) {
            let max = self.max_per_shard.load(Ordering::Relaxed);
            if shard.len() >= max {
                self.evict(&mut shard, max.saturating_sub(1));
            }
        }
        let state = match shard.get_mut(user) {
            Some(s) => s,
            None => shard.entry(user.clone()).or_default(),
        };
        state.seq = state.seq.max(seq);
        let at = state.events.partition_point(|e| e.ts <= event.ts);
        if at == 0 && state.events.len() >= self.capacity {
            // older than everything we keep
        } else {
            state.events.insert(at, event);
            if state.events.len() > self.capacity {
                state.events.remove(0);
            }
        }
        if event.kind == ActivityType::Rating {
            note_rated(&mut state.rated, event.item);
        }
        if event.kind == ActivityType::Purchase {
            let at = state.purchases.partition_point(|p| p.1 <= event.ts);
            state.purchases.insert(at, (event.item, event.ts));
            if state.purchases.len() > MAX_PURCHASES {
                state.purchases.remove(0);
            }
        }
    }

    /// Gives a visitor without state the `events` (any order), the latest at log sequence
    /// `seq`, atomically: nothing happens if the visitor has state by the time the shard is
    /// locked.
    pub fn hydrate(
        &self,
        user: &UserId,
        events: &[OnlineEvent],
        seq: u64,
        still_valid: impl FnOnce() -> bool,
    ) {
        let mut shard = self.shard(user).write().expect("online shard lock");
        // Checked under the lock [`Users::forget`] takes: an erasure either comes before
        // (and the history read may hold erased events) or removes what this inserts.
        if shard.contains_key(user) || !still_valid() {
            return;
        }
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|e| e.ts);
        let mut state = UserState { seq, ..Default::default() };
        for e in &sorted {
            match e.kind {
                ActivityType::Purchase => state.purchases.push((e.item, e.ts)),
                ActivityType::Rating => note_rated(&mut state.rated, e.item),
                _ => {}
            }
        }
        let keep = sorted.len().saturating_sub(self.capacity);
        state.events = sorted.split_off(keep);
        let purchases = state.purchases.len().saturating_sub(MAX_PURCHASES);
        state.purchases.drain(..purchases);
        shard.insert(user.clone(), state);
    }

    /// Forgets a visitor whose state may be stale, so that their next list reads it back from
    /// the log (counted with the evictions: both make hydration necessary); `counted` runs
    /// as for [`Users::forget`].
    pub fn forget_to_reload(&self, user: &UserId, counted: impl FnOnce()) {
        if self.remove(user, counted) {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The visitor's latest `n` events and their purchases.
    pub fn snapshot(&self, user: &UserId, n: usize) -> UserSnapshot {
        let shard = self.shard(user).read().expect("online shard lock");
        match shard.get(user) {
            Some(s) => UserSnapshot {
                events: latest(&s.events, n),
                purchases: s.purchases.clone(),
                rated: s.rated.clone(),
            },
            None => UserSnapshot::default(),
        }
    }

    /// The visitor's latest `n` events alone (no copy of the rest of their state).
    pub fn recent(&self, user: &UserId, n: usize) -> Vec<OnlineEvent> {
        let shard = self.shard(user).read().expect("online shard lock");
        shard.get(user).map_or_else(Vec::new, |s| latest(&s.events, n))
    }

    /// Forgets a deleted visitor, running `counted` first under the lock [`Users::hydrate`]
    /// checks.
    pub fn forget(&self, user: &UserId, counted: impl FnOnce()) {
        self.remove(user, counted);
    }

    /// Drops the visitor's state after `counted` ran under its shard's lock; `true` when
    /// there was state.
    fn remove(&self, user: &UserId, counted: impl FnOnce()) -> bool {
        let mut shard = self.shard(user).write().expect("online shard lock");
        counted();
        let state = shard.remove(user);
        if let Some(state) = &state {
            self.forgotten_seq.fetch_max(state.seq, Ordering::Relaxed);
        }
        state.is_some()
    }

    /// Every visitor's state, shard by shard.
    pub fn export(&self) -> Vec<(UserId, UserSnapshot)> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard.read().expect("online shard lock");
            out.extend(shard.iter().map(|(u, s)| {
                let (events, purchases, rated) = (s.events.clone(), s.purchases.clone(), s.rated.clone());
                (u.clone(), UserSnapshot { events, purchases, rated })
            }));
        }
        out
    }

    /// Gives `user` the state `snapshot` (a checkpoint being restored, taken at log sequence
    /// `seq`: the visitor's latest event is taken to be that recent), within the limit and
    /// the history capacity.
    pub fn import(&self, user: UserId, mut snapshot: UserSnapshot, seq: u64) {
        let mut shard = self.shard(&user).write().expect("online shard lock");
        if !shard.contains_key(&user) {
            let max = self.max_per_shard.load(Ordering::Relaxed);
            if shard.len() >= max {
                self.evict(&mut shard, max.saturating_sub(1));
            }
        }
        let keep = snapshot.events.len().saturating_sub(self.capacity);
        let purchases = snapshot.purchases.len().saturating_sub(MAX_PURCHASES);
        snapshot.purchases.drain(..purchases);
        let rated = snapshot.rated.len().saturating_sub(MAX_RATED);
        snapshot.rated.drain(..rated);
        let events = snapshot.events.split_off(keep);
        shard.insert(user, UserState { events, purchases: snapshot.purchases, rated: snapshot.rated, seq });
    }

    /// Counts `n` visitors forgotten before a checkpoint taken at sequence `seq` (their
    /// history is in the log, so hydration stays necessary).
    pub fn add_evicted(&self, n: u64, seq: u64) {
        self.evicted.fetch_add(n, Ordering::Relaxed);
        if n > 0 {
            self.forgotten_seq.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// The highest log sequence of the visitor's events observed (at least). For a visitor
    /// without state, who may have been forgotten with events, the highest of any visitor
    /// forgotten so far (0 when none was).
    pub fn seq(&self, user: &UserId) -> u64 {
        let shard = self.shard(user).read().expect("online shard lock");
        shard.get(user).map_or_else(|| self.forgotten_seq.load(Ordering::Relaxed), |s| s.seq)
    }

    /// A digest of every visitor's state that does not depend on the order visitors were
    /// stored in: the wrapping sum of one hash per visitor over their id and their events,
    /// purchases and rated items, with items named by `item_id` (item numbers differ between processes).
    /// Returns `(visitors, events, digest)`.
    pub fn digest<'a>(&self, item_id: impl Fn(u32) -> &'a str) -> (usize, usize, u64) {
        let (mut visitors, mut events, mut digest) = (0usize, 0usize, 0u64);
        for shard in self.shards.iter() {
            let shard = shard.read().expect("online shard lock");
            for (user, s) in shard.iter() {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                h.update(user.as_str().as_bytes());
                for e in &s.events {
                    h.update(&[0xff]);
                    h.update(item_id(e.item).as_bytes());
                    h.update(&[0]);
                    h.update(&e.ts.to_le_bytes());
                    h.update(&[e.kind as u8, e.value10]);
                }
                for (item, ts) in &s.purchases {
                    h.update(&[0xfe]);
                    h.update(item_id(*item).as_bytes());
                    h.update(&[0]);
                    h.update(&ts.to_le_bytes());
                }
                for item in &s.rated {
                    h.update(&[0xfd]);
                    h.update(item_id(*item).as_bytes());
                    h.update(&[0]);
                }
                visitors += 1;
                events += s.events.len();
                digest = digest.wrapping_add(h.digest());
            }
        }
        (visitors, events, digest)
    }

    /// Visitors with online state.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().expect("online shard lock").len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(item: u32, secs: i64, kind: ActivityType) -> OnlineEvent {
        OnlineEvent::new(item, (EPOCH_SECS + secs) * 1000, kind, None)
    }

    #[test]
    fn keeps_the_latest_events_in_time_order_and_every_purchase() {
        let users = Users::new(3);
        let u = UserId::parse("u").unwrap();
        users.observe(&u, ev(1, 10, ActivityType::Purchase), 0);
        for (i, t) in [(2, 20), (3, 40), (4, 30), (5, 50)] {
            users.observe(&u, ev(i, t, ActivityType::View), 0);
        }
        users.observe(&u, ev(9, 5, ActivityType::View), 0); // too old for a full history
        let snap = users.snapshot(&u, 10);
        assert_eq!(snap.events.iter().map(|e| e.item).collect::<Vec<_>>(), [4, 3, 5]);
        assert_eq!(snap.purchases, [(1, 10)]);
        assert_eq!(users.snapshot(&u, 1).events[0].item, 5);
        users.forget(&u, || ());
        assert_eq!(users.snapshot(&u, 10), UserSnapshot::default());
        assert!(users.is_empty());
    }

    #[test]
    fn rated_items_outlive_the_history_and_stay_bounded() {
        let users = Users::new(2);
        let u = UserId::parse("critic").unwrap();
        let rate = |item: u32, secs: i64| {
            OnlineEvent::new(item, (EPOCH_SECS + secs) * 1000, ActivityType::Rating, Some(4.0))
        };
        for i in 0..(MAX_RATED as u32 + 5) {
            users.observe(&u, rate(i, i64::from(i)), 0);
        }
        users.observe(&u, rate(7, 10_000), 0);
        let snap = users.snapshot(&u, 10);
        assert_eq!(snap.events.len(), 2, "the history keeps its capacity");
        assert_eq!(snap.rated.len(), MAX_RATED, "the earliest rated go past the bound");
        assert_eq!(snap.rated[..3], [5, 6, 8], "items 0 to 4 went first, and 7 moved to the end");
        assert_eq!(snap.rated.last(), Some(&7), "rated again: the latest");
        // Hydrated from a history, the rated items come from all of it.
        let back = UserId::parse("back").unwrap();
        users.hydrate(
            &back,
            &[rate(1, 1), rate(2, 2), ev(3, 3, ActivityType::View), ev(4, 4, ActivityType::View)],
            0,
            || true,
        );
        assert_eq!(users.snapshot(&back, 10).rated, [1, 2]);
    }

    #[test]
    fn past_the_limit_the_longest_idle_visitors_are_forgotten_first() {
        let users = Users::new(5);
        users.limit(SHARDS * 8);
        let active = UserId::parse("active").unwrap();
        for i in 0..5_000i64 {
            users.observe(&UserId::parse(&format!("idle-{i}")).unwrap(), ev(1, i, ActivityType::View), 0);
            // The active visitor acts after everyone else, all the time.
            users.observe(&active, ev(2, i + 1, ActivityType::View), 0);
        }
        assert!(users.len() <= SHARDS * 8, "{} visitors kept", users.len());
        assert!(users.evicted() >= 5_000 - (SHARDS * 8) as u64);
        assert!(users.contains(&active));
        assert_eq!(users.snapshot(&active, 10).events.len(), 5, "an active visitor keeps their history");
        // The most recent idle visitors survive; the oldest are gone.
        assert!(users.contains(&UserId::parse("idle-4999").unwrap()));
        assert!(!users.contains(&UserId::parse("idle-0").unwrap()));
    }

    #[test]
    fn hydration_fills_only_an_absent_visitor_and_keeps_the_latest() {
        let users = Users::new(3);
        let u = UserId::parse("u").unwrap();
        let history = [
            ev(1, 10, ActivityType::Purchase),
            ev(2, 30, ActivityType::View),
            ev(3, 20, ActivityType::View),
            ev(4, 40, ActivityType::View),
        ];
        users.hydrate(&u, &history, 0, || true);
        let snap = users.snapshot(&u, 10);
        assert_eq!(
            snap.events.iter().map(|e| e.item).collect::<Vec<_>>(),
            [3, 2, 4],
            "the latest, in time order"
        );
        assert_eq!(snap.purchases, [(1, 10)]);
        users.hydrate(&u, &[ev(9, 50, ActivityType::View)], 0, || true);
        assert_eq!(users.snapshot(&u, 10).events.len(), 3, "a visitor with state is left alone");
        users.forget_to_reload(&u, || {});
        assert!(!users.contains(&u) && users.evicted() == 1);
        users.hydrate(&u, &history, 0, || false);
        assert!(!users.contains(&u), "a history read before an erasure is not inserted");
    }

    #[test]
    fn ratings_keep_their_value() {
        let e = OnlineEvent::new(1, 1_700_000_000_000, ActivityType::Rating, Some(4.5));
        assert_eq!(e.value(), Some(4.5));
        assert_eq!(OnlineEvent::new(1, 0, ActivityType::View, None).ts, 0);
    }
}
