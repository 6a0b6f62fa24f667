//! The engine's online state follows the event log.
//!
//! The log is the truth: the online state (visitors' recent events, live popularity, live
//! co-visitation) is what the log holds up to a sequence, and [`Follower::applied`] says
//! which. One task, and only it, applies the log to the engine, in log order: at start-up by
//! reading it ([`Follower::replay`]), then from the commits the log tells of as they happen
//! ([`EventLog::on_commit`](vitrina_core::ports::EventLog::on_commit)), each applied once
//! what it follows is applied. Whenever that feed is missing (a backend without one), has a
//! gap for [`GAP_WAIT`], or is quiet for [`POLL`] (events another process appended), the
//! follower reads the log after what it applied. The write path appends, then waits until
//! its events are applied ([`Follower::wait_for`]), so a visitor's next list reflects what
//! was acknowledged.
//!
//! The log's numbering must never make a higher sequence visible before a lower one (SQLite
//! has one writer; the PostgreSQL store numbers under a lock held to commit, ADR 0008): the
//! follower reads "everything after what I applied" and would otherwise skip an event.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch, Notify},
    task::JoinHandle,
    time::Instant,
};
use vitrina_core::{
    ports::{Committed, StoreResult},
    LogEvent, UserId,
};
use vitrina_engine::Engine;

use crate::ports::Ports;

/// Without news, the follower reads the log for new events this often.
pub const POLL: Duration = Duration::from_secs(1);
/// A commit the log told of that does not follow what is applied waits this long for the
/// commits before it; then the follower reads the log.
pub const GAP_WAIT: Duration = Duration::from_millis(50);
/// How long a write waits for the follower to apply its events before it answers anyway (its
/// events are durable; only the visitor's next list may not show them yet).
pub const APPLY_WAIT: Duration = Duration::from_secs(5);
/// Events read per page while following: the largest batch the API takes, so a batch is
/// usually applied in one step.
const LIVE_PAGE: usize = 10_000;
/// Events read per page at start-up.
const REPLAY_PAGE: usize = 50_000;
/// While following, events are applied this many at a time, letting other tasks run between.
const LIVE_SLICE: usize = 1024;
/// After a failed read, the follower tries again this much later.
const RETRY: Duration = Duration::from_millis(200);

/// Applies the event log to the engine, in log order, and says how far it got.
pub struct Follower {
    ports: Ports,
    engine: Arc<Engine>,
    applied: watch::Sender<u64>,
    wake: Notify,
}

/// A commit the log told of, with the engine's erasure count at the time (see
/// [`Engine::settle`]).
type Heard = (u64, Committed);

impl Follower {
    /// A follower of `ports.log` that has applied nothing yet.
    pub fn new(ports: Ports, engine: Arc<Engine>) -> Arc<Self> {
        Arc::new(Self { ports, engine, applied: watch::Sender::new(0), wake: Notify::new() })
    }

    /// The sequence up to which the engine's online state holds the log.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// New events were committed: a follower without a feed reads them now rather than at
    /// the next poll.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Waits until the events up to `seq` are applied, at most [`APPLY_WAIT`]. `false` when
    /// the wait ran out.
    pub async fn wait_for(&self, seq: u64) -> bool {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|&a| a >= seq)).await;
        if !matches!(reached, Ok(Ok(_))) {
            metrics::counter!("vitrina_follower_wait_timeouts_total").increment(1);
            tracing::warn!(
                seq,
                applied = self.applied(),
                "the engine has not applied an acknowledged event yet"
            );
            return false;
        }
        true
    }

    /// Applies the whole log (start-up, before serving). Returns how many events there were.
    pub async fn replay(&self) -> StoreResult<u64> {
        let started = std::time::Instant::now();
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
            seconds = started.elapsed().as_secs_f64(),
            "event log replayed into the engine"
        );
        Ok(n)
    }

    /// Follows the log until aborted.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let (tx, feed) = mpsc::unbounded_channel::<Heard>();
        let engine = self.engine.clone();
        let fed = self.ports.log.on_commit(Box::new(move |c| {
            let _ = tx.send((engine.erasures(), c));
        }));
        let me = self.clone();
        tokio::spawn(async move { me.follow(fed.then_some(feed)).await })
    }

    async fn follow(&self, mut feed: Option<mpsc::UnboundedReceiver<Heard>>) {
        // Commits heard that do not follow what is applied yet, by the head they follow.
        let mut waiting: BTreeMap<u64, Heard> = BTreeMap::new();
        let mut read_at = Instant::now();
        let mut gap_since: Option<Instant> = None;
        let mut read = true;
        loop {
            if read {
                read_at = Instant::now() + if self.catch_up().await { POLL } else { RETRY };
                read = false;
            }
            while let Some(entry) = waiting.first_entry() {
                let after = self.applied();
                if *entry.key() > after {
                    break;
                }
                let (erasures, c) = entry.remove();
                let events: Vec<LogEvent> = c.events.into_iter().filter(|e| e.seq > after).collect();
                if !events.is_empty() {
                    self.apply(after, events, erasures, true).await;
                }
            }
            gap_since = if waiting.is_empty() { None } else { gap_since.or(Some(Instant::now())) };
            let deadline = gap_since.map_or(read_at, |since| read_at.min(since + GAP_WAIT));
            let heard = async {
                match feed.as_mut() {
                    Some(f) => f.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                heard = heard => match heard {
                    Some((erasures, c)) => { waiting.insert(c.after, (erasures, c)); }
                    None => feed = None,
                },
                _ = self.wake.notified() => read = feed.is_none(),
                _ = tokio::time::sleep_until(deadline) => read = true,
            }
            if let Some(f) = feed.as_mut() {
                while let Ok((erasures, c)) = f.try_recv() {
                    waiting.insert(c.after, (erasures, c));
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
        self.hydrate_upto(user, self.applied()).await
    }

    async fn hydrate_upto(&self, user: &UserId, upto: u64) -> StoreResult<()> {
        if !self.engine.may_need_hydration() || self.engine.knows(user) {
            return Ok(());
        }
        let erasures = self.engine.erasures();
        let history = self.ports.log.recent_for_user(user, self.engine.ranking().history_events).await?;
        let events: Vec<LogEvent> = history.iter().filter(|e| e.seq <= upto).map(LogEvent::from).collect();
        self.engine.hydrate(user, &events, erasures);
        Ok(())
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
    /// earlier get their history back first, and their cached lists are dropped after.
    async fn apply(&self, after: u64, events: Vec<LogEvent>, erasures: u64, live: bool) {
        let Some(last) = events.last().map(|e| e.seq) else { return };
        let users: HashSet<UserId> =
            if live { events.iter().map(|e| e.user_id.clone()).collect() } else { HashSet::new() };
        if self.engine.may_need_hydration() {
            for user in &users {
                if let Err(e) = self.hydrate_upto(user, after).await {
                    // Their list is built from the new events alone until they are forgotten
                    // again; the events themselves are applied.
                    tracing::warn!(error = %e, "reading a returning visitor's history failed");
                }
            }
        }
        if live {
            // On the async workers, a slice at a time: the online state's memory is then
            // allocated by a few long-lived threads (applied on the blocking pool's many
            // threads, the allocator kept a third more memory in the ingest benchmark).
            for (i, chunk) in events.chunks(LIVE_SLICE).enumerate() {
                if i > 0 {
                    tokio::task::yield_now().await;
                }
                chunk.iter().for_each(|e| self.engine.observe(e));
            }
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
        // An erasure after the events were read or committed may have left the erased
        // visitor's events in them.
        self.engine.settle(erasures, users.iter());
        for user in &users {
            self.ports.cache.invalidate_user(user).await;
        }
        self.applied.send_replace(last);
        metrics::gauge!("vitrina_follower_applied_sequence").set(last as f64);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vitrina_bus::InProcessBus;
    use vitrina_core::{ActivityInput, NewActivity};
    use vitrina_engine::RankingConfig;
    use vitrina_store::{Location, MemoryCache, OpenOptions, Opened};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        _store: Opened,
        ports: Ports,
        engine: Arc<Engine>,
        follower: Arc<Follower>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let opened = Opened::open(&Location::Dir(dir.path().into()), OpenOptions::default()).await.unwrap();
        let ports = Ports::of_store(
            opened.store(),
            Arc::new(InProcessBus::new(16)),
            Arc::new(MemoryCache::new(1000, Duration::from_secs(600))),
        );
        let engine = Arc::new(Engine::new(Vec::new(), RankingConfig::default()));
        let follower = Follower::new(ports.clone(), engine.clone());
        Fixture { _dir: dir, _store: opened, ports, engine, follower }
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
        (0, Committed { after, events })
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
        let task = tokio::spawn(async move { me.follow(Some(rx)).await });
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
    async fn the_write_path_returns_once_its_events_are_applied() {
        let f = fixture().await;
        let task = f.follower.spawn();
        let (attributor, _) = crate::attribution::Attributor::spawn(f.ports.clone());
        let outcomes = crate::ingest::ingest(
            &f.ports,
            &f.follower,
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
}
