//! A Gorse-compatible REST API at the paths Gorse serves (`/api/feedback`, `/api/user…`,
//! `/api/item…`, `/api/recommend/{userId}`, …), so that shops moving from Gorse keep their
//! SDK and their code. It is a translation layer and nothing more: every request becomes a
//! call of Vitrina's own write path, store and engine, under the same keys, limits and
//! roles as `/api/v1` ([`model`] holds the mapping).
//!
//! Differences from Gorse, by design: errors have Vitrina's JSON shape (Gorse's SDKs read
//! only the status); a change to a missing user or item is a 404 rather than a silent 200;
//! `DELETE /api/feedback/…` deletes every stored event of that feedback from the log (a
//! retraction), and `DELETE /api/user/{userId}` erases a visitor with all their events.

pub mod feedback;
pub mod items;
pub mod lists;
pub mod model;
pub mod neighbours;
pub mod users;

use std::collections::BTreeMap;

use axum::{
    extract::{FromRequest, Request},
    routing::{get, post},
    Router,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{error::ApiError, state::AppState};

/// A Gorse JSON body: as [`ApiJson`], and only an object or an array of objects (serde
/// would read an array as a struct's fields in order, which Gorse never sends).
pub struct GorseJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for GorseJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = crate::extract::json_body(req, state).await?;
        // The shape first, without building values: an object, or an array of objects.
        let object = |raw: &RawValue| raw.get().starts_with('{');
        let objects = match serde_json::from_slice::<&RawValue>(&bytes) {
            Ok(raw) if raw.get().starts_with('[') => serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .is_ok_and(|items| items.into_iter().all(object)),
            Ok(raw) => object(raw),
            // Malformed: the parse below says where.
            Err(_) => true,
        };
        if !objects {
            return Err(ApiError::validation(vec![vitrina_core::ValidationError::new(
                "",
                "must be a JSON object, or an array of objects",
            )]));
        }
        crate::extract::parse_json(&bytes).map(GorseJson)
    }
}

/// A Gorse JSON body that must be one object: for the patches, whose fields are all optional,
/// so that serde would read an array (`[]`) as a patch that changes nothing.
pub struct GorseObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for GorseObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = crate::extract::json_body(req, state).await?;
        // Malformed JSON passes here: the parse below says where.
        if serde_json::from_slice::<&RawValue>(&bytes).is_ok_and(|raw| !raw.get().starts_with('{')) {
            return Err(ApiError::validation(vec![vitrina_core::ValidationError::new(
                "",
                "must be a JSON object",
            )]));
        }
        crate::extract::parse_json(&bytes).map(GorseObject)
    }
}

/// The `[gorse]` section of the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GorseConfig {
    /// Gorse feedback type → Vitrina activity type. Types not listed: a Vitrina activity
    /// name stands for itself, anything else is stored as a `view`.
    pub feedback_types: BTreeMap<String, String>,
    /// Feedback on an item the catalogue does not hold creates it (as Gorse's
    /// `auto_insert_item`); off: such feedback is stored but the item is not recommended
    /// until it is inserted.
    pub auto_insert_item: bool,
}

impl Default for GorseConfig {
    fn default() -> Self {
        Self { feedback_types: model::default_feedback_types(), auto_insert_item: true }
    }
}

/// The Gorse configuration as the handlers use it.
#[derive(Debug, Clone, Default)]
pub struct Gorse {
    pub types: model::FeedbackTypes,
    pub auto_insert_item: bool,
}

impl Gorse {
    /// Checks the config (each target an activity type with a product).
    pub fn new(config: &GorseConfig) -> Result<Self, String> {
        Ok(Self {
            types: model::FeedbackTypes::from_config(&config.feedback_types)?,
            auto_insert_item: config.auto_insert_item,
        })
    }
}

/// Most items a Gorse list may hold (`n` + `offset`).
pub const MAX_LIST: usize = crate::routes::recommendations::MAX_LIMIT;

/// Routes whose bodies are batches (the batch body limit applies).
pub fn batch_routes() -> Router<AppState> {
    Router::new()
        .route("/api/feedback", post(feedback::insert).put(feedback::upsert).get(feedback::page))
        .route("/api/items", post(items::insert_many).get(items::page))
        .route("/api/users", post(users::insert_many).get(users::page))
}

/// Every other Gorse route. A path Gorse's SDKs call with an empty last segment (`…/` for
/// "no category") is routed like the path without it.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/health/live", get(lists::live))
        .route("/api/health/ready", get(lists::ready))
        .route("/api/user", post(users::insert))
        .route("/api/user/{userId}", get(users::get).patch(users::patch).delete(users::delete))
        .route("/api/user/{userId}/feedback", get(feedback::of_user))
        .route("/api/user/{userId}/feedback/{feedbackType}", get(feedback::of_user_typed))
        .route("/api/user/{userId}/neighbors", get(users::neighbors))
        .route("/api/item/{itemId}/feedback", get(feedback::of_item_all))
        .route("/api/item/{itemId}/feedback/{feedbackType}", get(feedback::of_item_typed))
        .route("/api/item", post(items::insert))
        .route("/api/item/{itemId}", get(items::get).patch(items::patch).delete(items::delete))
        .route(
            "/api/item/{itemId}/category/{category}",
            axum::routing::put(items::add_category).delete(items::remove_category),
        )
        .route("/api/item/{itemId}/neighbors", get(lists::neighbors))
        .route("/api/item/{itemId}/neighbors/", get(lists::neighbors))
        .route("/api/item/{itemId}/neighbors/{category}", get(lists::neighbors_in))
        .route("/api/feedback/{feedbackType}", get(feedback::page_typed))
        .route("/api/feedback/{userId}/{itemId}", get(feedback::between).delete(feedback::delete_between))
        .route(
            "/api/feedback/{feedbackType}/{userId}/{itemId}",
            get(feedback::one).delete(feedback::delete_one),
        )
        .route("/api/recommend/{userId}", get(lists::recommend))
        .route("/api/recommend/{userId}/", get(lists::recommend))
        .route("/api/recommend/{userId}/{category}", get(lists::recommend_in))
        .route("/api/session/recommend", post(lists::session))
        .route("/api/session/recommend/", post(lists::session))
        .route("/api/session/recommend/{category}", post(lists::session_in))
        .route("/api/popular", get(lists::popular))
        .route("/api/popular/", get(lists::popular))
        .route("/api/popular/{category}", get(lists::popular_in))
        .route("/api/latest", get(lists::latest))
        .route("/api/latest/", get(lists::latest))
        .route("/api/latest/{category}", get(lists::latest_in))
}

/// `?n=&offset=` of Gorse's lists, with Gorse's defaults (10, 0).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items to return, 1–100, default 10.
    pub n: Option<usize>,
    /// Items to skip, default 0. A list holds at most 100 items, as Gorse's cache: past
    /// them there are none.
    pub offset: Option<usize>,
}

impl ListQuery {
    /// The list length to compute (at most [`MAX_LIST`]) and how many of its first items
    /// to skip.
    pub fn window(&self) -> Result<(usize, usize), crate::error::ApiError> {
        let n = crate::dto::check_count("n", self.n, 10, MAX_LIST)?;
        let offset = crate::dto::check_offset(self.offset)?;
        Ok((n.saturating_add(offset).min(MAX_LIST), offset))
    }
}

/// `?n=&cursor=` of Gorse's pages (the cursor is opaque; gorsejs sends it as `Cursor`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1–1000, default 10.
    pub n: Option<usize>,
    /// The `Cursor` of the previous page; empty or absent: the first page.
    pub cursor: Option<String>,
    /// The same, as gorsejs spells it.
    #[serde(rename = "Cursor")]
    pub cursor_upper: Option<String>,
}

impl PageQuery {
    /// Rows per page and the position to start at (the cursor is a decimal position).
    pub fn position(&self) -> Result<(usize, u64), crate::error::ApiError> {
        let n = crate::dto::check_count("n", self.n, 10, 1000)?;
        // Each spelling sent must be a cursor, also when the other one is used.
        let parse = |field: &str, raw: Option<&str>| match raw.unwrap_or_default() {
            "" => Ok(None),
            cursor => cursor.parse::<u64>().map(Some).map_err(|_| {
                crate::error::ApiError::from(vitrina_core::ValidationError::new(
                    field,
                    format!("{cursor:?} is not a cursor this server gave"),
                ))
            }),
        };
        let lower = parse("cursor", self.cursor.as_deref())?;
        let upper = parse("Cursor", self.cursor_upper.as_deref())?;
        let at = lower.or(upper).unwrap_or(0);
        Ok((n, at))
    }

    /// Rows per page and the row to start at, for pages of a listing ordered by id; `None`
    /// past the deepest row a listing reads (`dto::MAX_OFFSET`), where a page is empty.
    pub fn rows(&self) -> Result<(usize, Option<usize>), crate::error::ApiError> {
        let (n, at) = self.position()?;
        Ok((n, usize::try_from(at).ok().filter(|&o| o <= crate::dto::MAX_OFFSET)))
    }
}

/// The cursor after a page of `got` rows from `offset` of `total`; empty at the end.
pub fn next_cursor(offset: usize, got: usize, total: u64) -> String {
    let next = offset + got;
    if got > 0 && (next as u64) < total {
        next.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::PageQuery;

    #[test]
    fn each_cursor_spelling_sent_must_be_a_cursor() {
        let page = |cursor: Option<&str>, upper: Option<&str>| {
            PageQuery { n: None, cursor: cursor.map(Into::into), cursor_upper: upper.map(Into::into) }
                .position()
                .map(|(_, at)| at)
        };
        assert_eq!(page(Some("20"), None).unwrap(), 20);
        assert_eq!(page(None, Some("30")).unwrap(), 30);
        assert_eq!(page(Some("20"), Some("30")).unwrap(), 20, "`cursor` wins when both are sent");
        assert_eq!(page(Some(""), None).unwrap(), 0);
        assert!(page(Some("20"), Some("oops")).is_err(), "a bad `Cursor` is refused beside a good `cursor`");
        assert!(page(Some("x"), None).is_err());
    }
}
