//! Attribution on the write path: once a click, add-to-cart or purchase is durable, it is
//! tied to the served list it came from (its `metadata.recommendationId`, else the latest
//! list of that visitor showing the product within the attribution window) and recorded as
//! an outcome with that list's variant, the item's source and position. An event id is
//! recorded once, so a re-sent event never counts twice; an event that matches no
//! impression is not attributed.
//!
//! Like impressions, outcomes are best effort: recorded right after the acknowledgement, off
//! the request path; a crash in between loses that attribution, never an event.

use chrono::Duration;
use vitrina_core::{ports::Impression, ActivityType, StoredActivity};
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

/// Attributes the outcome events among `events` and records what matched.
pub async fn attribute_events(ports: Ports, window: Duration, events: Vec<StoredActivity>) {
    for e in events.iter().filter(|e| is_outcome(e)) {
        if let Err(err) = attribute_one(&ports, window, e).await {
            tracing::warn!(event_id = %e.event.event_id.as_str(), error = %err, "event not attributed");
        }
    }
}

async fn attribute_one(
    ports: &Ports,
    window: Duration,
    e: &StoredActivity,
) -> vitrina_core::ports::StoreResult<()> {
    let ev = &e.event;
    let (Some(product), Some(kind)) = (&ev.product_id, outcome_kind(ev.activity_type)) else { return Ok(()) };
    let mut impressions: Vec<Impression> =
        ports.impressions.impressions_for_user(&ev.user_id, ev.timestamp - window).await?;
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
