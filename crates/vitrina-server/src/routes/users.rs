//! Users: list, read, create or update, and delete (with all their data).

use axum::{extract::State, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::{
    catalog::{check_attributes, check_text},
    time::format_ts,
    User, UserId,
};

use crate::{
    dto::check_limit,
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
    let (users, total) = s.ports.users.users(q.offset.unwrap_or(0), limit).await?;
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

/// Deletes a user with all their events and served lists (right to erasure).
#[utoipa::path(delete, path = "/api/v1/users/{userId}", tag = "users", params(("userId" = String, Path)),
    responses((status = 200, description = "deleted, with counts"), (status = 404, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let id = UserId::parse(&id)?;
    let deleted = s
        .ports
        .users
        .delete_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    s.ports.cache.invalidate_user(&id).await;
    Ok(Json(
        json!({"success": true, "deleted": {"userId": id.as_str(), "events": deleted.events, "impressions": deleted.impressions}}),
    ))
}
