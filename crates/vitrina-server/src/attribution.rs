//! Attribution on the write path: once a click, add-to-cart or purchase is durable, it is
//! tied to the served list it came from (its `metadata.recommendationId`, else the latest
//! list of that visitor showing the product within the attribution window) and recorded as
//! an outcome with that list's variant, the item's source and position. An event id is
//! recorded once, so a re-sent event never counts twice; an event that matches no
//! impression is not attributed.
//!
//! Like impressions, outcomes are best effort: recorded right after the acknowledgement, off
//! the request path, by one task ([`Attributor`]) that works through a queue of at most
//! [`MAX_QUEUED`] events; past it (a burst faster than attribution) and at a crash,
//! attributions are lost, never an event.

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

use chrono::Duration;
use tokio::{sync::mpsc, task::JoinHandle};
use vitrina_core::{
    ports::{AppendOutcome, Impression},
    ActivityType, StoredActivity,
};
use vitrina_experiments::attribution::{attribute, Outcome};

use crate::{
    experiments::{attributed, outcome_kind, to_exp_impression},
    ports::Ports,
};

/// Whether an event is an outcome a list can earn.
pub fn is_outcome(e: &StoredActivity) -> bool {
    e.event.product_id.is_some() && outcome_kind(e.event.activity_type).is_some()
}

/// The revenue of a purchase: `metadata.revenue`, else `metadata.price` × `metadata.quantity`
/// (default 1), else the product's catalogue price; 0 for other events.
async fn revenue(ports: &Ports, e: &StoredActivity) -> f64 {
    if e.event.activity_type != ActivityType::Purchase {
        return 0.0;
    }
    let m = &e.event.metadata;
    // Stored events passed validation: amounts are finite and bounded. Events stored before
    // that rule are clamped the same way here.
    let number = |k: &str| vitrina_core::activity::amount(m, k).filter(|v| v.is_finite());
    if let Some(r) = number("revenue") {
        return r.max(0.0);
    }
    let quantity = number("quantity").unwrap_or(1.0).max(0.0);
    if let Some(p) = number("price") {
        return (p * quantity).max(0.0);
    }
    let Some(product) = &e.event.product_id else { return 0.0 };
    match ports.catalog.product(product).await {
        Ok(Some(p)) => p.price.to_f64() * quantity,
        _ => 0.0,
    }
}

/// Outcome events waiting for attribution, at most.
pub const MAX_QUEUED: usize = 100_000;

/// The queue of outcome events to attribute and the one task that works through it (spawned
/// tasks per request piled up under load: hundreds of blocking threads, each with its own
/// reads in flight, and memory without a bound).
pub struct Attributor {
    tx: mpsc::UnboundedSender<Queued>,
    queued: Arc<AtomicUsize>,
    max: usize,
    /// Whether the last submission was dropped (the warning is logged once per episode).
    dropping: AtomicBool,
}

/// Outcome events to attribute within a window.
type Queued = (Duration, Vec<StoredActivity>);

impl Attributor {
    /// Starts the task; it ends when the attributor is dropped.
    pub fn spawn(ports: Ports) -> (Self, JoinHandle<()>) {
        let (me, mut rx) = Self::queue(MAX_QUEUED);
        let left = me.queued.clone();
        let task = tokio::spawn(async move {
            while let Some((window, events)) = rx.recv().await {
                attribute_events(&ports, window, &events).await;
                left.fetch_sub(events.len(), Ordering::Relaxed);
            }
        });
        (me, task)
    }

    fn queue(max: usize) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, queued: Arc::new(AtomicUsize::new(0)), max, dropping: AtomicBool::new(false) }, rx)
    }

    /// Queues the outcome events among `events` for attribution within `window`; drops them
    /// (counted in `vitrina_attribution_dropped_total`) when the queue is full.
    pub fn submit(&self, window: Duration, events: &[AppendOutcome]) {
        let outcomes: Vec<StoredActivity> = events
            .iter()
            .filter_map(|o| match o {
                AppendOutcome::Stored(s) if is_outcome(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let n = outcomes.len();
        if n == 0 {
            return;
        }
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > self.max {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            metrics::counter!("vitrina_attribution_dropped_total").increment(n as u64);
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(queued = self.max, "outcome events arrive faster than they can be attributed: dropping attributions until the queue drains (vitrina_attribution_dropped_total)");
            }
            return;
        }
        self.dropping.store(false, Ordering::Relaxed);
        if self.tx.send((window, outcomes)).is_err() {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// Attributes the outcome events among `events` and records what matched: the lists shown
/// to their visitors are read in one call.
async fn attribute_events(ports: &Ports, window: Duration, events: &[StoredActivity]) {
    let outcomes: Vec<&StoredActivity> = events.iter().filter(|e| is_outcome(e)).collect();
    if outcomes.is_empty() {
        return;
    }
    let queries = outcomes.iter().map(|e| (e.event.user_id.clone(), e.event.timestamp - window)).collect();
    let shown = match ports.impressions.impressions_for_users(queries).await {
        Ok(shown) => shown,
        Err(err) => {
            tracing::warn!(events = outcomes.len(), error = %err, "events not attributed");
            return;
        }
    };
    for (e, impressions) in outcomes.into_iter().zip(shown) {
        if let Err(err) = attribute_one(ports, window, e, impressions).await {
            tracing::warn!(event_id = %e.event.event_id.as_str(), error = %err, "event not attributed");
        }
    }
}

/// Attributes one outcome event, given the lists shown to its visitor within the window.
async fn attribute_one(
    ports: &Ports,
    window: Duration,
    e: &StoredActivity,
    mut impressions: Vec<Impression>,
) -> vitrina_core::ports::StoreResult<()> {
    let ev = &e.event;
    let (Some(product), Some(kind)) = (&ev.product_id, outcome_kind(ev.activity_type)) else { return Ok(()) };
    if let Some(id) = ev.recommendation_id() {
        if !impressions.iter().any(|i| i.recommendation_id == id) {
            // A list older than the window still earns an event that names it.
            if let Some(imp) = ports.impressions.impression(&ev.user_id, id).await? {
                impressions.push(imp);
            }
        }
    }
    if impressions.is_empty() {
        return Ok(());
    }
    let converted: Vec<_> = impressions.iter().map(|i| to_exp_impression(i, None, None)).collect();
    let outcome = Outcome {
        event_id: ev.event_id.as_str().to_string(),
        visitor: ev.user_id.to_string(),
        kind,
        product_id: product.to_string(),
        recommendation_id: ev.recommendation_id().map(str::to_string),
        value: revenue(ports, e).await,
        at: ev.timestamp,
    };
    let Some(found) = attribute(&converted, &[outcome], window).into_iter().next() else { return Ok(()) };
    let Some(imp) = impressions.iter().find(|i| i.recommendation_id == found.recommendation_id) else {
        return Ok(());
    };
    ports.impressions.record_outcome(attributed(
        &found,
        &ev.user_id,
        product,
        &imp.variant,
        ev.activity_type,
        ev.timestamp,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use vitrina_core::{ActivityInput, NewActivity};

    use super::*;

    fn stored(seq: u64, kind: &str) -> AppendOutcome {
        let now = Utc::now();
        let event = NewActivity::validate(
            ActivityInput {
                user_id: Some("u1".into()),
                activity_type: Some(kind.into()),
                product_id: Some("p1".into()),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        AppendOutcome::Stored(StoredActivity { seq, event, received_at: now })
    }

    #[test]
    fn only_outcomes_are_queued_and_a_full_queue_drops_instead_of_growing() {
        let (attributor, mut rx) = Attributor::queue(2);
        attributor.submit(
            Duration::hours(1),
            &[stored(1, "view"), stored(2, "click"), AppendOutcome::Duplicate { seq: 9 }],
        );
        let (_, first) = rx.try_recv().unwrap();
        assert_eq!(
            first.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2],
            "views and repeats are not outcomes"
        );
        attributor.submit(Duration::hours(1), &[stored(3, "purchase"), stored(4, "add_to_cart")]);
        assert!(rx.try_recv().is_err(), "1 queued + 2 would pass the bound of 2");
        attributor.submit(Duration::hours(1), &[stored(5, "purchase")]);
        assert_eq!(rx.try_recv().unwrap().1.len(), 1, "a batch within the bound is queued");
    }
}
