//! Users: list, read, create or update, and delete (with all their data).

use axum::{extract::State, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::{
    catalog::{check_attributes, check_text},
    changes::Change,
    time::format_ts,
    User, UserId,
};

use crate::{
    dto::{check_limit, check_offset, ActivityDto},
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
    state::AppState,
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: String,
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            name: u.name.clone(),
            attributes: u.attributes.clone(),
            created_at: format_ts(u.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInput {
    pub id: String,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    pub success: bool,
    pub user: UserDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub success: bool,
    pub total: u64,
    pub users: Vec<UserDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub offset: Option<usize>,
    /// 1–1000, default 100.
    pub limit: Option<usize>,
}

/// Lists users ordered by id.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListQuery),
    responses((status = 200, body = UserList), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<UserList>> {
    let limit = check_limit(q.limit, 100, 1000)?;
    let (users, total) = s.ports.users.users(check_offset(q.offset)?, limit).await?;
    Ok(Json(UserList { success: true, total, users: users.iter().map(UserDto::from).collect() }))
}

/// Creates or updates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserInput,
    responses((status = 200, body = UserResponse), (status = 400, body = ErrorBody)))]
pub async fn upsert(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<UserInput>,
) -> ApiResult<Json<UserResponse>> {
    let id = UserId::parse(&input.id)?;
    let name = input.name.as_deref().map(|n| check_text("name", n)).transpose()?;
    let attributes = input.attributes.unwrap_or_default();
    check_attributes("attributes", &attributes)?;
    let created_at = s.ports.users.user(&id).await?.map_or_else(Utc::now, |u| u.created_at);
    let user = User { id, name, attributes, created_at };
    s.ports.users.upsert_user(user.clone()).await?;
    Ok(Json(UserResponse { success: true, user: UserDto::from(&user) }))
}

/// Reads one user.
#[utoipa::path(get, path = "/api/v1/users/{userId}", tag = "users", params(("userId" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<UserResponse>> {
    let id = UserId::parse(&id)?;
    let user =
        s.ports.users.user(&id).await?.ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(Json(UserResponse { success: true, user: UserDto::from(&user) }))
}

/// Deletes a user with all their events, served lists and attributed outcomes (right to
/// erasure). When it returns, nothing of the visitor is used or kept: online state and cached
/// lists are gone, the online state's checkpoint is discarded, and the rows are erased from
/// the database files (zeroed, WAL checkpointed).
#[utoipa::path(delete, path = "/api/v1/users/{userId}", tag = "users", params(("userId" = String, Path)),
    responses((status = 200, description = "deleted, with counts"), (status = 404, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let id = UserId::parse(&id)?;
    let deleted = erase(&s, &id).await?.ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(Json(
        json!({"success": true, "deleted": {"userId": id.as_str(), "events": deleted.events, "impressions": deleted.impressions}}),
    ))
}

/// Erases a visitor: when it returns, nothing of them is used or kept (see [`delete`]).
/// `None` when the store held no such user (the online state and caches are cleared anyway).
pub(crate) async fn erase(s: &AppState, id: &UserId) -> ApiResult<Option<vitrina_core::ports::DeletedUser>> {
    let deleted = forget_deleted(s, id, None, s.ports.users.delete_user(id)).await?;
    if deleted.is_some() {
        tracing::info!("user erased");
    }
    Ok(deleted)
}

/// Deletes some of a visitor's events (`seqs`, a retraction): when it returns, no process
/// uses them any more (what is left of the visitor is read back from the log). Answers how
/// many were deleted.
pub(crate) async fn retract(s: &AppState, id: &UserId, seqs: &[u64]) -> ApiResult<u64> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let last = seqs.iter().copied().max();
    forget_deleted(s, id, last, s.ports.log.delete_events(id, seqs)).await
}

/// Runs `delete`, a deletion of the visitor's data in the store (all of it, or only some
/// of their events, the last at sequence `partly`), so that whatever it answers nothing
/// deleted is used afterwards: not by this process's engine, cache or checkpoint, nor, once
/// told, by the other processes of the deployment.
async fn forget_deleted<T>(
    s: &AppState,
    id: &UserId,
    partly: Option<u64>,
    delete: impl std::future::Future<Output = vitrina_core::ports::StoreResult<T>>,
) -> ApiResult<T> {
    // The online state's checkpoint may hold the visitor's events: it goes first (a crash
    // after the rows were deleted must not leave it to be restored) and again after the
    // engine forgot them (one copied meanwhile).
    let checkpoints = s.follower.checkpoints().cloned();
    if let Some(checkpoints) = &checkpoints {
        checkpoints.discard().await?;
    }
    // The highest sequence present before an erasure: the erased events may be the last
    // ones, and the highest present after it would then lie below them.
    let head_before = match partly {
        None => s.ports.log.stats().await.map(|st| st.max_seq).ok(),
        Some(_) => None,
    };
    let deleted = delete.await;
    // Nothing deleted is used from here on, whatever the store answered (a retry after a
    // partial failure finds nothing to delete but must still clear these): the engine's
    // online state and the cached lists go too (the model holds no per-visitor data:
    // serving folds visitors in from their current events). A retraction's visitor is read
    // back from the log at their next list.
    // Their read-your-writes watermark goes too: it may name a deleted event, which no
    // replica would ever apply.
    drop_held(s, id, partly.is_some()).await;
    s.cluster.forget(id).await;
    // Events of the visitor up to `through` that a broker still delivers to a replica are
    // not applied there: for a retraction, up to the last deleted one (the replica reads
    // the kept ones back from the log); for an erasure, up to the highest sequence present
    // before or after it (a replica reads any later ones from the log).
    let through = match partly {
        Some(last) => last,
        None => {
            let head_after = s.ports.log.stats().await.map(|st| st.max_seq).ok();
            head_before.zip(head_after).map_or(u64::MAX, |(before, after)| before.max(after))
        }
    };
    s.cluster.tell(Change::Erased { user: id.clone(), through, partly: partly.is_some() });
    if let Some(checkpoints) = &checkpoints {
        checkpoints.discard().await?;
    }
    Ok(deleted?)
}

/// Drops what this process holds of a visitor whose events were deleted: their online state
/// (read back from the log at their next list when only some were, `partly`) and their
/// cached lists. The same here and on a process that is told of it.
pub(crate) async fn drop_held(s: &AppState, id: &UserId, partly: bool) {
    if partly {
        s.engine.reload_user(id);
    } else {
        s.engine.forget_user(id);
    }
    s.ports.cache.invalidate_user(id).await;
}

/// One served list, as kept for attribution and stats.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedListDto {
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
    pub served_at: String,
    /// Product ids in the order shown.
    pub product_ids: Vec<String>,
}

/// An event attributed to a served list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeDto {
    pub event_id: String,
    pub recommendation_id: String,
    pub product_id: String,
    pub activity_type: String,
    pub value: f64,
    pub at: String,
}

/// Everything held about a visitor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserExport {
    pub success: bool,
    pub user_id: String,
    /// The user record, if one was created.
    pub user: Option<UserDto>,
    /// Every event, oldest first.
    pub events: Vec<ActivityDto>,
    /// The lists served to the visitor within the retention.
    pub served_lists: Vec<ServedListDto>,
    pub outcomes: Vec<OutcomeDto>,
    pub exported_at: String,
}

/// Everything held about a visitor (right of access): the user record, every event, the
/// lists served and the outcomes attributed to them. 404 when nothing is held (an unknown
/// or erased visitor).
#[utoipa::path(get, path = "/api/v1/users/{userId}/export", tag = "users", params(("userId" = String, Path)),
    responses((status = 200, body = UserExport), (status = 404, body = ErrorBody)))]
pub async fn export(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<UserExport>> {
    let id = UserId::parse(&id)?;
    let epoch = chrono::DateTime::<Utc>::UNIX_EPOCH;
    let user = s.ports.users.user(&id).await?;
    let events = s.ports.log.user_events_since(&id, epoch).await?;
    let lists = s.ports.impressions.impressions_for_user(&id, epoch).await?;
    let outcomes = s.ports.impressions.outcomes_for_user(&id).await?;
    if user.is_none() && events.is_empty() && lists.is_empty() && outcomes.is_empty() {
        return Err(ApiError::not_found(format!("nothing is held about visitor {id}")));
    }
    Ok(Json(UserExport {
        success: true,
        user_id: id.to_string(),
        user: user.as_ref().map(UserDto::from),
        events: events.iter().map(ActivityDto::from).collect(),
        served_lists: lists
            .iter()
            .map(|l| ServedListDto {
                recommendation_id: l.recommendation_id.clone(),
                model_version: l.model_version.clone(),
                variant: l.variant.clone(),
                served_at: format_ts(l.created_at),
                product_ids: l.items.iter().map(|i| i.product_id.to_string()).collect(),
            })
            .collect(),
        outcomes: outcomes
            .iter()
            .map(|o| OutcomeDto {
                event_id: o.event_id.clone(),
                recommendation_id: o.recommendation_id.clone(),
                product_id: o.product_id.to_string(),
                activity_type: o.kind.as_str().into(),
                value: o.value,
                at: format_ts(o.created_at),
            })
            .collect(),
        exported_at: format_ts(Utc::now()),
    }))
}
