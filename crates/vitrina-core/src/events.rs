//! Domain events: what the system announces on the bus.
//!
//! Every accepted activity becomes one of the `User…` events; the system adds its own
//! (`RecommendationGenerated`, training and experiment events). Consumers (metrics, cache
//! invalidation on other replicas, online learners) subscribe to these instead of calling
//! into the ingest path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{time, ActivityType, StoredActivity};

/// One announcement on the bus. `kind` is the event's name, e.g. `UserViewedProduct`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    pub kind: String,
    /// When it happened, RFC 3339.
    pub occurred_at: String,
    pub user_id: Option<String>,
    pub payload: Value,
}

/// The system's own event names.
pub mod kinds {
    pub const RECOMMENDATION_GENERATED: &str = "RecommendationGenerated";
    pub const MODEL_TRAINING_STARTED: &str = "ModelTrainingStarted";
    pub const MODEL_TRAINING_FINISHED: &str = "ModelTrainingFinished";
    pub const RECOMMENDATION_MODEL_UPDATED: &str = "RecommendationModelUpdated";
    pub const EXPERIMENT_STARTED: &str = "ExperimentStarted";
    pub const EXPERIMENT_STOPPED: &str = "ExperimentStopped";
}

impl DomainEvent {
    /// The `User…` event announcing a stored activity.
    pub fn from_activity(stored: &StoredActivity) -> Self {
        let e = &stored.event;
        Self {
            kind: e.activity_type.domain_event_name().to_string(),
            occurred_at: time::format_ts(e.timestamp),
            user_id: Some(e.user_id.to_string()),
            payload: serde_json::json!({
                "eventId": e.event_id.as_str(),
                "seq": stored.seq,
                "activityType": e.activity_type,
                "productId": e.product_id.as_ref().map(|p| p.as_str()),
                "metadata": e.metadata,
            }),
        }
    }

    /// A system event with an arbitrary payload.
    pub fn system(kind: &str, user_id: Option<String>, payload: Value) -> Self {
        Self { kind: kind.to_string(), occurred_at: time::format_ts(chrono::Utc::now()), user_id, payload }
    }

    /// The activity type behind a `User…` event, if it is one.
    pub fn activity_type(&self) -> Option<ActivityType> {
        ActivityType::ALL.into_iter().find(|t| t.domain_event_name() == self.kind)
    }
}
