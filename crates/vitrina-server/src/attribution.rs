//! Attribution of a visitor's clicks, add-to-carts and purchases to the lists served to them,
//! by the one rule of `vitrina_experiments::attribution` ([`attribute_to_lists`]): its
//! `metadata.recommendationId`, else the latest list of that visitor showing the product
//! within the attribution window. The write path records what it finds as outcomes, with the
//! list's variant, the item's source and position; the visitor stats apply the same rule to
//! the visitor's lists and events of the period they cover (a list older than the period is
//! not among them, so an event naming one falls back to the window there).
//!
//! On the write path, once an event is durable, it is attributed and recorded. An event id is
//! recorded once, so a re-sent event never counts twice; an event that matches no
//! impression is not attributed.
//!
//! Like impressions, outcomes are best effort: recorded right after the acknowledgement, off
//! the request path, by one task ([`Attributor`]) that works through a queue of at most
//! [`MAX_QUEUED`] events; past it (a burst faster than attribution) and at a crash,
//! attributions are lost, never an event.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use chrono::Duration;
use tokio::{sync::mpsc, task::JoinHandle};
use vitrina_core::{
    ports::{AppendOutcome, AttributedOutcome, Impression},
    ActivityType, StoredActivity,
};
use vitrina_experiments::attribution::{attribute, Outcome};

use crate::{
    experiments::{outcome_kind, to_exp_impression},
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
    if !is_outcome(e) {
        return Ok(());
    }
    if let Some(id) = ev.recommendation_id() {
        if !impressions.iter().any(|i| i.recommendation_id == id) {
            // A list older than the window still earns an event that names it.
            if let Some(imp) = ports.impressions.impression(&ev.user_id, id).await? {
                impressions.push(imp);
            }
        }
    }
    let Some(mut found) = attribute_to_lists(&impressions, std::slice::from_ref(e), window).pop() else {
        return Ok(());
    };
    found.value = revenue(ports, e).await;
    ports.impressions.record_outcome(found);
    Ok(())
}

/// The outcomes among `events` attributed to the lists `impressions` (the lists of the
/// events' visitors), in event order, each event id once (its first event); `value` is 0
/// (the revenue of a purchase needs the catalogue, which the write path reads after).
pub fn attribute_to_lists(
    impressions: &[Impression],
    events: &[StoredActivity],
    window: Duration,
) -> Vec<AttributedOutcome> {
    let mut by_event: HashMap<&str, &StoredActivity> = HashMap::new();
    let outcomes: Vec<Outcome> = events
        .iter()
        .filter_map(|e| {
            let ev = &e.event;
            let outcome = Outcome {
                event_id: ev.event_id.as_str().to_string(),
                visitor: ev.user_id.to_string(),
                kind: outcome_kind(ev.activity_type)?,
                product_id: ev.product_id.as_ref()?.to_string(),
                recommendation_id: ev.recommendation_id().map(str::to_string),
                value: 0.0,
                at: ev.timestamp,
            };
            // As `attribute` does, the first event of an id is the one.
            by_event.entry(ev.event_id.as_str()).or_insert(e);
            Some(outcome)
        })
        .collect();
    if impressions.is_empty() || outcomes.is_empty() {
        return Vec::new();
    }
    // Each list carries its variant label through the attribution.
    let lists: Vec<_> =
        impressions.iter().map(|i| to_exp_impression(i, None, Some(i.variant.clone()))).collect();
    attribute(&lists, &outcomes, window)
        .into_iter()
        .filter_map(|a| {
            let ev = &by_event.get(a.event_id.as_str())?.event;
            Some(AttributedOutcome {
                variant: a.variant?,
                user_id: ev.user_id.clone(),
                product_id: ev.product_id.clone()?,
                kind: ev.activity_type,
                created_at: ev.timestamp,
                event_id: a.event_id,
                recommendation_id: a.recommendation_id,
                source: a.source,
                position: a.position,
                value: a.value,
            })
        })
        .collect()
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

    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn list(id: &str, at: i64, variant: &str, items: &[(&str, &str)]) -> Impression {
        Impression {
            recommendation_id: id.into(),
            user_id: vitrina_core::UserId::parse("u").unwrap(),
            model_version: "v1".into(),
            variant: variant.into(),
            created_at: vitrina_core::time::from_millis(at),
            items: items
                .iter()
                .enumerate()
                .map(|(i, (p, s))| vitrina_core::ports::ImpressionItem {
                    product_id: vitrina_core::ProductId::parse(p).unwrap(),
                    source: s.to_string(),
                    position: i as u32,
                })
                .collect(),
        }
    }

    fn event(id: &str, kind: &str, product: &str, at: i64, rec: Option<&str>) -> StoredActivity {
        let metadata = rec.map(|r| serde_json::json!({"recommendationId": r}).as_object().unwrap().clone());
        let input = ActivityInput {
            event_id: Some(id.into()),
            user_id: Some("u".into()),
            activity_type: Some(kind.into()),
            product_id: Some(product.into()),
            metadata,
            timestamp: Some(serde_json::json!(at)),
        };
        let now = vitrina_core::time::from_millis(at);
        StoredActivity { seq: 0, event: NewActivity::validate(input, now).unwrap(), received_at: now }
    }

    /// The rule the write path records and the visitor stats count: by the list an event
    /// names, else the latest list within the window; views and unshown products earn nothing.
    #[test]
    fn events_are_attributed_by_id_then_by_window_with_the_lists_variant_and_source() {
        let lists = [
            list("r1", T0, "a", &[("p1", "collaborative_filtering"), ("p2", "popular")]),
            list("r2", T0 + HOUR, "b", &[("p2", "popular")]),
        ];
        let events = [
            event("e1", "click", "p1", T0 + 10, Some("r1")),    // by id
            event("e2", "click", "p2", T0 + 2 * HOUR, None),    // by window: the latest, r2
            event("e3", "purchase", "p2", T0 + 2 * HOUR, None), // by window
            event("e4", "click", "p9", T0 + 10, None),          // never shown
            event("e5", "click", "p1", T0 + 30 * HOUR, None),   // outside the window
            event("e6", "view", "p1", T0 + 10, Some("r1")),     // a view is no outcome
            event("e7", "click", "p2", T0 + 10, Some("nope")),  // unknown id: the window, r1
        ];
        let found = attribute_to_lists(&lists, &events, Duration::hours(24));
        let got: Vec<_> = found
            .iter()
            .map(|o| {
                (o.event_id.as_str(), o.recommendation_id.as_str(), o.variant.as_str(), o.source.as_str())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("e1", "r1", "a", "collaborative_filtering"),
                ("e2", "r2", "b", "popular"),
                ("e3", "r2", "b", "popular"),
                ("e7", "r1", "a", "popular"),
            ]
        );
        assert_eq!((found[2].kind, found[2].position, found[2].value), (ActivityType::Purchase, 0, 0.0));
        let stats = vitrina_core::stats::user_stats(&lists, &found);
        assert_eq!((stats.total.impressions, stats.total.clicks, stats.total.conversions), (3, 3, 1));
        assert!(attribute_to_lists(&[], &events, Duration::hours(24)).is_empty());
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
