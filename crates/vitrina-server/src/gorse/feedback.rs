//! Gorse's feedback: activity events, appended through Vitrina's one write path (durable,
//! all or nothing, followed by the engine before the answer) and read back from the log.

use std::ops::ControlFlow;

use axum::{extract::State, Json};
use chrono::{DateTime, Duration, Utc};
use vitrina_core::{ports::AppendOutcome, NewActivity, ProductId, StoredActivity, UserId, ValidationError};

use super::{
    model::{
        activity_of, feedback_of, latest_feedback, latest_item_feedback, product_of, Feedback, FeedbackInput,
        FeedbackPage, Item, Success,
    },
    GorseJson, PageQuery,
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiPath, ApiQuery},
    ingest::ingest,
    state::AppState,
};

/// How far ahead of now a feedback is still listed: Gorse's clock allowance.
const CLOCK_ERROR: Duration = Duration::seconds(5);
/// Most log events one request reads: a typed page looking for feedback of its type, and an
/// item's feedback and a user's neighbours, which are judged on the events of the log's last
/// this many sequence numbers (the log has no index by item).
const SCAN: usize = 100_000;
/// Events read from the log at a time.
const CHUNK: usize = 1_000;

/// Feedback dated up to now is listed (with Gorse's clock allowance); a write-back dated
/// later is not yet.
pub(crate) fn listed_until() -> DateTime<Utc> {
    Utc::now() + CLOCK_ERROR
}

/// Every stored event of `user`, oldest first.
pub(crate) async fn history(s: &AppState, user: &UserId) -> ApiResult<Vec<StoredActivity>> {
    Ok(s.ports.log.user_events_since(user, DateTime::<Utc>::UNIX_EPOCH).await?)
}

/// How a read of the log ended: the last sequence read, and whether it reached the end.
struct Read {
    last: u64,
    end: bool,
}

/// Reads the log after `after` a page at a time, handing `visit` each event, until `visit`
/// breaks, the log ends, or [`SCAN`] events were read.
async fn read_log(
    s: &AppState,
    after: u64,
    mut visit: impl FnMut(&StoredActivity) -> ControlFlow<()>,
) -> ApiResult<Read> {
    let mut read = Read { last: after, end: false };
    for _ in 0..SCAN / CHUNK {
        let page = s.ports.log.page(read.last, CHUNK).await?;
        for e in &page {
            read.last = e.seq;
            if visit(e).is_break() {
                return Ok(read);
            }
        }
        if page.len() < CHUNK {
            read.end = true;
            break;
        }
    }
    Ok(read)
}

/// Hands `visit` the events of the log's last [`SCAN`] sequence numbers, oldest first.
pub(crate) async fn recent_events(s: &AppState, mut visit: impl FnMut(&StoredActivity)) -> ApiResult<()> {
    let head = s.ports.log.stats().await?.max_seq;
    read_log(s, head.saturating_sub(SCAN as u64), |e| {
        visit(e);
        ControlFlow::Continue(())
    })
    .await
    .map(|_| ())
}

/// Validates every feedback (all or nothing) into events.
pub(crate) fn events(s: &AppState, feedback: Vec<FeedbackInput>) -> ApiResult<Vec<NewActivity>> {
    let now = Utc::now();
    let several = feedback.len() > 1;
    let mut out = Vec::with_capacity(feedback.len());
    let mut errors: Vec<ValidationError> = Vec::new();
    for (i, f) in feedback.into_iter().enumerate() {
        match activity_of(f, &s.gorse.types, now) {
            Ok(e) => out.push(e),
            Err(errs) if several => errors.extend(errs.into_iter().map(|e| e.within(&format!("[{i}]")))),
            Err(errs) => errors.extend(errs),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Creates the items the catalogue does not hold yet (Gorse's `auto_insert_item`): not
/// hidden, no category, no timestamp.
async fn insert_missing_items(s: &AppState, events: &[NewActivity]) -> ApiResult<()> {
    if !s.gorse.auto_insert_item {
        return Ok(());
    }
    // Every process holds the catalogue in its engine (and hears of changes): only ids it
    // lacks are candidates, and inserting one that exists after all is a conflict, not a write.
    let mut created = Vec::new();
    for id in s.engine.unknown_products(events.iter().filter_map(|e| e.product_id.as_ref())) {
        let product =
            product_of(Item::bare(id.to_string()), None, Utc::now()).map_err(ApiError::validation)?;
        // Only if still absent: an item written meanwhile is not overwritten with a blank one.
        match s.ports.catalog.insert_product(product.clone()).await {
            Ok(()) => created.push(product),
            Err(vitrina_core::ports::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !created.is_empty() {
        crate::routes::catalog::after_write(s, created).await;
    }
    Ok(())
}

/// Stores feedback: validated all or nothing, unknown items created, appended in one
/// transaction; the engine has applied it when this returns.
pub(crate) async fn store(s: &AppState, events: Vec<NewActivity>) -> ApiResult<Vec<AppendOutcome>> {
    insert_missing_items(s, &events).await?;
    Ok(ingest(s, events).await?)
}

async fn write(s: &AppState, feedback: Vec<FeedbackInput>) -> ApiResult<Json<Success>> {
    let max = s.limits.batch_events;
    if feedback.len() > max {
        return Err(ApiError::bad_request(format!(
            "at most {max} feedback per request, got {}",
            feedback.len()
        )));
    }
    let rows = feedback.len();
    let events = events(s, feedback)?;
    if !events.is_empty() {
        store(s, events).await?;
    }
    Ok(Json(Success { row_affected: rows }))
}

/// Stores feedback, all or none, durably; unknown users and (by default) items are created.
/// The same feedback with the same `Timestamp` sent again is stored once. `RowAffected`
/// counts the rows sent, as Gorse does (Gorse: `POST /api/feedback`).
#[utoipa::path(post, operation_id = "gorse_feedback_insert", path = "/api/feedback", tag = "gorse", request_body = Vec<FeedbackInput>,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn insert(
    State(s): State<AppState>,
    GorseJson(feedback): GorseJson<Vec<FeedbackInput>>,
) -> ApiResult<Json<Success>> {
    write(&s, feedback).await
}

/// As `POST /api/feedback`: the log keeps every event, and the latest feedback of a type for
/// a user and item is the one listed (Gorse: `PUT /api/feedback`).
#[utoipa::path(put, operation_id = "gorse_feedback_upsert", path = "/api/feedback", tag = "gorse", request_body = Vec<FeedbackInput>,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn upsert(
    State(s): State<AppState>,
    GorseJson(feedback): GorseJson<Vec<FeedbackInput>>,
) -> ApiResult<Json<Success>> {
    write(&s, feedback).await
}

/// A page of the feedback log in the order it was stored (Gorse: `GET
/// /api/feedback?n=&cursor=`). Every event is listed, repeats included.
#[utoipa::path(get, operation_id = "gorse_feedback_page", path = "/api/feedback", tag = "gorse", params(PageQuery),
    responses((status = 200, body = FeedbackPage), (status = 400, body = ErrorBody)))]
pub async fn page(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<FeedbackPage>> {
    let (n, after) = q.position()?;
    let events = s.ports.log.page(after, n).await?;
    // A full page may have more after it; a short one is the end.
    let cursor = events.last().filter(|_| events.len() == n).map(|e| e.seq.to_string()).unwrap_or_default();
    Ok(Json(FeedbackPage { cursor, feedback: events.iter().filter_map(feedback_of).collect() }))
}

/// A page of the feedback of one type, in the order it was stored (Gorse: `GET
/// /api/feedback/{feedbackType}?n=&cursor=`). One request reads at most 100,000 log events;
/// a page with fewer than `n` rows and a cursor means the search goes on from there.
#[utoipa::path(get, operation_id = "gorse_feedback_page_typed", path = "/api/feedback/{feedbackType}", tag = "gorse",
    params(("feedbackType" = String, Path), PageQuery),
    responses((status = 200, body = FeedbackPage), (status = 400, body = ErrorBody)))]
pub async fn page_typed(
    State(s): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<FeedbackPage>> {
    let (n, after) = q.position()?;
    let mut found: Vec<Feedback> = Vec::new();
    let read = read_log(&s, after, |e| {
        found.extend(feedback_of(e).filter(|f| f.feedback_type == kind));
        if found.len() == n {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await?;
    let cursor = if read.end { String::new() } else { read.last.to_string() };
    Ok(Json(FeedbackPage { cursor, feedback: found }))
}

/// The latest feedback of each type and item of a user, Gorse's view of their history.
async fn of(s: &AppState, user: &str) -> ApiResult<Vec<Feedback>> {
    let events = history(s, &UserId::parse(user)?).await?;
    Ok(latest_feedback(&events, listed_until()))
}

/// A user's feedback: the latest of each type and item (Gorse: `GET
/// /api/user/{userId}/feedback`).
#[utoipa::path(get, operation_id = "gorse_feedback_of_user", path = "/api/user/{userId}/feedback", tag = "gorse", params(("userId" = String, Path)),
    responses((status = 200, body = Vec<Feedback>), (status = 400, body = ErrorBody)))]
pub async fn of_user(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<Json<Vec<Feedback>>> {
    Ok(Json(of(&s, &user).await?))
}

/// A user's feedback of one type (Gorse: `GET /api/user/{userId}/feedback/{feedbackType}`).
#[utoipa::path(get, operation_id = "gorse_feedback_of_user_typed", path = "/api/user/{userId}/feedback/{feedbackType}", tag = "gorse",
    params(("userId" = String, Path), ("feedbackType" = String, Path)),
    responses((status = 200, body = Vec<Feedback>), (status = 400, body = ErrorBody)))]
pub async fn of_user_typed(
    State(s): State<AppState>,
    ApiPath((user, kind)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<Feedback>>> {
    Ok(Json(of(&s, &user).await?.into_iter().filter(|f| f.feedback_type == kind).collect()))
}

/// A user's feedback on one item, of every type (Gorse: `GET /api/feedback/{userId}/{itemId}`).
#[utoipa::path(get, operation_id = "gorse_feedback_between", path = "/api/feedback/{userId}/{itemId}", tag = "gorse",
    params(("userId" = String, Path), ("itemId" = String, Path)),
    responses((status = 200, body = Vec<Feedback>), (status = 400, body = ErrorBody)))]
pub async fn between(
    State(s): State<AppState>,
    ApiPath((user, item)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<Feedback>>> {
    let item = ProductId::parse(&item)?;
    Ok(Json(of(&s, &user).await?.into_iter().filter(|f| f.item_id == item.as_str()).collect()))
}

/// A user's feedback of one type on one item; 404 when there is none (Gorse: `GET
/// /api/feedback/{feedbackType}/{userId}/{itemId}`).
#[utoipa::path(get, operation_id = "gorse_feedback_one", path = "/api/feedback/{feedbackType}/{userId}/{itemId}", tag = "gorse",
    params(("feedbackType" = String, Path), ("userId" = String, Path), ("itemId" = String, Path)),
    responses((status = 200, body = Feedback), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    ApiPath((kind, user, item)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Feedback>> {
    ProductId::parse(&item)?;
    of(&s, &user)
        .await?
        .into_iter()
        .find(|f| f.feedback_type == kind && f.item_id == item)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no {kind:?} feedback of user {user} on item {item}")))
}

/// Deletes a user's feedback on an item, of every type or of `kind`: every stored event of
/// it, so that no list, model or listing uses it from then on (training drops it at the next
/// job). Answers how many feedback Gorse would have held (one per type).
async fn retract(s: &AppState, user: &str, item: &str, kind: Option<&str>) -> ApiResult<Json<Success>> {
    let user = UserId::parse(user)?;
    let item = ProductId::parse(item)?;
    let mut types = std::collections::BTreeSet::new();
    let seqs: Vec<u64> = history(s, &user)
        .await?
        .iter()
        .filter_map(|e| {
            let f = feedback_of(e)?;
            let hit = f.item_id == item.as_str() && kind.is_none_or(|k| f.feedback_type == k);
            hit.then(|| {
                types.insert(f.feedback_type);
                e.seq
            })
        })
        .collect();
    // A concurrent deletion of the same feedback may have taken them first.
    let deleted = crate::routes::users::retract(s, &user, &seqs).await?;
    Ok(Json(Success { row_affected: if deleted > 0 { types.len() } else { 0 } }))
}

/// Deletes a user's feedback of every type on one item; `RowAffected` counts the types
/// (Gorse: `DELETE /api/feedback/{userId}/{itemId}`).
#[utoipa::path(delete, operation_id = "gorse_feedback_delete_between", path = "/api/feedback/{userId}/{itemId}", tag = "gorse",
    params(("userId" = String, Path), ("itemId" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_between(
    State(s): State<AppState>,
    ApiPath((user, item)): ApiPath<(String, String)>,
) -> ApiResult<Json<Success>> {
    retract(&s, &user, &item, None).await
}

/// Deletes a user's feedback of one type on one item; `RowAffected` is 1, or 0 when there
/// was none (Gorse: `DELETE /api/feedback/{feedbackType}/{userId}/{itemId}`).
#[utoipa::path(delete, operation_id = "gorse_feedback_delete_one", path = "/api/feedback/{feedbackType}/{userId}/{itemId}", tag = "gorse",
    params(("feedbackType" = String, Path), ("userId" = String, Path), ("itemId" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_one(
    State(s): State<AppState>,
    ApiPath((kind, user, item)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Success>> {
    retract(&s, &user, &item, Some(&kind)).await
}

/// An item's feedback: the latest of each type and user among the events of the log's
/// last 100,000 sequence numbers (the log has no index by item).
async fn of_item(s: &AppState, item: &str) -> ApiResult<Vec<Feedback>> {
    let item = ProductId::parse(item)?;
    let mut found = Vec::new();
    recent_events(s, |e| {
        if e.event.product_id.as_ref() == Some(&item) {
            found.push(e.clone());
        }
    })
    .await?;
    Ok(latest_item_feedback(&found, listed_until()))
}

/// An item's feedback: the latest of each type and user, judged on the events of the
/// log's last 100,000 sequence numbers (Gorse: `GET /api/item/{itemId}/feedback`).
#[utoipa::path(get, operation_id = "gorse_feedback_of_item", path = "/api/item/{itemId}/feedback", tag = "gorse",
    params(("itemId" = String, Path)),
    responses((status = 200, body = Vec<Feedback>), (status = 400, body = ErrorBody)))]
pub async fn of_item_all(
    State(s): State<AppState>,
    ApiPath(item): ApiPath<String>,
) -> ApiResult<Json<Vec<Feedback>>> {
    Ok(Json(of_item(&s, &item).await?))
}

/// An item's feedback of one type, judged on the log's last 100,000 sequence numbers (Gorse: `GET
/// /api/item/{itemId}/feedback/{feedbackType}`).
#[utoipa::path(get, operation_id = "gorse_feedback_of_item_typed", path = "/api/item/{itemId}/feedback/{feedbackType}", tag = "gorse",
    params(("itemId" = String, Path), ("feedbackType" = String, Path)),
    responses((status = 200, body = Vec<Feedback>), (status = 400, body = ErrorBody)))]
pub async fn of_item_typed(
    State(s): State<AppState>,
    ApiPath((item, kind)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<Feedback>>> {
    Ok(Json(of_item(&s, &item).await?.into_iter().filter(|f| f.feedback_type == kind).collect()))
}
