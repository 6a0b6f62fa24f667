//! Gorse's users: Vitrina's user records; deleting one is Vitrina's erasure.

use axum::{extract::State, Json};
use chrono::Utc;
use vitrina_core::{ProductId, User, UserId, ValidationError};

use super::{
    feedback,
    model::{
        patched_user, user_from_input, user_of, user_record, GorseUser, GorseUserInput, GorseUserPatch,
        Score, Success, UserPage,
    },
    neighbours::Window,
    next_cursor, GorseJson, GorseObject, ListQuery, PageQuery,
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiPath, ApiQuery},
    state::AppState,
};

/// The record `user` is stored as (keeping what an existing one has of its own), or what is
/// wrong with it.
async fn record(s: &AppState, user: GorseUser) -> ApiResult<Result<User, Vec<ValidationError>>> {
    let existing = match UserId::parse(&user.user_id) {
        Ok(id) => s.ports.users.user(&id).await?,
        Err(_) => None,
    };
    Ok(user_record(user, existing.as_ref(), Utc::now()))
}

/// Inserts or replaces a user (Gorse: `POST /api/user`).
#[utoipa::path(post, operation_id = "gorse_users_insert", path = "/api/user", tag = "gorse", request_body = GorseUserInput,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn insert(
    State(s): State<AppState>,
    GorseJson(input): GorseJson<GorseUserInput>,
) -> ApiResult<Json<Success>> {
    let user = record(&s, user_from_input(input)).await?.map_err(ApiError::validation)?;
    s.ports.users.upsert_user(user).await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Inserts or replaces users: validated all or none, then stored one by one (Gorse: `POST
/// /api/users`).
#[utoipa::path(post, operation_id = "gorse_users_insert_many", path = "/api/users", tag = "gorse", request_body = Vec<GorseUserInput>,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn insert_many(
    State(s): State<AppState>,
    GorseJson(inputs): GorseJson<Vec<GorseUserInput>>,
) -> ApiResult<Json<Success>> {
    let max = s.limits.bulk_products;
    if inputs.len() > max {
        return Err(ApiError::bad_request(format!("at most {max} users per request, got {}", inputs.len())));
    }
    let rows = inputs.len();
    let mut users = Vec::with_capacity(rows);
    let mut errors: Vec<ValidationError> = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        match record(&s, user_from_input(input)).await? {
            Ok(u) => users.push(u),
            Err(errs) => errors.extend(errs.into_iter().map(|e| e.within(&format!("[{i}]")))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // The user store writes one record at a time: validated first, so a bad one stores none.
    for user in users {
        s.ports.users.upsert_user(user).await?;
    }
    Ok(Json(Success { row_affected: rows }))
}

/// Reads a user; 404 when there is none (Gorse: `GET /api/user/{userId}`).
#[utoipa::path(get, operation_id = "gorse_users_get", path = "/api/user/{userId}", tag = "gorse", params(("userId" = String, Path)),
    responses((status = 200, body = GorseUser), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<GorseUser>> {
    let id = UserId::parse(&id)?;
    let user =
        s.ports.users.user(&id).await?.ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(Json(user_of(&user)))
}

/// Changes the fields given; 404 for an unknown user (Gorse: `PATCH /api/user/{userId}`).
#[utoipa::path(patch, operation_id = "gorse_users_patch", path = "/api/user/{userId}", tag = "gorse", params(("userId" = String, Path)),
    request_body = GorseUserPatch,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    GorseObject(p): GorseObject<GorseUserPatch>,
) -> ApiResult<Json<Success>> {
    let id = UserId::parse(&id)?;
    let existing =
        s.ports.users.user(&id).await?.ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    let user = patched_user(user_of(&existing), p);
    let user = user_record(user, Some(&existing), Utc::now()).map_err(ApiError::validation)?;
    s.ports.users.upsert_user(user).await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Erases a user with all their feedback, served lists and outcomes, as `DELETE
/// /api/v1/users/{userId}` does; `RowAffected` is 0 when there was no such user (Gorse:
/// `DELETE /api/user/{userId}`).
#[utoipa::path(delete, operation_id = "gorse_users_delete", path = "/api/user/{userId}", tag = "gorse", params(("userId" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Success>> {
    let id = UserId::parse(&id)?;
    let erased = crate::routes::users::erase(&s, &id).await?;
    Ok(Json(Success { row_affected: usize::from(erased.is_some()) }))
}

/// A page of users ordered by id (Gorse: `GET /api/users?n=&cursor=`).
#[utoipa::path(get, operation_id = "gorse_users_page", path = "/api/users", tag = "gorse", params(PageQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody)))]
pub async fn page(State(s): State<AppState>, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<Json<UserPage>> {
    let (n, offset) = q.rows()?;
    let Some(offset) = offset else { return Ok(Json(UserPage { cursor: String::new(), users: Vec::new() })) };
    let (users, total) = s.ports.users.users(offset, n).await?;
    let cursor = next_cursor(offset, users.len(), total);
    Ok(Json(UserPage { cursor, users: users.iter().map(user_of).collect() }))
}

/// A user's neighbours: the visitors whose items overlap theirs, scored by the cosine of the
/// two item sets, judged on the events of the log's last 100,000 sequence numbers; an unknown user has none
/// (Gorse: `GET /api/user/{userId}/neighbors`).
#[utoipa::path(get, operation_id = "gorse_users_neighbors", path = "/api/user/{userId}/neighbors", tag = "gorse",
    params(("userId" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn neighbors(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    let id = UserId::parse(&id)?;
    let (limit, skip) = q.window()?;
    // Feedback listed by now, as in the listings.
    let until = feedback::listed_until();
    let items: std::collections::HashSet<ProductId> = feedback::history(&s, &id)
        .await?
        .into_iter()
        .filter(|e| e.event.timestamp <= until)
        .filter_map(|e| e.event.product_id)
        .collect();
    if items.is_empty() {
        return Ok(Json(Vec::new()));
    }
    let mut window = Window::default();
    feedback::recent_events(&s, |e| match &e.event.product_id {
        Some(product) if e.event.timestamp <= until => window.see(&e.event.user_id, product),
        _ => {}
    })
    .await?;
    Ok(Json(window.neighbours(&id, &items).into_iter().take(limit).skip(skip).collect()))
}
