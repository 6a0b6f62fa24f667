//! The engine's online state follows the event log.
//!
//! The log is the truth: the online state (visitors' recent events, live popularity, live
//! co-visitation) is built from the log in log order, and [`Follower::applied`] says up to
//! which sequence. One task, and only it, applies the log to the engine: at start-up by
//! reading it ([`Follower::replay`]), then from the commits the log tells of as they happen
//! ([`EventLog::on_commit`](vitrina_core::ports::EventLog::on_commit)), each applied once
//! what it follows is applied. The feed is a hint: the follower reads the log after what it
//! applied whenever a commit heard does not follow it (one was not told, or the events
//! between were erased), when the feed overflowed, on a nudge when the backend has no feed,
//! and once every [`POLL`] regardless (events another process appended). The write path
//! appends, then waits until its events are applied ([`Follower::wait_for`]), so a visitor's
//! next list reflects what was acknowledged.
//!
//! The log's numbering must never make a higher sequence visible before a lower one (SQLite
//! has one writer; the PostgreSQL store numbers under a lock held to commit, ADR 0008): the
//! follower reads "everything after what I applied" and would otherwise skip an event.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch, Notify},
    task::{JoinHandle, JoinSet},
    time::Instant,
};
use vitrina_bus::nats::Broker;
use vitrina_core::{
    ports::{CommitListener, Committed, EventLog, StoreResult},
    LogEvent, UserId,
};
use vitrina_engine::Engine;

use crate::{checkpoints::Checkpoints, ports::Ports};

/// The follower reads the log this often whatever it heard.
pub const POLL: Duration = Duration::from_secs(1);
/// How long a write waits for the follower to apply its events before it answers anyway (its
/// events are durable; only the visitor's next list may not show them yet).
pub const APPLY_WAIT: Duration = Duration::from_secs(5);
/// For this long after a write waited in vain, the engine reports itself unhealthy.
pub const UNHEALTHY_AFTER_TIMEOUT: Duration = Duration::from_secs(60);
/// Events read per page while following: the largest batch the API takes, so a batch is
/// usually applied in one step.
const LIVE_PAGE: usize = 10_000;
/// Events read per page at start-up.
const REPLAY_PAGE: usize = 50_000;
/// Events told by the log and not yet taken by the follower, at most; past it commits are
/// not told but read from the log, so a follower slower than the writer holds no more.
const MAX_HEARD: usize = 100_000;
/// Returning visitors whose history is read back at once.
const HYDRATIONS: usize = 8;
/// How long a commit heard from the broker that does not follow what is applied waits for
/// the ones before it before the follower reads the log instead.
const GRACE: Duration = Duration::from_millis(20);
/// After a failed read, the follower tries again this much later.
const RETRY: Duration = Duration::from_millis(200);

/// Applies the event log to the engine, in log order, and says how far it got.
pub struct Follower {
    ports: Ports,
    engine: Arc<Engine>,
    applied: watch::Sender<u64>,
    wake: Notify,
    /// When a write last waited in vain.
    timed_out: Mutex<Option<Instant>>,
    /// [`APPLY_WAIT`] and [`UNHEALTHY_AFTER_TIMEOUT`] (shorter in tests).
    apply_wait: Duration,
    unhealthy_for: Duration,
    /// Where the online state is checkpointed, if it is.
    checkpoints: Option<Arc<Checkpoints>>,
    /// Asks the follower to take a last checkpoint and stop.
    stop: Notify,
    /// Asks for a read of the log now, feed or not (a reader waits for a visitor's event).
    urge: Notify,
    /// Where commits are heard: the broker (an api replica), else the log's own feed.
    broker: Option<Arc<Broker>>,
    /// Visitors erased through another process: their events up to the sequence are not
    /// applied (a broker may deliver a commit after the erasure), until the instant.
    tombstones: Mutex<std::collections::HashMap<UserId, (u64, Instant)>>,
    /// Held while a batch is applied: [`Follower::between_batches`] takes it to read the
    /// engine at rest.
    applying: tokio::sync::Mutex<()>,
}

/// How long an erased visitor's tombstone is kept: longer than the broker keeps messages.
const TOMBSTONE_FOR: Duration = Duration::from_secs(900);

/// What the log tells the follower.
enum Heard {
    /// A commit, with the engine's erasure count when it was told (see [`Engine::settle`]).
    Commit(u64, Committed),
    /// A commit was not told (too many waiting): read the log.
    Overflow,
}

/// The log's commit feed as the follower takes it.
struct Feed {
    rx: mpsc::UnboundedReceiver<Heard>,
    /// Events told and not taken yet.
    queued: Arc<AtomicUsize>,
    /// The broker's consumer feeding it, stopped with the feed.
    _consumer: Option<AbortOnDrop>,
}

impl Feed {
    fn taken(&self, heard: Option<Heard>) -> Option<Heard> {
        if let Some(Heard::Commit(_, c)) = &heard {
            self.queued.fetch_sub(c.events.len(), Ordering::Relaxed);
        }
        heard
    }

    async fn recv(&mut self) -> Option<Heard> {
        let heard = self.rx.recv().await;
        self.taken(heard)
    }

    fn try_recv(&mut self) -> Option<Heard> {
        let heard = self.rx.try_recv().ok();
        self.taken(heard)
    }
}

/// A commit heard and not applied yet: when it was heard, the erasure count, the commit.
type Waiting = (Instant, u64, Committed);

/// Aborts the task when dropped (the supervisor's own abort reaches the follower).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Follower {
    /// A follower of `ports.log` that has applied nothing yet.
    pub fn new(ports: Ports, engine: Arc<Engine>) -> Arc<Self> {
        Self::checkpointed(ports, engine, None, None)
    }

    /// A follower that restores the online state from `checkpoints` at start-up and takes
    /// them as it goes. With a `broker` it hears commits from it, where the activity
    /// processes publish them, instead of from the log's own feed.
    pub fn checkpointed(
        ports: Ports,
        engine: Arc<Engine>,
        checkpoints: Option<Arc<Checkpoints>>,
        broker: Option<Arc<Broker>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            ports,
            engine,
            applied: watch::Sender::new(0),
            wake: Notify::new(),
            timed_out: Mutex::new(None),
            apply_wait: APPLY_WAIT,
            unhealthy_for: UNHEALTHY_AFTER_TIMEOUT,
            checkpoints,
            stop: Notify::new(),
            urge: Notify::new(),
            broker,
            tombstones: Mutex::new(Default::default()),
            applying: tokio::sync::Mutex::new(()),
        })
    }

    /// The checkpoints of the online state, if it is checkpointed.
    pub fn checkpoints(&self) -> Option<&Arc<Checkpoints>> {
        self.checkpoints.as_ref()
    }

    /// Asks the running follower to checkpoint what it applied and stop; the task
    /// [`Follower::spawn`] returned ends once the checkpoint is written.
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// The sequence up to which the engine's online state holds the log.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Runs `read` of the engine (blocking) between two applied batches, holding the next
    /// one back meanwhile; returns the sequence applied and what it read.
    pub async fn between_batches<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(u64, T), tokio::task::JoinError> {
        let _at_rest = self.applying.lock().await;
        let applied = self.applied();
        Ok((applied, tokio::task::spawn_blocking(read).await?))
    }

    /// `Err` with the reason while a write waited in vain within [`UNHEALTHY_AFTER_TIMEOUT`].
    pub fn health(&self) -> Result<(), String> {
        match *self.timed_out.lock().expect("follower health lock") {
            Some(at) if at.elapsed() < self.unhealthy_for => Err(format!(
                "the engine fell behind the event log: an acknowledged event was not applied within {} s, {} s ago (applied up to sequence {})",
                self.apply_wait.as_secs(),
                at.elapsed().as_secs(),
                self.applied()
            )),
            _ => Ok(()),
        }
    }

    /// New events were committed here: a follower without a feed of this process's commits
    /// (none, or the broker's, a round trip away) reads them now rather than later.
    pub fn nudge(&self) {
        if self.broker.is_some() {
            self.urge.notify_one();
        } else {
            self.wake.notify_one();
        }
    }

    /// The visitor was erased by another process: none of their events up to `through` is
    /// applied from now on (see [`TOMBSTONE_FOR`]).
    pub fn erased(&self, user: &UserId, through: u64) {
        let mut tombstones = self.tombstones.lock().expect("tombstones lock");
        let now = Instant::now();
        tombstones.retain(|_, (_, until)| *until > now);
        // Told out of order, a lower `through` must not reopen what a higher one closed.
        let kept = tombstones.get(user).map_or(0, |(t, _)| *t);
        tombstones.insert(user.clone(), (through.max(kept), now + TOMBSTONE_FOR));
    }

    /// A reader waited in vain for the follower: the engine reports itself unhealthy for a
    /// while, as when a write did.
    pub fn fell_behind(&self) {
        *self.timed_out.lock().expect("follower health lock") = Some(Instant::now());
    }

    /// Reads the log now rather than at the next poll, whatever the feed told.
    pub fn read_now(&self) {
        self.urge.notify_one();
    }

    /// Waits until the events up to `seq` are applied, at most `bound`. `false` when the
    /// wait ran out.
    pub async fn wait_until(&self, seq: u64, bound: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(bound, applied.wait_for(|&a| a >= seq)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Waits until the events up to `seq` are applied, at most [`APPLY_WAIT`]. `false` when
    /// the wait ran out.
    pub async fn wait_for(&self, seq: u64) -> bool {
        if !self.wait_until(seq, self.apply_wait).await {
            metrics::counter!("vitrina_follower_wait_timeouts_total").increment(1);
            self.fell_behind();
            tracing::warn!(
                seq,
                applied = self.applied(),
                "the engine has not applied an acknowledged event yet"
            );
            return false;
        }
        true
    }

    /// Restores the checkpoint, if there is a usable one, and applies the log after it
    /// (start-up, before serving). Returns how many events were read from the log.
    pub async fn replay(&self) -> StoreResult<u64> {
        let started = std::time::Instant::now();
        if let Some(checkpoints) = &self.checkpoints {
            let head = self.ports.log.stats().await?.max_seq;
            self.applied.send_replace(checkpoints.restore(head).await?);
        }
        let mut n = 0u64;
        loop {
            let applied = self.step(REPLAY_PAGE, false).await? as u64;
            if applied == 0 {
                break;
            }
            if n / 1_000_000 != (n + applied) / 1_000_000 {
                tracing::info!(events = n + applied, "replaying the event log");
            }
            n += applied;
        }
        tracing::info!(
            events = n,
            applied = self.applied(),
            seconds = started.elapsed().as_secs_f64(),
            "event log replayed into the engine"
        );
        Ok(n)
    }

    /// Follows the log until aborted. A follower that panicked (a bug) is logged and started
    /// again from what it had applied (the events of the step it broke off may count twice).
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let (follower, feed) = (me.clone(), me.listen());
                let mut run = AbortOnDrop(tokio::spawn(async move { follower.follow(feed).await }));
                match (&mut run.0).await {
                    Err(e) if e.is_panic() => {
                        metrics::counter!("vitrina_follower_restarts_total").increment(1);
                        tracing::error!(
                            applied = me.applied(),
                            "the event log follower panicked; starting it again"
                        );
                    }
                    _ => return,
                }
            }
        })
    }

    /// Registers with the broker or the log's commit feed, if there is one.
    fn listen(&self) -> Option<Feed> {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (engine, count) = (self.engine.clone(), queued.clone());
        let listener: CommitListener = Box::new(move |c| {
            let n = c.events.len();
            if count.fetch_add(n, Ordering::Relaxed) + n > MAX_HEARD {
                count.fetch_sub(n, Ordering::Relaxed);
                let _ = tx.send(Heard::Overflow);
            } else {
                let _ = tx.send(Heard::Commit(engine.erasures(), c));
            }
        });
        match &self.broker {
            Some(broker) => {
                let consumer = AbortOnDrop(broker.follow_commits(listener));
                Some(Feed { rx, queued, _consumer: Some(consumer) })
            }
            None => self.ports.log.on_commit(listener).then_some(Feed { rx, queued, _consumer: None }),
        }
    }

    async fn follow(&self, mut feed: Option<Feed>) {
        // Commits heard that do not follow what is applied yet, by the head they follow.
        let mut waiting: BTreeMap<u64, Waiting> = BTreeMap::new();
        let mut next_read = Instant::now();
        let mut read = true;
        let mut read_ok = true;
        loop {
            if read {
                let started = Instant::now();
                read_ok = self.catch_up().await;
                next_read = Instant::now() + if read_ok { POLL } else { RETRY };
                if read_ok {
                    // Told before the read and still not following what is applied: the
                    // events before them, and theirs, were erased (the read saw the rest).
                    waiting.retain(|_, (heard, ..)| *heard > started);
                }
                read = false;
            }
            while let Some(entry) = waiting.first_entry() {
                let after = self.applied();
                if *entry.key() > after {
                    break;
                }
                let (_, erasures, c) = entry.remove();
                let events: Vec<LogEvent> = c.events.into_iter().filter(|e| e.seq > after).collect();
                if !events.is_empty() {
                    self.apply(after, events, erasures, true).await;
                }
            }
            // Between two steps: the engine holds exactly the log up to `applied`.
            if let Some(checkpoints) = self.checkpoints.as_ref().filter(|c| c.due(self.applied())) {
                checkpoints.take(self.applied()).await;
            }
            // The log's own feed keeps commit order: a commit that does not follow will not be
            // preceded by one told later, so the log is read at once. The broker's may come
            // out of order (several activity processes): the missing one gets [`GRACE`].
            let deadline = match waiting.values().map(|(heard, ..)| *heard).min() {
                Some(_) if !read_ok => next_read,
                Some(first) if self.broker.is_some() => (first + GRACE).min(next_read),
                Some(_) => Instant::now(),
                None => next_read,
            };
            let fed = feed.is_some();
            let heard = async {
                match feed.as_mut() {
                    Some(f) => f.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                heard = heard => match heard {
                    Some(heard) => read |= hear(&mut waiting, heard),
                    None => feed = None,
                },
                _ = self.wake.notified(), if !fed => read = true,
                _ = self.urge.notified() => read = true,
                _ = tokio::time::sleep_until(deadline) => read = true,
                _ = self.stop.notified() => {
                    // Between two steps: the engine holds exactly the log up to `applied`.
                    let applied = self.applied();
                    if let Some(c) = self.checkpoints.as_ref().filter(|c| c.due_at_stop(applied)) {
                        let _ = c.take(applied).await.await;
                    }
                    return;
                }
            }
            if let Some(f) = feed.as_mut() {
                while let Some(heard) = f.try_recv() {
                    read |= hear(&mut waiting, heard);
                }
            }
        }
    }

    /// Reads and applies the log after what is applied, to its end. `false` when a read failed.
    async fn catch_up(&self) -> bool {
        loop {
            match self.step(LIVE_PAGE, true).await {
                Ok(n) if n == LIVE_PAGE => continue,
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, applied = self.applied(), "reading the event log failed; retrying");
                    return false;
                }
            }
        }
    }

    /// Gives a visitor without online state their history back (after they were forgotten
    /// to stay within the limit), up to what is applied: later events reach them through the
    /// follower.
    pub async fn hydrate(&self, user: &UserId) -> StoreResult<()> {
        hydrate(self.ports.log.clone(), self.engine.clone(), user.clone(), self.applied()).await
    }

    /// Reads one page after what is applied and applies it; returns its length.
    async fn step(&self, page_size: usize, live: bool) -> StoreResult<usize> {
        let erasures = self.engine.erasures();
        let after = self.applied();
        let page = self.ports.log.scan(after, page_size).await?;
        let n = page.len();
        if n > 0 {
            self.apply(after, page, erasures, live).await;
        }
        Ok(n)
    }

    /// Applies `events` (non-empty, in log order, the log's next after `after`), read or
    /// heard with the engine's erasure count at `erasures`. `live`: visitors forgotten
    /// earlier get their history back first, and their lists in the in-process cache are
    /// dropped after (the shared cache's were dropped on acknowledgement).
    async fn apply(&self, after: u64, mut events: Vec<LogEvent>, erasures: u64, live: bool) {
        let Some(last) = events.last().map(|e| e.seq) else { return };
        let _applying = self.applying.lock().await;
        {
            let tombstones = self.tombstones.lock().expect("tombstones lock");
            if !tombstones.is_empty() {
                events.retain(|e| tombstones.get(&e.user_id).is_none_or(|(through, _)| e.seq > *through));
            }
        }
        let users: HashSet<UserId> =
            if live { events.iter().map(|e| e.user_id.clone()).collect() } else { HashSet::new() };
        if self.engine.may_need_hydration() {
            self.hydrate_all(&users, after).await;
        }
        if live {
            // On the async worker and without a pause until `settle`: a list computed in
            // between could otherwise show events of a visitor erased meanwhile.
            events.iter().for_each(|e| self.engine.observe(e));
        } else {
            let engine = self.engine.clone();
            if let Err(e) =
                tokio::task::spawn_blocking(move || events.iter().for_each(|e| engine.observe(e))).await
            {
                // A bug, not a state of the log: applying the events again would count some
                // of them twice, so the follower moves on.
                tracing::error!(error = %e, after, last, "applying events of the log failed");
            }
        }
        // An erasure after the events were read or told may have left the erased visitor's
        // events in them.
        self.engine.settle(erasures, users.iter());
        if !self.ports.cache.dropped_on_acknowledgement() {
            let users: Vec<UserId> = users.into_iter().collect();
            self.ports.cache.invalidate_users(&users, last).await;
        }
        self.applied.send_replace(last);
        metrics::gauge!("vitrina_follower_applied_sequence").set(last as f64);
    }

    /// Reads back the history up to `after` of the visitors among `users` the engine does
    /// not know, [`HYDRATIONS`] at a time.
    async fn hydrate_all(&self, users: &HashSet<UserId>, after: u64) {
        let mut unknown = users.iter().filter(|u| !self.engine.knows(u));
        let mut running = JoinSet::new();
        loop {
            while running.len() < HYDRATIONS {
                let Some(user) = unknown.next() else { break };
                running.spawn(hydrate(self.ports.log.clone(), self.engine.clone(), user.clone(), after));
            }
            match running.join_next().await {
                Some(Ok(Err(e))) => {
                    // Their list is built from the new events alone until they are forgotten
                    // again; the events themselves are applied.
                    tracing::warn!(error = %e, "reading a returning visitor's history failed");
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}

/// Files a heard commit; `true` when the log must be read.
fn hear(waiting: &mut BTreeMap<u64, Waiting>, heard: Heard) -> bool {
    match heard {
        Heard::Commit(erasures, c) => {
            waiting.insert(c.after, (Instant::now(), erasures, c));
            false
        }
        Heard::Overflow => true,
    }
}

/// Gives `user`, if the engine does not know them, their history up to `upto` back.
async fn hydrate(log: Arc<dyn EventLog>, engine: Arc<Engine>, user: UserId, upto: u64) -> StoreResult<()> {
    if !engine.may_need_hydration() || engine.knows(&user) {
        return Ok(());
    }
    let erasures = engine.erasures();
    // The recent window ranking reads, and enough before it for the rated items the online
    // state keeps over the whole history.
    let limit = engine.ranking().history_events.max(vitrina_engine::online::MAX_RATED);
    let history = log.recent_for_user(&user, limit).await?;
    let events: Vec<LogEvent> = history.iter().filter(|e| e.seq <= upto).map(LogEvent::from).collect();
    engine.hydrate(&user, &events, erasures);
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vitrina_core::{ActivityInput, NewActivity};
    use vitrina_engine::RankingConfig;

    use super::*;
    use crate::ports::TestStore;

    struct Fixture {
        _store: TestStore,
        ports: Ports,
        engine: Arc<Engine>,
        follower: Arc<Follower>,
    }

    async fn fixture() -> Fixture {
        let store = TestStore::new().await;
        let ports = store.ports.clone();
        let engine = Arc::new(Engine::new(Vec::new(), RankingConfig::default()));
        let follower = Follower::new(ports.clone(), engine.clone());
        Fixture { _store: store, ports, engine, follower }
    }

    /// A view of `product` by `user` at second `t`.
    fn view(user: &str, product: &str, t: i64) -> NewActivity {
        let at = Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap();
        NewActivity::validate(
            ActivityInput {
                user_id: Some(user.into()),
                activity_type: Some("view".into()),
                product_id: Some(product.into()),
                timestamp: Some(at.to_rfc3339().into()),
                ..Default::default()
            },
            at,
        )
        .unwrap()
    }

    async fn append(f: &Fixture, events: Vec<NewActivity>) -> u64 {
        let outcomes = f.ports.log.append(events).await.unwrap();
        outcomes
            .iter()
            .map(|o| if let vitrina_core::ports::AppendOutcome::Stored(s) = o { s.seq } else { 0 })
            .max()
            .unwrap()
    }

    /// `user` with two events applied, then forgotten to stay within a limit of one visitor
    /// per shard (every later visitor is more recent).
    async fn evicted(f: &Fixture, user: &UserId) {
        f.engine.limit_visitors(1);
        append(f, vec![view(user.as_str(), "p1", 1), view(user.as_str(), "p2", 2)]).await;
        f.follower.replay().await.unwrap();
        assert_eq!(f.engine.online_events(user), 2);
        let others = (0..2000).map(|i| view(&format!("other-{i}"), "p3", 100 + i)).collect();
        append(f, others).await;
        f.follower.replay().await.unwrap();
        assert!(!f.engine.knows(user), "the fixture should have evicted {user}");
    }

    /// What the store's writer tells the follower of a commit.
    fn heard(outcomes: &[vitrina_core::ports::AppendOutcome], after: u64) -> Heard {
        let events = outcomes
            .iter()
            .filter_map(|o| {
                if let vitrina_core::ports::AppendOutcome::Stored(s) = o {
                    Some(LogEvent::from(s))
                } else {
                    None
                }
            })
            .collect();
        Heard::Commit(0, Committed { after, events })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reading_between_batches_never_sees_half_a_batch() {
        let f = fixture().await;
        let task = f.follower.spawn();
        // Batches of two events of two new visitors each, applied while readings are taken:
        // every reading holds exactly the visitors of the batches it says were applied.
        let writer = {
            let log = f.ports.log.clone();
            tokio::spawn(async move {
                for b in 0..150 {
                    let batch = vec![view(&format!("a{b}"), "p1", b), view(&format!("b{b}"), "p2", b)];
                    log.append(batch).await.unwrap();
                }
            })
        };
        let mut readings = 0;
        loop {
            let engine = f.engine.clone();
            let (applied, digest) = f.follower.between_batches(move || engine.digest()).await.unwrap();
            assert_eq!(digest.visitors as u64, applied, "a reading at {applied}");
            readings += 1;
            if writer.is_finished() && applied == f.ports.log.stats().await.unwrap().max_seq {
                break;
            }
        }
        assert!(readings > 1);
        writer.await.unwrap();
        task.abort();
    }

    #[tokio::test]
    async fn commits_reach_the_engine_in_log_order() {
        let f = fixture().await;
        let task = f.follower.spawn();
        let seq = append(&f, vec![view("u1", "p1", 1), view("u1", "p2", 2), view("u2", "p1", 3)]).await;
        assert!(f.follower.wait_for(seq).await, "the store's feed should have brought the events");
        assert_eq!(f.follower.applied(), seq);
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 2);
        assert_eq!(f.engine.online_events(&UserId::parse("u2").unwrap()), 1);
        task.abort();
    }

    #[tokio::test]
    async fn a_commit_missing_from_the_feed_is_read_from_the_log_and_none_counts_twice() {
        let f = fixture().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let me = f.follower.clone();
        let task = tokio::spawn(async move {
            me.follow(Some(Feed { rx, queued: Arc::new(AtomicUsize::new(100)), _consumer: None })).await
        });
        // Two commits; the feed tells only of the second (twice), so it cannot be applied
        // before the first is read from the log.
        let first = f.ports.log.append(vec![view("u1", "p1", 1)]).await.unwrap();
        let head = match &first[0] {
            vitrina_core::ports::AppendOutcome::Stored(s) => s.seq,
            other => panic!("{other:?}"),
        };
        let second = f.ports.log.append(vec![view("u1", "p2", 2), view("u1", "p3", 3)]).await.unwrap();
        tx.send(heard(&second, head)).unwrap();
        tx.send(heard(&second, head)).unwrap();
        assert!(f.follower.wait_for(head + 2).await);
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 3);
        // A commit heard after it was read changes nothing.
        tx.send(heard(&first, 0)).unwrap();
        tx.send(heard(&second, head)).unwrap();
        let third = f.ports.log.append(vec![view("u2", "p1", 4)]).await.unwrap();
        tx.send(heard(&third, head + 2)).unwrap();
        assert!(f.follower.wait_for(head + 3).await);
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 3);
        assert_eq!(f.engine.online_events(&UserId::parse("u2").unwrap()), 1);
        task.abort();
    }

    /// The store's log, counting the follower's reads.
    /// A log that counts its reads and fails the first `.2` of them.
    struct Counted(Arc<dyn EventLog>, AtomicUsize, usize);

    #[async_trait::async_trait]
    impl EventLog for Counted {
        async fn append(
            &self,
            batch: Vec<NewActivity>,
        ) -> StoreResult<Vec<vitrina_core::ports::AppendOutcome>> {
            self.0.append(batch).await
        }
        async fn recent_for_user(
            &self,
            user: &UserId,
            limit: usize,
        ) -> StoreResult<Vec<vitrina_core::StoredActivity>> {
            self.0.recent_for_user(user, limit).await
        }
        async fn user_events_since(
            &self,
            user: &UserId,
            since: chrono::DateTime<Utc>,
        ) -> StoreResult<Vec<vitrina_core::StoredActivity>> {
            self.0.user_events_since(user, since).await
        }
        async fn page(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<vitrina_core::StoredActivity>> {
            self.0.page(after_seq, limit).await
        }
        async fn scan(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<LogEvent>> {
            if self.1.fetch_add(1, Ordering::SeqCst) < self.2 {
                return Err(vitrina_core::ports::StoreError::Unavailable("the test fails this read".into()));
            }
            self.0.scan(after_seq, limit).await
        }
        async fn stats(&self) -> StoreResult<vitrina_core::ports::LogStats> {
            self.0.stats().await
        }
        async fn delete_events(&self, user: &UserId, seqs: &[u64]) -> StoreResult<u64> {
            self.0.delete_events(user, seqs).await
        }
    }

    #[tokio::test]
    async fn a_failed_read_is_retried_until_the_log_answers() {
        let f = fixture().await;
        let log = Arc::new(Counted(f.ports.log.clone(), AtomicUsize::new(0), 3));
        let follower = Follower::new(Ports { log: log.clone(), ..f.ports.clone() }, f.engine.clone());
        let task = follower.spawn();
        let seq = append(&f, vec![view("u1", "p1", 1)]).await;
        follower.nudge();
        assert!(follower.wait_for(seq).await, "applied once the log answered");
        assert!(log.1.load(Ordering::SeqCst) >= 4, "three failed reads, then one that answered");
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 1);
        task.abort();
    }

    #[tokio::test]
    async fn a_gap_that_no_read_can_close_is_dropped_not_read_over_and_over() {
        let f = fixture().await;
        let log = Arc::new(Counted(f.ports.log.clone(), AtomicUsize::new(0), 0));
        let ports = Ports { log: log.clone(), ..f.ports.clone() };
        let follower = Follower::new(ports, f.engine.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let me = follower.clone();
        let task = tokio::spawn(async move {
            me.follow(Some(Feed { rx, queued: Arc::new(AtomicUsize::new(100)), _consumer: None })).await
        });
        // Told of a commit after sequence 50 that the log does not hold (its events and those
        // before were erased): a read finds nothing and the follower must let it go.
        let phantom = LogEvent {
            seq: 51,
            ..LogEvent::from(
                &f.ports
                    .log
                    .append(vec![view("x", "p1", 0)])
                    .await
                    .unwrap()
                    .pop()
                    .map(|o| match o {
                        vitrina_core::ports::AppendOutcome::Stored(s) => s,
                        other => panic!("{other:?}"),
                    })
                    .unwrap(),
            )
        };
        tx.send(Heard::Commit(0, Committed { after: 50, events: vec![phantom] })).unwrap();
        assert!(follower.wait_for(1).await, "the read the gap caused applied sequence 1");
        // An observation window, not a synchronisation: a follower that kept reading would
        // make thousands of reads in it; this one reads once more at most (the poll).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reads = log.1.load(Ordering::SeqCst);
        assert!(reads <= 8, "{reads} reads of the log for one gap");
        assert_eq!(f.engine.online_events(&UserId::parse("x").unwrap()), 1);
        task.abort();
    }

    #[tokio::test]
    async fn a_lower_tombstone_told_later_does_not_reopen_a_higher_one() {
        let f = fixture().await;
        let seq = append(&f, vec![view("u1", "p1", 1), view("u1", "p2", 2), view("u2", "p1", 3)]).await;
        let (u1, u2) = (UserId::parse("u1").unwrap(), UserId::parse("u2").unwrap());
        // Told out of order: a deletion through sequence 2, then an older one through 1.
        f.follower.erased(&u1, 2);
        f.follower.erased(&u1, 1);
        let me = f.follower.clone();
        let task = tokio::spawn(async move { me.follow(None).await });
        f.follower.nudge();
        assert!(f.follower.wait_for(seq).await);
        assert_eq!(f.engine.online_events(&u1), 0, "neither of u1's events is applied");
        assert_eq!(f.engine.online_events(&u2), 1);
        task.abort();
    }

    #[tokio::test]
    async fn without_a_feed_a_nudge_makes_the_follower_read_the_log() {
        let f = fixture().await;
        let me = f.follower.clone();
        let task = tokio::spawn(async move { me.follow(None).await });
        let seq = append(&f, vec![view("u1", "p1", 1)]).await;
        f.follower.nudge();
        assert!(f.follower.wait_for(seq).await);
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 1);
        task.abort();
    }

    #[tokio::test]
    async fn a_write_that_waits_in_vain_makes_the_engine_unhealthy_for_a_while() {
        let f = fixture().await;
        let follower = Arc::new(Follower {
            apply_wait: Duration::from_millis(1),
            ..Arc::into_inner(Follower::new(f.ports.clone(), f.engine.clone())).unwrap()
        });
        assert!(follower.health().is_ok());
        assert!(!follower.wait_for(7).await, "nothing applies sequence 7");
        let why = follower.health().unwrap_err();
        assert!(why.contains("fell behind the event log"), "{why}");
        let long_ago = Instant::now() - UNHEALTHY_AFTER_TIMEOUT;
        *follower.timed_out.lock().unwrap() = Some(long_ago);
        assert!(follower.health().is_ok(), "healthy again once the window passed");
    }

    #[tokio::test]
    async fn the_write_path_returns_once_its_events_are_applied() {
        let f = fixture().await;
        let task = f.follower.spawn();
        let (attributor, _) = crate::attribution::Attributor::spawn(f.ports.clone());
        let outcomes = crate::ingest::ingest_into(
            &f.ports,
            Some(&f.follower),
            &crate::cluster::Cluster::embedded(),
            &attributor,
            vec![view("u1", "p1", 1)],
            chrono::Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(outcomes.len(), 1);
        assert_eq!(f.engine.online_events(&UserId::parse("u1").unwrap()), 1, "read-your-writes");
        task.abort();
    }

    #[tokio::test]
    async fn a_list_request_hydrates_only_what_is_applied_so_no_event_counts_twice() {
        let f = fixture().await;
        let user = UserId::parse("returning").unwrap();
        evicted(&f, &user).await;
        // Committed but not applied yet: the follower brings it, hydration must not.
        append(&f, vec![view(user.as_str(), "p4", 5000)]).await;
        f.follower.hydrate(&user).await.unwrap();
        assert_eq!(f.engine.online_events(&user), 2);
        f.follower.replay().await.unwrap();
        assert_eq!(f.engine.online_events(&user), 3);
    }

    #[tokio::test]
    async fn a_returning_visitor_gets_their_history_back_before_their_new_events() {
        let f = fixture().await;
        let user = UserId::parse("returning").unwrap();
        evicted(&f, &user).await;
        let seq = append(&f, vec![view(user.as_str(), "p4", 5000), view(user.as_str(), "p5", 5001)]).await;
        assert_eq!(f.follower.step(LIVE_PAGE, true).await.unwrap(), 2);
        assert_eq!(f.follower.applied(), seq);
        assert_eq!(f.engine.online_events(&user), 4);
    }

    #[tokio::test]
    async fn events_of_a_visitor_erased_elsewhere_up_to_the_erasure_are_not_applied() {
        let f = fixture().await;
        f.ports
            .log
            .append(vec![view("u1", "p1", 1), view("u1", "p2", 2), view("u2", "p1", 3)])
            .await
            .unwrap();
        // Another process erased u1 when the log's head was 2 (a broker may still deliver
        // their commit); u1 came back afterwards.
        f.follower.erased(&UserId::parse("u1").unwrap(), 2);
        f.ports.log.append(vec![view("u1", "p3", 4)]).await.unwrap();
        f.follower.replay().await.unwrap();
        assert_eq!(f.follower.applied(), 4);
        assert_eq!(
            f.engine.online_events(&UserId::parse("u1").unwrap()),
            1,
            "only the event after the erasure"
        );
        assert_eq!(f.engine.online_events(&UserId::parse("u2").unwrap()), 1);
    }
}
