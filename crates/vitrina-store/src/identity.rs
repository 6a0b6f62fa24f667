//! What makes two events with one `eventId` the same event, for every backend: a retry may
//! leave out the timestamp (then the time of receipt differs), but never changes who did
//! what to what. A repeat with another identity is a conflict and stores nothing.

use vitrina_core::{ports::StoreError, NewActivity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub kind: String,
    pub product: Option<String>,
}

impl Identity {
    pub fn of(e: &NewActivity) -> Self {
        Self {
            user: e.user_id.to_string(),
            kind: e.activity_type.as_str().to_string(),
            product: e.product_id.as_ref().map(|p| p.to_string()),
        }
    }
}

/// The conflict of an `eventId` stored at `seq` for a different event.
pub fn reused(id: &str, seq: u64) -> StoreError {
    StoreError::Conflict(format!(
        "eventId {id:?} was already used for a different event (sequence {seq}: another user, activity type or product)"
    ))
}
