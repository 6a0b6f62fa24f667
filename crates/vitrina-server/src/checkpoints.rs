//! Checkpoints of the engine's online state in the artefact store, so a restart restores the
//! state and replays only the log after it (ADR 0010).
//!
//! The [`Follower`](crate::follower::Follower) takes them, between two applied steps, so a
//! checkpoint holds exactly the log up to the sequence it names: every
//! [`CheckpointSettings::every`] when events were applied since the last one, and when the
//! server stops (unless they are off). Taking one copies the state (the follower pauses for that); encoding and
//! writing run in the background.
//!
//! Erasure: a checkpoint may hold an erased visitor's events, so erasing a visitor discards
//! the checkpoint ([`Checkpoints::discard`]) before it deletes their rows and again before it
//! answers; a checkpoint whose copy began before an erasure is not written. The next start
//! then replays the whole log, until the next checkpoint.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use vitrina_core::ports::{ArtefactStore, StoreError, StoreResult};
use vitrina_engine::{Engine, OnlineCheckpoint};

/// Where the checkpoint is kept in the artefact store.
pub const PATH: &str = "checkpoints/online.vck";

/// When checkpoints are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// How often, when events were applied since the last one; `None`: never, and a start
    /// deletes a stored one (erasures would not discard it) and replays the whole log.
    pub every: Option<Duration>,
}

/// The online state's checkpoints of one engine.
pub struct Checkpoints {
    store: Arc<dyn ArtefactStore>,
    engine: Arc<Engine>,
    settings: CheckpointSettings,
    /// Held while a checkpoint is written or discarded.
    writing: tokio::sync::Mutex<()>,
    /// The sequence of the checkpoint in the store (0: none).
    written: AtomicU64,
    /// When the last checkpoint was taken (or restored), and its sequence.
    last: Mutex<(Instant, u64)>,
}

impl Checkpoints {
    pub fn new(
        store: Arc<dyn ArtefactStore>,
        engine: Arc<Engine>,
        settings: CheckpointSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            engine,
            settings,
            writing: tokio::sync::Mutex::new(()),
            written: AtomicU64::new(0),
            last: Mutex::new((Instant::now(), 0)),
        })
    }

    /// Restores the stored checkpoint into the engine (which has observed nothing yet) and
    /// returns its sequence; 0 when there is none, or none usable (it is then left alone and
    /// the whole log is replayed). `head` is the log's last sequence: a checkpoint beyond it
    /// belongs to another log. `Err` only when restoring failed halfway (a bug): the engine
    /// then holds part of it, and replaying the log on top would count events twice.
    pub async fn restore(&self, head: u64) -> StoreResult<u64> {
        if self.settings.every.is_none() {
            self.store.delete_artefact(PATH).await?;
            return Ok(0);
        }
        let started = Instant::now();
        let bytes = match self.store.get_artefact(PATH).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(0),
            Err(e) => {
                tracing::warn!(error = %e, "reading the online state checkpoint failed; replaying the whole log");
                return Ok(0);
            }
        };
        let size = bytes.len();
        let read = tokio::task::spawn_blocking(move || {
            let checkpoint = OnlineCheckpoint::read(&bytes).map_err(|e| e.to_string())?;
            if checkpoint.seq > head {
                return Err(format!(
                    "it holds the log up to sequence {}, past the log's last event {head}",
                    checkpoint.seq
                ));
            }
            Ok(checkpoint)
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading it failed: {e}")));
        let checkpoint = match read {
            Ok(checkpoint) => checkpoint,
            Err(why) => {
                tracing::warn!(reason = %why, "the online state checkpoint is unusable; replaying the whole log");
                return Ok(0);
            }
        };
        let (seq, visitors) = (checkpoint.seq, checkpoint.users.len());
        let engine = self.engine.clone();
        let covisits =
            tokio::task::spawn_blocking(move || engine.restore(checkpoint)).await.map_err(|e| {
                StoreError::Backend(format!("restoring the online state checkpoint failed halfway: {e}"))
            })?;
        tracing::info!(
            seq,
            visitors,
            bytes = size,
            live_covisitation = covisits,
            seconds = started.elapsed().as_secs_f64(),
            "online state restored from its checkpoint"
        );
        self.written.store(seq, Ordering::SeqCst);
        *self.last.lock().expect("checkpoint lock") = (Instant::now(), seq);
        metrics::gauge!("vitrina_checkpoint_restored_sequence").set(seq as f64);
        Ok(seq)
    }

    /// Whether a checkpoint is due now that the log is applied up to `applied`.
    pub fn due(&self, applied: u64) -> bool {
        let (at, seq) = *self.last.lock().expect("checkpoint lock");
        self.settings.every.is_some_and(|every| applied > seq && at.elapsed() >= every)
    }

    /// Whether a checkpoint is wanted at a stop with the log applied up to `applied`: they
    /// are on and the stored one does not hold it already.
    pub fn due_at_stop(&self, applied: u64) -> bool {
        self.settings.every.is_some() && applied > 0 && self.written.load(Ordering::SeqCst) != applied
    }

    /// Copies the online state as of `seq` and writes it in the background. The caller
    /// guarantees that the engine holds exactly the log up to `seq` and that nothing is
    /// applied until this returns.
    pub async fn take(self: &Arc<Self>, seq: u64) -> JoinHandle<()> {
        *self.last.lock().expect("checkpoint lock") = (Instant::now(), seq);
        let erasures = self.engine.erasures();
        let engine = self.engine.clone();
        let started = Instant::now();
        let copied = tokio::task::spawn_blocking(move || engine.checkpoint(seq)).await;
        let paused = started.elapsed();
        let me = self.clone();
        tokio::spawn(async move {
            match copied {
                Ok(checkpoint) => me.write(checkpoint, erasures, paused).await,
                Err(e) => tracing::error!(error = %e, "copying the online state for a checkpoint failed"),
            }
        })
    }

    async fn write(&self, checkpoint: OnlineCheckpoint, erasures: u64, paused: Duration) {
        let (seq, visitors, events) = (checkpoint.seq, checkpoint.users.len(), checkpoint.events());
        let started = Instant::now();
        let Ok(bytes) = tokio::task::spawn_blocking(move || checkpoint.write()).await else {
            tracing::error!("encoding the online state checkpoint failed");
            return;
        };
        let size = bytes.len();
        let _writing = self.writing.lock().await;
        if self.engine.erasures() != erasures {
            tracing::info!(seq, "a visitor was erased while the checkpoint was copied: it is not written");
            return;
        }
        if self.written.load(Ordering::SeqCst) >= seq {
            return;
        }
        match self.store.put_artefact(PATH, bytes).await {
            Ok(()) => {
                self.written.store(seq, Ordering::SeqCst);
                metrics::gauge!("vitrina_checkpoint_sequence").set(seq as f64);
                metrics::gauge!("vitrina_checkpoint_bytes").set(size as f64);
                tracing::info!(
                    seq,
                    visitors,
                    events,
                    bytes = size,
                    paused_seconds = paused.as_secs_f64(),
                    seconds = started.elapsed().as_secs_f64(),
                    "online state checkpointed"
                );
            }
            Err(e) => {
                metrics::counter!("vitrina_checkpoint_failures_total").increment(1);
                tracing::warn!(seq, error = %e, "writing the online state checkpoint failed");
            }
        }
    }

    /// Removes the stored checkpoint (a visitor was erased, and it may hold their events).
    /// The next one is taken within [`CheckpointSettings::every`].
    pub async fn discard(&self) -> StoreResult<()> {
        let _writing = self.writing.lock().await;
        self.store.delete_artefact(PATH).await?;
        self.written.store(0, Ordering::SeqCst);
        self.last.lock().expect("checkpoint lock").1 = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use vitrina_core::{ports::AppendOutcome, ActivityInput, NewActivity, UserId};
    use vitrina_engine::RankingConfig;

    use super::*;
    use crate::follower::Follower;

    type Fixture = crate::ports::TestStore;

    async fn fixture() -> Fixture {
        Fixture::new().await
    }

    /// A fresh engine following the fixture's log, with checkpoints (never due by time).
    fn engine(f: &Fixture) -> (Arc<Engine>, Arc<Checkpoints>, Arc<Follower>) {
        every(f, Some(Duration::from_secs(3600)))
    }

    fn every(f: &Fixture, every: Option<Duration>) -> (Arc<Engine>, Arc<Checkpoints>, Arc<Follower>) {
        let engine = Arc::new(Engine::new(Vec::new(), RankingConfig::default()));
        let settings = CheckpointSettings { every };
        let checkpoints = Checkpoints::new(f.store.store(), engine.clone(), settings);
        let follower =
            Follower::checkpointed(f.ports.clone(), engine.clone(), Some(checkpoints.clone()), None);
        (engine, checkpoints, follower)
    }

    async fn append(f: &Fixture, views: &[(&str, &str)]) -> u64 {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let batch = views
            .iter()
            .map(|(user, product)| {
                let input = ActivityInput {
                    user_id: Some((*user).into()),
                    activity_type: Some("view".into()),
                    product_id: Some((*product).into()),
                    ..Default::default()
                };
                NewActivity::validate(input, at).unwrap()
            })
            .collect();
        let outcomes = f.ports.log.append(batch).await.unwrap();
        outcomes.iter().map(|o| if let AppendOutcome::Stored(s) = o { s.seq } else { 0 }).max().unwrap()
    }

    fn events(engine: &Engine, users: &[&str]) -> Vec<usize> {
        users.iter().map(|u| engine.online_events(&UserId::parse(u).unwrap())).collect()
    }

    async fn stored(f: &Fixture) -> Option<OnlineCheckpoint> {
        let bytes = f.store.store().get_artefact(PATH).await.unwrap()?;
        Some(OnlineCheckpoint::read(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_stopping_follower_checkpoints_and_a_restart_replays_only_the_log_after_it() {
        let f = fixture().await;
        let (first, _, follower) = engine(&f);
        append(&f, &[("u1", "p1"), ("u1", "p2"), ("u2", "p1")]).await;
        assert_eq!(follower.replay().await.unwrap(), 3, "no checkpoint yet: the whole log");
        let task = follower.spawn();
        let seq = append(&f, &[("u2", "p3")]).await;
        assert!(follower.wait_for(seq).await);
        follower.stop();
        task.await.unwrap();
        assert_eq!(stored(&f).await.map(|c| (c.seq, c.users.len())), Some((4, 2)));

        // Appended after the stop (by another process, say).
        append(&f, &[("u1", "p3"), ("u3", "p1")]).await;
        let (second, _, follower) = engine(&f);
        assert_eq!(follower.replay().await.unwrap(), 2, "only the log after the checkpoint is read");
        assert_eq!(follower.applied(), 6);
        assert_eq!(events(&second, &["u1", "u2", "u3"]), [3, 2, 1]);
        assert_eq!(events(&first, &["u1", "u2", "u3"]), [2, 2, 0]);
    }

    #[tokio::test]
    async fn a_running_follower_checkpoints_when_due_and_only_after_new_events() {
        let f = fixture().await;
        let (_, checkpoints, follower) = every(&f, Some(Duration::ZERO));
        follower.replay().await.unwrap();
        let task = follower.spawn();
        for n in 1..=3u64 {
            let seq = append(&f, &[("u1", "p1")]).await;
            assert_eq!(seq, n);
            // The follower takes one at its next turn; it is written in the background.
            let started = Instant::now();
            while checkpoints.due_at_stop(seq) {
                assert!(started.elapsed() < Duration::from_secs(10), "no checkpoint at {seq}");
                tokio::task::yield_now().await;
            }
            assert_eq!(stored(&f).await.map(|c| c.seq), Some(seq));
        }
        assert!(!checkpoints.due(3), "nothing applied since the last one");
        task.abort();
    }

    #[tokio::test]
    async fn an_erasure_discards_the_checkpoint_and_one_copied_before_it_is_not_written() {
        let f = fixture().await;
        let (engine1, checkpoints, follower) = engine(&f);
        let seq = append(&f, &[("gone", "p1"), ("kept", "p2")]).await;
        follower.replay().await.unwrap();
        checkpoints.take(seq).await.await.unwrap();
        assert!(stored(&f).await.is_some());
        engine1.forget_user(&UserId::parse("gone").unwrap());
        checkpoints.discard().await.unwrap();
        assert!(stored(&f).await.is_none(), "erasing a visitor removes the checkpoint");

        // A copy taken before an erasure is not written when the erasure lands meanwhile.
        append(&f, &[("kept", "p3")]).await;
        follower.replay().await.unwrap();
        let writing = checkpoints.take(follower.applied()).await;
        engine1.forget_user(&UserId::parse("kept").unwrap());
        writing.await.unwrap();
        assert!(stored(&f).await.is_none(), "a checkpoint copied before an erasure is not written");

        // With nothing erased meanwhile, the next one is written at once.
        checkpoints.take(follower.applied()).await.await.unwrap();
        assert_eq!(stored(&f).await.map(|c| c.seq), Some(3));
    }

    #[tokio::test]
    async fn with_checkpoints_off_a_start_deletes_a_stored_one_and_replays_the_whole_log() {
        let f = fixture().await;
        let (_, checkpoints, follower) = engine(&f);
        let seq = append(&f, &[("u1", "p1"), ("u2", "p2")]).await;
        follower.replay().await.unwrap();
        checkpoints.take(seq).await.await.unwrap();
        assert!(stored(&f).await.is_some());
        let (off, checkpoints, follower) = every(&f, None);
        assert_eq!(follower.replay().await.unwrap(), 2);
        assert_eq!(events(&off, &["u1", "u2"]), [1, 1]);
        assert!(stored(&f).await.is_none(), "an erasure would not discard it while they are off");
        assert!(!checkpoints.due(seq) && !checkpoints.due_at_stop(seq));
    }

    #[tokio::test]
    async fn a_damaged_checkpoint_or_one_past_the_log_is_ignored_and_the_whole_log_replayed() {
        let f = fixture().await;
        append(&f, &[("u1", "p1"), ("u2", "p2")]).await;
        let store = f.store.store();
        let ahead = OnlineCheckpoint { seq: 99, ..OnlineCheckpoint::default() };
        for bytes in [b"VTRNCKPT damaged".to_vec(), ahead.write()] {
            store.put_artefact(PATH, bytes).await.unwrap();
            let (engine, _, follower) = engine(&f);
            assert_eq!(follower.replay().await.unwrap(), 2);
            assert_eq!(events(&engine, &["u1", "u2"]), [1, 1]);
        }
    }
}
