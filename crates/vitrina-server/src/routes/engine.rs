//! The engine's online state, in brief: what an operator compares between api replicas.

use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    state::AppState,
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineState {
    pub success: bool,
    /// The log sequence the online state had applied when the digest was taken (a digest
    /// that met a batch being applied is taken again).
    pub applied_sequence: u64,
    /// Visitors with online state.
    pub visitors: u64,
    /// Events in their recent histories.
    pub events: u64,
    /// 16 hex digits over every visitor's online state, independent of the order it was
    /// built in: two replicas that applied the same log (and forgot no visitor to stay
    /// within their limit) have the same digest.
    pub digest: String,
}

/// The online state's digest at the sequence it has applied. Compare replicas' digests at
/// the same `appliedSequence`.
#[utoipa::path(get, path = "/api/v1/engine/state", tag = "health",
    responses((status = 200, body = EngineState),
        (status = 503, description = "events were being applied during every try (`unavailable`)", body = ErrorBody)))]
pub async fn state(State(s): State<AppState>) -> ApiResult<Json<EngineState>> {
    let (engine, follower) = (s.engine.clone(), s.follower.clone());
    let read = tokio::task::spawn_blocking(move || follower.between_batches(20, || engine.digest()))
        .await
        .map_err(ApiError::internal)?;
    let Some((applied, d)) = read else {
        return Err(ApiError::unavailable(
            "events were being applied during every try: ask again (or when tracking pauses)",
        ));
    };
    Ok(Json(EngineState {
        success: true,
        applied_sequence: applied,
        visitors: d.visitors as u64,
        events: d.events as u64,
        digest: format!("{:016x}", d.digest),
    }))
}
