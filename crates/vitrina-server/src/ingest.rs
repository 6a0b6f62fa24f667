//! The ingest path shared by single and batch tracking: append durably, then make the
//! events visible (cache invalidation, metrics, domain events on the bus).

use std::collections::HashSet;

use vitrina_core::{
    events::DomainEvent,
    ports::{AppendOutcome, StoreResult},
    ActivityType, LogEvent, NewActivity, StoredActivity, UserId,
};
use vitrina_engine::Engine;

use crate::state::Ports;

/// Appends `events` atomically and, once durable, applies them to the engine's online state
/// and invalidates each affected visitor's cached lists before returning, so the next
/// request of that visitor sees the new events.
///
/// Clicks, add-to-carts and purchases are then attributed to the lists they came from
/// (within `window` when they name none), off the request path (see [`crate::attribution`]).
pub async fn ingest(
    ports: &Ports,
    engine: &Engine,
    events: Vec<NewActivity>,
    window: chrono::Duration,
) -> StoreResult<Vec<AppendOutcome>> {
    let started = std::time::Instant::now();
    let erasures = engine.erasures();
    let outcomes = ports.log.append(events).await?;
    metrics::histogram!("vitrina_store_append_duration_seconds").record(started.elapsed().as_secs_f64());
    let stored: Vec<&StoredActivity> = outcomes
        .iter()
        .filter_map(|o| if let AppendOutcome::Stored(s) = o { Some(s) } else { None })
        .collect();
    let users: HashSet<&UserId> = stored.iter().map(|s| &s.event.user_id).collect();
    if engine.may_need_hydration() {
        // A visitor forgotten to stay within the limit gets their history back before the
        // new events (which the log now holds too) are observed.
        let new: HashSet<u64> = stored.iter().map(|s| s.seq).collect();
        for user in &users {
            hydrate(ports, engine, user, &new).await?;
        }
    }
    for s in &stored {
        engine.observe(&LogEvent::from(*s));
    }
    engine.settle(erasures, users.iter().copied());
    for user in users {
        ports.cache.invalidate_user(user).await;
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
    let to_attribute: Vec<StoredActivity> = outcomes
        .iter()
        .filter_map(|o| match o {
            AppendOutcome::Stored(s) if crate::attribution::is_outcome(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if !to_attribute.is_empty() {
        tokio::spawn(crate::attribution::attribute_events(ports.clone(), window, to_attribute));
    }
    Ok(outcomes)
}

/// Reads a visitor's history back from the log into the engine when they have no online
/// state but may have history (after evictions), leaving out the events at `skip` (about to
/// be observed). Gives up when an erasure happens meanwhile.
pub async fn hydrate(ports: &Ports, engine: &Engine, user: &UserId, skip: &HashSet<u64>) -> StoreResult<()> {
    if !engine.may_need_hydration() || engine.knows(user) {
        return Ok(());
    }
    let erasures = engine.erasures();
    let history = ports.log.recent_for_user(user, engine.ranking().history_events).await?;
    let events: Vec<LogEvent> =
        history.iter().filter(|e| !skip.contains(&e.seq)).map(LogEvent::from).collect();
    engine.hydrate(user, &events, erasures);
    Ok(())
}
