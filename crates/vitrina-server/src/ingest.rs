//! The ingest path shared by single and batch tracking: append durably, publish the commit
//! and raise the visitors' watermarks and drop their shared lists (roles over Redis), wait
//! until this process's log follower has applied the events (it drops the visitors' lists
//! of the in-process cache), then metrics, domain events on the bus and attribution.

use vitrina_core::{
    events::DomainEvent,
    ports::{AppendOutcome, StoreResult},
    roles::Role,
    ActivityType, NewActivity, UserId,
};

use crate::{attribution::Attributor, cluster::Cluster, follower::Follower, ports::Ports, state::Shared};

/// Appends `events` atomically and, once durable, waits until the engine's online state
/// follows the log past them (see [`crate::follower`]), so the next request of each visitor
/// sees the new events (at most [`crate::follower::APPLY_WAIT`]). A process without the api
/// role has no online state: it publishes the commit for the api replicas and raises the
/// visitors' watermarks instead, which the replicas wait for (see [`crate::cluster`]).
///
/// Clicks, add-to-carts and purchases are then attributed to the lists they came from
/// (within `window` when they name none), off the request path (see [`crate::attribution`]).
pub async fn ingest(s: &Shared, events: Vec<NewActivity>) -> StoreResult<Vec<AppendOutcome>> {
    let follower = s.cluster.roles.has(Role::Api).then_some(s.follower.as_ref());
    let window = s.experiments.attribution_window();
    ingest_into(&s.ports, follower, &s.cluster, &s.attributor, events, window).await
}

/// [`ingest`] with its parts: `follower` is this process's online state, if it has one.
pub async fn ingest_into(
    ports: &Ports,
    follower: Option<&Follower>,
    cluster: &Cluster,
    attributor: &Attributor,
    events: Vec<NewActivity>,
    window: chrono::Duration,
) -> StoreResult<Vec<AppendOutcome>> {
    let started = std::time::Instant::now();
    let users: Vec<UserId> = if cluster.watermarks.is_some() {
        events.iter().map(|e| e.user_id.clone()).collect()
    } else {
        Vec::new()
    };
    let outcomes = ports.log.append(events).await?;
    metrics::histogram!("vitrina_store_append_duration_seconds").record(started.elapsed().as_secs_f64());
    // A repeat waits too: its original may be a moment from applied (a client's retry).
    let last = outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Stored(s) => s.seq,
            AppendOutcome::Duplicate { seq } => *seq,
        })
        .max();
    cluster.committed(&outcomes);
    cluster.acknowledge(&users, &outcomes).await;
    if let (Some(last), Some(follower)) = (last, follower) {
        follower.nudge();
        follower.wait_for(last).await;
    }
    let mut per_type = [0u64; ActivityType::ALL.len()];
    let mut duplicates = 0;
    for outcome in &outcomes {
        match outcome {
            AppendOutcome::Stored(stored) => {
                per_type[stored.event.activity_type as usize] += 1;
                ports.bus.publish(DomainEvent::from_activity(stored));
            }
            AppendOutcome::Duplicate { .. } => duplicates += 1,
        }
    }
    for (kind, n) in ActivityType::ALL.iter().zip(per_type).filter(|(_, n)| *n > 0) {
        metrics::counter!("vitrina_activity_events_ingested_total", "type" => kind.as_str()).increment(n);
    }
    if duplicates > 0 {
        metrics::counter!("vitrina_activity_events_duplicate_total").increment(duplicates);
    }
    attributor.submit(window, &outcomes);
    Ok(outcomes)
}
