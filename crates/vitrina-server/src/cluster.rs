//! The processes of one deployment, and how what one of them does reaches the others
//! (ADR 0012). Each process plays some [`Roles`]; over a shared PostgreSQL store they may be
//! many. The store stays the truth; the broker (NATS JetStream) and Redis carry hints:
//! - an activity process publishes each stored commit ([`Cluster::committed`]), which the
//!   api replicas' followers apply milliseconds later (else their next read of the log);
//! - it raises each visitor's watermark in Redis and drops their shared lists before it
//!   acknowledges ([`Cluster::acknowledge`]); an api replica waits, at most [`READ_WAIT`],
//!   until its online state holds the visitor's watermark before it answers them (read in
//!   the round trip of the cache lookup, [`Cluster::lookup_fresh`]);
//! - catalogue, experiment, key and erasure changes are told ([`Cluster::tell`]) and re-read
//!   by the others ([`follow_changes`]), which also re-read the experiments and keys every
//!   [`RESYNC`] in case a change was missed, and the catalogue when its revision changed
//!   (erasures are not re-read).

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use vitrina_bus::nats::Broker;
use vitrina_core::{
    changes::Change,
    ports::{AppendOutcome, CacheLookup, Committed, RecommendationCache},
    roles::{Role, Roles},
    LogEvent, UserId,
};
use vitrina_store::redis::{SharedLists, Watermarks};

use vitrina_engine::Engine;

use crate::{follower::Follower, state::AppState};

/// How long an api replica waits, at most, for its online state to hold what a visitor was
/// told is stored before it answers them anyway.
pub const READ_WAIT: Duration = Duration::from_secs(2);
/// How long a replica waits to apply the log as far as a retraction before it reads the
/// visitor back anyway.
const RETRACTION_WAIT: Duration = Duration::from_secs(10);
/// Experiments and keys are re-read this often whatever was told; the catalogue is asked
/// for its revision as often.
pub const RESYNC: Duration = Duration::from_secs(30);

/// What this process plays and how it reaches the others.
#[derive(Clone, Default)]
pub struct Cluster {
    pub roles: Roles,
    pub broker: Option<Arc<Broker>>,
    pub watermarks: Option<Watermarks>,
    /// The lists the replicas share (with the watermarks): the visitors' lists are dropped
    /// in the same script that raises their watermarks.
    pub lists: Option<Arc<SharedLists>>,
}

impl Cluster {
    /// The embedded deployment: every role, no other process.
    pub fn embedded() -> Self {
        Self::default()
    }

    /// A stored batch's new events, for the api replicas' followers. The PostgreSQL log
    /// numbers one append's new events consecutively after the head it found, so they follow
    /// the sequence before the first.
    pub fn committed(&self, outcomes: &[AppendOutcome]) {
        let Some(broker) = &self.broker else { return };
        let events: Vec<LogEvent> = outcomes
            .iter()
            .filter_map(|o| match o {
                AppendOutcome::Stored(s) => Some(LogEvent::from(s)),
                AppendOutcome::Duplicate { .. } => None,
            })
            .collect();
        if let Some(first) = events.first() {
            broker.publish_commit(Committed { after: first.seq - 1, events });
        }
    }

    /// Raises the watermarks of the visitors of a stored batch before it is acknowledged
    /// (a repeat's too: its original may not be applied everywhere yet), and drops their
    /// shared lists in the same round trip. `users[i]` is the visitor of `outcomes[i]`.
    pub async fn acknowledge(&self, users: &[UserId], outcomes: &[AppendOutcome]) {
        let (Some(watermarks), Some(lists)) = (&self.watermarks, &self.lists) else { return };
        let mut marks: std::collections::HashMap<UserId, u64> = std::collections::HashMap::new();
        for (user, o) in users.iter().zip(outcomes) {
            let seq = match o {
                AppendOutcome::Stored(s) => s.seq,
                AppendOutcome::Duplicate { seq } => *seq,
            };
            let mark = marks.entry(user.clone()).or_default();
            *mark = (*mark).max(seq);
        }
        if marks.is_empty() {
            return;
        }
        let marks: Vec<(UserId, u64)> = marks.into_iter().collect();
        // A Redis that does not answer in time (the connection's bound) is gone without: the
        // batch is acknowledged, read-your-writes across replicas is not promised for it.
        if !lists.acknowledge(&marks, watermarks).await {
            metrics::counter!("vitrina_watermark_failures_total").increment(1);
            tracing::warn!("raising visitors' watermarks and dropping their shared lists in Redis failed; other replicas may answer them without their latest events until they applied them");
        }
    }

    /// Looks the visitor's list up in `cache` once this process holds everything the visitor
    /// was told is stored: over Redis, the lookup and the visitor's watermark are one round
    /// trip, and the process waits, at most [`READ_WAIT`], until its `follower` applied the
    /// watermark before it judges what it found (a list computed from a state older than the
    /// visitor's latest event here is a miss). Without Redis (or when it fails) it does not
    /// wait: in one process the write path itself waited for the follower.
    pub async fn lookup_fresh(
        &self,
        cache: &dyn RecommendationCache,
        follower: &Follower,
        engine: &Engine,
        user: &UserId,
        key: &str,
    ) -> CacheLookup {
        let (Some(watermarks), Some(lists)) = (&self.watermarks, &self.lists) else {
            return cache.lookup(user, key, engine.last_seq(user)).await;
        };
        let fetched = lists.lookup_marked(user, key, watermarks).await;
        match &fetched {
            Some(found) => wait_for_mark(follower, found.mark).await,
            // The cache is not trusted (or Redis did not answer): the watermark alone, as a
            // Redis that answers reads but refuses writes still gives it.
            None => self.fresh_for(follower, user).await,
        }
        lists.judge(fetched, engine.last_seq(user))
    }

    /// Waits until `follower` holds everything the visitor was told is stored, at most
    /// [`READ_WAIT`] (see [`Cluster::lookup_fresh`]; this is for a caller that does not look
    /// the visitor's list up).
    pub async fn fresh_for(&self, follower: &Follower, user: &UserId) {
        let Some(watermarks) = &self.watermarks else { return };
        match watermarks.get(user).await {
            Ok(mark) => wait_for_mark(follower, mark).await,
            Err(_) => metrics::counter!("vitrina_watermark_failures_total").increment(1),
        }
    }

    /// Tells the other processes of a change, in the background (nothing to do in one
    /// process): a broker that is down does not hold up the request that made it.
    pub fn tell(&self, change: Change) {
        if let Some(broker) = self.broker.clone() {
            tokio::spawn(async move { broker.publish_change(&change).await });
        }
    }

    /// Forgets a visitor's watermark (erasure).
    pub async fn forget(&self, user: &UserId) {
        if let Some(watermarks) = &self.watermarks {
            if let Err(e) = watermarks.forget(user).await {
                tracing::warn!(error = %e, "forgetting an erased visitor's watermark in Redis failed; it expires within the hour");
            }
        }
    }
}

/// Waits until `follower` applied `mark` (a visitor's watermark), at most [`READ_WAIT`].
async fn wait_for_mark(follower: &Follower, mark: u64) {
    if follower.applied() >= mark {
        return;
    }
    metrics::counter!("vitrina_read_waits_total").increment(1);
    follower.read_now();
    if !follower.wait_until(mark, READ_WAIT).await {
        metrics::counter!("vitrina_read_wait_timeouts_total").increment(1);
        follower.fell_behind();
        tracing::warn!(
            applied = follower.applied(),
            mark,
            "answering a visitor before this replica applied their latest event"
        );
    }
}

/// A process applies what other processes tell, and re-reads every [`RESYNC`] what it may
/// have missed; `catalogue` is the revision of the catalogue it holds (read at start-up).
pub async fn follow_changes(state: AppState, mut catalogue: Option<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(broker) = &state.cluster.broker {
        broker.follow_changes(tx);
    }
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Some(change) => apply(&state, change).await,
                None => std::future::pending::<()>().await,
            },
            _ = resync.tick() => resync_all(&state, &mut catalogue).await,
        }
    }
}

async fn apply(state: &AppState, change: Change) {
    match change {
        Change::Products { ids } => {
            let mut changed = Vec::new();
            for id in ids {
                match state.ports.catalog.product(&id).await {
                    Ok(Some(product)) => changed.push(product),
                    Ok(None) => state.engine.remove_product(&id),
                    Err(e) => {
                        tracing::warn!(error = %e, product = %id, "reading a changed product failed; the next re-read picks it up")
                    }
                }
            }
            state.engine.upsert_products(changed);
            state.ports.cache.invalidate_all().await;
        }
        Change::Experiments => reload_experiments(state).await,
        Change::Keys => {
            if let Err(e) = state.auth.keys.reload().await {
                tracing::warn!(error = %e, "re-reading the API keys failed");
            }
        }
        Change::Erased { user, through, partly } => {
            // First: events of the visitor up to `through` still on their way from the
            // broker are not applied; then what the engine holds of them goes.
            state.follower.erased(&user, through);
            if partly {
                // Off this loop: the changes behind it wait for nothing.
                tokio::spawn(read_back(state.clone(), user, through));
                return;
            }
            crate::routes::users::drop_held(state, &user, false).await;
            discard_checkpoint(state).await;
        }
    }
}

/// A retraction another process made (events of `user` up to `through` deleted): where
/// lists are served, once the log is applied as far as the deletion (or as far as it now
/// reaches, when the deleted events were its last), what is left of the visitor is read
/// back from it; a visitor read back sooner would miss their kept events that the broker
/// still brings, which the tombstone keeps from being applied.
async fn read_back(state: AppState, user: UserId, through: u64) {
    if state.cluster.roles.has(Role::Api) {
        let present = state.ports.log.stats().await.map_or(through, |st| st.max_seq);
        let target = through.min(present);
        if !state.follower.wait_until(target, RETRACTION_WAIT).await {
            tracing::warn!(target, "a retraction's visitor is read back before the log is applied that far");
        }
    }
    crate::routes::users::drop_held(&state, &user, true).await;
    discard_checkpoint(&state).await;
}

/// After an erasure or a retraction: a checkpoint this process wrote before it heard may
/// hold the visitor's deleted events; one it copies from now on does not (a copy begun
/// before is not written).
async fn discard_checkpoint(state: &AppState) {
    if let Some(checkpoints) = state.follower.checkpoints().filter(|_| state.cluster.roles.has(Role::Api)) {
        if let Err(e) = checkpoints.discard().await {
            tracing::warn!(error = %e, "discarding the checkpoint after an erasure failed");
        }
    }
}

async fn reload_experiments(state: &AppState) {
    let artefacts = state.training.artefacts().clone();
    if let Err(e) = state.experiments.reload(&state.ports, &state.engine, &artefacts).await {
        tracing::warn!(error = %e, "re-reading the experiments failed");
    }
}

/// Re-reads the experiments and the keys, and the catalogue unless its revision is still
/// `catalogue` (the one last read; updated).
async fn resync_all(state: &AppState, catalogue: &mut Option<u64>) {
    reload_experiments(state).await;
    if let Err(e) = state.auth.keys.reload().await {
        tracing::warn!(error = %e, "re-reading the API keys failed");
    }
    let started = std::time::Instant::now();
    // Asked before the read: a write during it changes the revision, so the next one reads.
    let revision = match state.ports.catalog.catalogue_revision().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading the catalogue's revision failed");
            None
        }
    };
    let read = if revision.is_some() && revision == *catalogue {
        "unchanged"
    } else {
        match crate::embedded::all_products(state.ports.catalog.as_ref()).await {
            Ok(products) => {
                let engine = state.engine.clone();
                if tokio::task::spawn_blocking(move || engine.sync_products(products)).await.unwrap_or(false)
                {
                    state.ports.cache.invalidate_all().await;
                }
                *catalogue = revision;
                "whole"
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the catalogue failed");
                return;
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("vitrina_catalogue_resync_seconds", "read" => read).record(seconds);
    tracing::debug!(seconds, read, revision, "catalogue re-read");
}
