//! Gorse's JSON and how it maps onto Vitrina's domain: a Gorse item is a product, a Gorse
//! user is a user, a Gorse feedback is an activity event. Pure conversions, no I/O.
//!
//! What Gorse has and Vitrina's records do not (an item's several categories, labels and
//! comment as given; a user's labels, subscriptions and comment; a feedback's type, value
//! and comment) is kept under the `gorse` key of the product's or user's attributes and of
//! the event's metadata, so that it reads back exactly as written. An item's `Timestamp` is
//! the product's `publishedAt` attribute, by which new items and the latest list go.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use vitrina_core::{
    catalog::{check_attributes, check_text, MAX_TEXT_LEN, PUBLISHED_AT},
    ActivityInput, ActivityType, NewActivity, Price, Product, ProductId, StoredActivity, User, UserId,
    ValidationError,
};

/// The key under which Gorse's own fields are kept in attributes and metadata.
pub const KEY: &str = "gorse";

/// Gorse's answer to a write: how many rows the request carried.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    #[serde(rename = "RowAffected")]
    pub row_affected: usize,
}

/// A scored item of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Score {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Score")]
    pub score: f64,
}

/// An item as Gorse sends it (`POST /api/item`): its id and its fields, each absent or
/// `null` for Gorse's default. Unknown fields are ignored, as Gorse does.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ItemInput {
    #[schema(example = "product-1")]
    pub item_id: String,
    #[serde(flatten)]
    pub fields: ItemPatch,
}

/// Fields of an item (`PATCH /api/item/{itemId}`: absent or `null`, unchanged).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ItemPatch {
    #[serde(default)]
    pub is_hidden: Option<bool>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// RFC 3339, `2022-08-07`, `2022-08-07 00:26:46+00`, or without a zone (UTC); empty: none.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2022-08-07T00:26:46Z")]
    pub timestamp: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Value>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// An item as Gorse answers it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Item {
    pub item_id: String,
    pub is_hidden: bool,
    pub categories: Option<Vec<String>>,
    pub timestamp: String,
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Value>,
    pub comment: String,
}

/// A user as Gorse sends it (`POST /api/user`): its id and its fields.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUserInput {
    #[schema(example = "user-1")]
    pub user_id: String,
    #[serde(flatten)]
    pub fields: GorseUserPatch,
}

/// Fields of a user (`PATCH /api/user/{userId}`: absent or `null`, unchanged).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUserPatch {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Value>,
    #[serde(default)]
    pub subscribe: Option<Vec<String>>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A user as Gorse answers it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUser {
    pub user_id: String,
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Value>,
    pub subscribe: Option<Vec<String>>,
    pub comment: String,
}

/// A feedback as Gorse sends it (`POST /api/feedback`, `POST /api/session/recommend`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FeedbackInput {
    #[schema(example = "like")]
    pub feedback_type: String,
    /// Ignored by session recommendations.
    #[serde(default)]
    #[schema(example = "user-1")]
    pub user_id: Option<String>,
    #[schema(example = "product-1")]
    pub item_id: String,
    /// As an item's `Timestamp`; empty or absent: the time of receipt.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2022-08-07T00:26:46Z")]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A feedback as Gorse answers it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Feedback {
    pub feedback_type: String,
    pub user_id: String,
    pub item_id: String,
    pub value: f64,
    pub timestamp: String,
    pub comment: String,
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    /// Send back as `cursor` for the next page; empty when there is none.
    #[serde(rename = "Cursor")]
    pub cursor: String,
    #[serde(rename = "Items")]
    pub items: Vec<Item>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    #[serde(rename = "Cursor")]
    pub cursor: String,
    #[serde(rename = "Users")]
    pub users: Vec<GorseUser>,
}

/// A page of the feedback log.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackPage {
    #[serde(rename = "Cursor")]
    pub cursor: String,
    #[serde(rename = "Feedback")]
    pub feedback: Vec<Feedback>,
}

/// Which activity each Gorse feedback type becomes (the `[gorse] feedback_types` config).
/// Types not named there: Vitrina's own activity names stand for themselves, anything else
/// is a `view`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackTypes(BTreeMap<String, ActivityType>);

impl Default for FeedbackTypes {
    fn default() -> Self {
        Self::from_config(&default_feedback_types()).expect("the defaults are valid")
    }
}

/// The default mapping: `read`/`click` → click, `like` → like, `star` → rating, `cart` →
/// add_to_cart, `purchase` → purchase.
pub fn default_feedback_types() -> BTreeMap<String, String> {
    [("read", "click"), ("click", "click"), ("like", "like"), ("star", "rating"), ("cart", "add_to_cart")]
        .into_iter()
        .chain([("purchase", "purchase")])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl FeedbackTypes {
    /// Checks a configured mapping: each target must be an activity type with a product.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (gorse, ours) in config {
            match ours.parse::<ActivityType>() {
                Ok(kind) if kind.needs_product() => {
                    map.insert(gorse.clone(), kind);
                }
                _ => {
                    let names: Vec<&str> =
                        ActivityType::ALL.iter().filter(|t| t.needs_product()).map(|t| t.as_str()).collect();
                    return Err(format!(
                        "[gorse] feedback_types: {gorse:?} maps to {ours:?}; expected one of {}",
                        names.join(", ")
                    ));
                }
            }
        }
        Ok(Self(map))
    }

    /// The feedback types stored as ratings (they need a `Value` from 0 to 10).
    pub fn rating_types(&self) -> Vec<String> {
        let mut types: Vec<String> =
            self.0.iter().filter(|(_, k)| **k == ActivityType::Rating).map(|(g, _)| g.clone()).collect();
        if !self.0.contains_key("rating") {
            types.push("rating".into());
        }
        types
    }

    /// The activity a feedback of type `gorse` is stored as.
    pub fn kind(&self, gorse: &str) -> ActivityType {
        self.0.get(gorse).copied().unwrap_or_else(|| match gorse.parse::<ActivityType>() {
            Ok(kind) if kind.needs_product() => kind,
            _ => ActivityType::View,
        })
    }
}

/// Formats a time as Go does: RFC 3339 in UTC, fractional seconds only when there are any
/// and without trailing zeros (`.25Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    let text = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match text.split_once('.') {
        Some((whole, fraction)) => {
            let digits = fraction.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{digits}Z")
            }
        }
        None => text,
    }
}

/// Gorse's "no time": `0001-01-01T00:00:00Z`.
pub fn zero_time() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// Whether a time is how Gorse writes "no time": its zero time `0001-01-01T00:00:00Z` (what it
/// stores for feedback sent without one), or the Unix epoch (how ClickHouse prints that).
pub fn is_no_time(t: DateTime<Utc>) -> bool {
    t == zero_time() || t.timestamp() == 0
}

/// Parses a Gorse timestamp: RFC 3339, a date and time with a numeric offset
/// (`2022-08-07 00:26:46+00`, as PostgreSQL prints it) or without a zone (UTC), or a date.
/// `None` for an empty string or no value.
pub fn parse_time(field: &str, raw: Option<&Value>) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let text = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(ValidationError::new(field, "must be a string like \"2022-08-07T00:26:46Z\"")),
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    // As PostgreSQL prints a `timestamptz`: `2022-08-07 00:26:46+00`.
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)) {
        return Ok(Some(t.and_utc()));
    }
    Err(ValidationError::new(
        field,
        format!("{text:?} is not a time: use RFC 3339 (\"2022-08-07T00:26:46Z\"), \"2022-08-07 00:26:46\" or \"2022-08-07\""),
    ))
}

/// Parses a Go duration (`10m`, `1h30m`, `1.5h`, `250ms`, `0`), as Gorse's
/// `write-back-delay`; at most a day ahead, like any event time.
pub fn parse_duration(field: &str, raw: &str) -> Result<chrono::Duration, ValidationError> {
    let bad = || ValidationError::new(field, format!("{raw:?} is not a duration like \"10m\" or \"1h30m\""));
    let text = raw.trim();
    if text.is_empty() || text == "0" {
        return Ok(chrono::Duration::zero());
    }
    let mut total_ms = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return Err(bad()),
        };
        total_ms += number * scale;
        rest = &rest[unit..];
    }
    if !(0.0..=86_400_000.0).contains(&total_ms) {
        return Err(ValidationError::new(field, format!("{raw:?} is more than a day")));
    }
    Ok(chrono::Duration::milliseconds(total_ms.round() as i64))
}

fn gorse_fields(attributes: &Map<String, Value>) -> Option<&Map<String, Value>> {
    attributes.get(KEY).and_then(Value::as_object)
}

fn categories_checked(categories: &[String], errors: &mut Vec<ValidationError>) -> Vec<String> {
    let mut out = Vec::with_capacity(categories.len());
    for (i, c) in categories.iter().enumerate() {
        match check_text(&format!("Categories[{i}]"), c) {
            Ok(c) if !out.contains(&c) => out.push(c),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    out
}

/// The name a product written through the Gorse API gets: its comment, or its id.
fn name_of(comment: &str, id: &str) -> String {
    let name: String = comment.trim().chars().take(MAX_TEXT_LEN).collect();
    if name.is_empty() {
        id.to_string()
    } else {
        name
    }
}

/// The item Gorse would answer for a product (one written through the Gorse API reads back
/// as written; any other shows its category, name and publication time). The product's own
/// name and category win over what the Gorse API wrote when `/api/v1` changed them since.
pub fn item_of(p: &Product) -> Item {
    let g = gorse_fields(&p.attributes);
    let field = |k: &str| g.and_then(|g| g.get(k));
    let mut categories: Option<Vec<String>> = match field("categories") {
        Some(v) => serde_json::from_value(v.clone()).ok().flatten(),
        None => None,
    };
    let first = categories.as_ref().and_then(|c| c.first()).map_or("", String::as_str);
    if first != p.category {
        let mut fixed: Vec<String> = categories.take().unwrap_or_default();
        fixed.retain(|c| *c != p.category);
        if !p.category.is_empty() {
            fixed.insert(0, p.category.clone());
        }
        categories = (!fixed.is_empty()).then_some(fixed);
    }
    let comment = field("comment").and_then(Value::as_str).filter(|c| name_of(c, p.id.as_str()) == p.name);
    Item {
        item_id: p.id.to_string(),
        is_hidden: p.hidden,
        categories,
        timestamp: format_time(p.published_at()),
        labels: field("labels").cloned().filter(|v| !v.is_null()),
        comment: comment.map_or_else(|| p.name.clone(), str::to_string),
    }
}

/// The product a Gorse item is stored as. `existing` is the product of that id, if any: its
/// price, stock and attributes of its own are kept.
pub fn product_of(
    item: Item,
    existing: Option<&Product>,
    now: DateTime<Utc>,
) -> Result<Product, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let id = ProductId::parse(&item.item_id).map_err(|e| errors.push(e.at("ItemId"))).ok();
    let categories = categories_checked(item.categories.as_deref().unwrap_or_default(), &mut errors);
    if DateTime::parse_from_rfc3339(&item.timestamp).is_err() {
        errors.push(ValidationError::new("Timestamp", "is not a time"));
    }
    let comment = item.comment;
    if comment.contains('\0') {
        errors.push(ValidationError::new("Comment", "must not contain the NUL character (U+0000)"));
    }
    let mut attributes = existing.map(|p| p.attributes.clone()).unwrap_or_default();
    attributes.insert(
        KEY.into(),
        json!({
            "categories": item.categories.is_some().then_some(&categories),
            "labels": item.labels,
            "comment": comment,
        }),
    );
    attributes.insert(PUBLISHED_AT.into(), json!(item.timestamp));
    if let Err(e) = check_attributes("Labels", &attributes) {
        errors.push(e);
    }
    match id {
        Some(id) if errors.is_empty() => Ok(Product {
            name: name_of(&comment, id.as_str()),
            id,
            category: categories.first().cloned().unwrap_or_default(),
            price: existing
                .map_or_else(|| "0".parse::<Price>().expect("zero is a price"), |p| p.price.clone()),
            attributes,
            in_stock: existing.is_none_or(|p| p.in_stock),
            hidden: item.is_hidden,
            created_at: existing.map_or(now, |p| p.created_at),
            updated_at: now,
        }),
        _ => Err(errors),
    }
}

impl Item {
    /// An item with Gorse's defaults: shown, no categories, labels or comment, no time.
    pub fn bare(item_id: String) -> Self {
        let (categories, labels, comment) = (None, None, String::new());
        Self { item_id, is_hidden: false, categories, timestamp: format_time(zero_time()), labels, comment }
    }
}

/// A Gorse item from what was sent: the fields sent over Gorse's defaults.
pub fn item_from_input(input: ItemInput) -> Result<Item, Vec<ValidationError>> {
    patched_item(Item::bare(input.item_id), input.fields)
}

/// `item` with `patch` applied.
pub fn patched_item(mut item: Item, patch: ItemPatch) -> Result<Item, Vec<ValidationError>> {
    if let Some(t) = parse_time("Timestamp", patch.timestamp.as_ref()).map_err(|e| vec![e])? {
        item.timestamp = format_time(t);
    }
    item.is_hidden = patch.is_hidden.unwrap_or(item.is_hidden);
    item.categories = patch.categories.or(item.categories);
    item.labels = patch.labels.or(item.labels);
    item.comment = patch.comment.unwrap_or(item.comment);
    Ok(item)
}

/// The user Gorse would answer for a user record.
pub fn user_of(u: &User) -> GorseUser {
    let g = gorse_fields(&u.attributes);
    let field = |k: &str| g.and_then(|g| g.get(k));
    GorseUser {
        user_id: u.id.to_string(),
        labels: field("labels").cloned().filter(|v| !v.is_null()),
        subscribe: field("subscribe").and_then(|v| serde_json::from_value(v.clone()).ok()).flatten(),
        comment: field("comment")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| u.name.clone())
            .unwrap_or_default(),
    }
}

/// The user record a Gorse user is stored as; `existing` keeps its name, other attributes
/// and creation time.
pub fn user_record(
    user: GorseUser,
    existing: Option<&User>,
    now: DateTime<Utc>,
) -> Result<User, Vec<ValidationError>> {
    let id = UserId::parse(&user.user_id).map_err(|e| vec![e.at("UserId")])?;
    let mut attributes = existing.map(|u| u.attributes.clone()).unwrap_or_default();
    attributes.insert(
        KEY.into(),
        json!({"labels": user.labels, "subscribe": user.subscribe, "comment": user.comment}),
    );
    check_attributes("Labels", &attributes).map_err(|e| vec![e])?;
    Ok(User {
        id,
        name: existing.and_then(|u| u.name.clone()),
        attributes,
        created_at: existing.map_or(now, |u| u.created_at),
    })
}

/// A Gorse user from what was sent.
pub fn user_from_input(input: GorseUserInput) -> GorseUser {
    let bare = GorseUser { user_id: input.user_id, labels: None, subscribe: None, comment: String::new() };
    patched_user(bare, input.fields)
}

/// `user` with `patch` applied.
pub fn patched_user(mut user: GorseUser, patch: GorseUserPatch) -> GorseUser {
    user.labels = patch.labels.or(user.labels);
    user.subscribe = patch.subscribe.or(user.subscribe);
    user.comment = patch.comment.unwrap_or(user.comment);
    user
}

/// What the event id of a feedback without a time is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undated {
    /// The time of receipt: sent again, it is a new event (the API, as Gorse's clients send
    /// feedback as it happens).
    Receipt,
    /// Nothing but the feedback: the same row read again is the same event (an import).
    SameRow,
}

/// The event a Gorse feedback is stored as. Its `eventId` is derived from the feedback, so
/// the same feedback sent twice is stored once (the repeat is acknowledged as a duplicate).
/// A feedback without a time (none, empty, or a zero time: see [`is_no_time`]) is dated `now`.
pub fn activity_of(
    f: FeedbackInput,
    types: &FeedbackTypes,
    now: DateTime<Utc>,
) -> Result<NewActivity, Vec<ValidationError>> {
    feedback_event(f, types, now, Undated::Receipt)
}

/// [`activity_of`], with the rule for the event id of a feedback without a time.
pub fn feedback_event(
    f: FeedbackInput,
    types: &FeedbackTypes,
    now: DateTime<Utc>,
    undated: Undated,
) -> Result<NewActivity, Vec<ValidationError>> {
    // What only Gorse's fields can get wrong; the rest is the event's own validation below.
    let mut errors = Vec::new();
    let feedback_type = check_text("FeedbackType", &f.feedback_type).unwrap_or_else(|e| {
        errors.push(e);
        f.feedback_type.clone()
    });
    let at = parse_time("Timestamp", f.timestamp.as_ref())
        .map_err(|e| errors.push(e))
        .ok()
        .flatten()
        .filter(|t| !is_no_time(*t));
    if f.value.is_some_and(|v| !v.is_finite()) {
        errors.push(ValidationError::new("Value", "must be a finite number"));
    }
    let kind = types.kind(&feedback_type);
    // The Gorse type is kept when it is not the activity's own name (which reads back as it).
    let mut gorse =
        if feedback_type == kind.as_str() { json!({}) } else { json!({"feedbackType": feedback_type}) };
    if let Some(v) = f.value {
        gorse["value"] = json!(v);
    }
    if let Some(c) = f.comment.as_ref().filter(|c| !c.is_empty()) {
        gorse["comment"] = json!(c);
    }
    let mut metadata = Map::new();
    if kind == ActivityType::Rating {
        // A rating needs its value: Gorse's `Value` (0–10).
        if let Some(v) = f.value {
            metadata.insert("value".into(), json!(v));
        }
    }
    let ts_ms = at.unwrap_or(now).timestamp_millis();
    let identity_time = match (at, undated) {
        (None, Undated::SameRow) => None,
        _ => Some(ts_ms),
    };
    let event_id = feedback_event_id(
        &feedback_type,
        f.user_id.as_deref().unwrap_or_default(),
        &f.item_id,
        identity_time,
        &gorse,
    );
    if gorse.as_object().is_some_and(|g| !g.is_empty()) {
        metadata.insert(KEY.into(), gorse);
    }
    let event = NewActivity::validate(
        ActivityInput {
            event_id: Some(event_id),
            user_id: f.user_id,
            activity_type: Some(kind.as_str().into()),
            product_id: Some(f.item_id),
            metadata: Some(metadata),
            timestamp: Some(json!(ts_ms)),
        },
        now,
    );
    match event {
        Ok(e) if errors.is_empty() => Ok(e),
        Ok(_) => Err(errors),
        Err(errs) => Err(errs.into_iter().map(gorse_field).chain(errors).collect()),
    }
}

/// The event id of a feedback: a hash of its type, user, item, time (`None`: an undated row
/// of an import) and the Gorse fields kept with it (compact JSON), NUL-separated, fed to the
/// hasher piece by piece. Stored ids depend on these exact bytes, so they must not change.
fn feedback_event_id(kind: &str, user: &str, item: &str, time: Option<i64>, gorse: &Value) -> String {
    let time = time.map_or_else(|| "undated".to_string(), |ms| ms.to_string());
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [kind, user, item, &time] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.update(&serde_json::to_vec(gorse).expect("a JSON value serialises"));
    format!("gorse-{:032x}", h.digest128())
}

/// Names a validation error by the Gorse field it came from.
fn gorse_field(mut e: ValidationError) -> ValidationError {
    let renamed = match e.field.as_str() {
        "userId" => "UserId",
        "productId" => "ItemId",
        "timestamp" => "Timestamp",
        "metadata.value" => "Value",
        "metadata" => "Comment",
        _ => return e,
    };
    e.field = renamed.into();
    e
}

/// The feedback Gorse would answer for a stored event; `None` for an event without a product
/// (a search).
pub fn feedback_of(e: &StoredActivity) -> Option<Feedback> {
    let event = &e.event;
    let product = event.product_id.as_ref()?;
    let g = event.metadata.get(KEY).and_then(Value::as_object);
    let field = |k: &str| g.and_then(|g| g.get(k));
    Some(Feedback {
        feedback_type: field("feedbackType")
            .and_then(Value::as_str)
            .unwrap_or(event.activity_type.as_str())
            .to_string(),
        user_id: event.user_id.to_string(),
        item_id: product.to_string(),
        value: field("value").and_then(Value::as_f64).or_else(|| event.rating_value()).unwrap_or(0.0),
        timestamp: format_time(event.timestamp),
        comment: field("comment").and_then(Value::as_str).unwrap_or_default().to_string(),
    })
}

/// Gorse keeps one feedback per (type, user, item): of the events given (oldest first), the
/// latest of each, ordered by type and item as Gorse lists them. Events after `until` (a
/// write-back with a delay) are not shown yet.
pub fn latest_feedback(events: &[StoredActivity], until: DateTime<Utc>) -> Vec<Feedback> {
    latest_by(events, until, |f| f.item_id.clone())
}

/// An item's feedback as Gorse keeps it: of the item's events given (oldest first), the
/// latest of each type and user, ordered by type and user.
pub fn latest_item_feedback(events: &[StoredActivity], until: DateTime<Utc>) -> Vec<Feedback> {
    latest_by(events, until, |f| f.user_id.clone())
}

/// The latest feedback of each type and `key`, ordered by them.
fn latest_by(
    events: &[StoredActivity],
    until: DateTime<Utc>,
    key: impl Fn(&Feedback) -> String,
) -> Vec<Feedback> {
    let mut latest: BTreeMap<(String, String), Feedback> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event.timestamp <= until) {
        if let Some(f) = feedback_of(e) {
            latest.insert((f.feedback_type.clone(), key(&f)), f);
        }
    }
    latest.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn stored(seq: u64, e: NewActivity) -> StoredActivity {
        StoredActivity { seq, event: e, received_at: now() }
    }

    fn feedback(kind: &str, user: &str, item: &str, ts: &str) -> FeedbackInput {
        FeedbackInput {
            feedback_type: kind.into(),
            user_id: Some(user.into()),
            item_id: item.into(),
            timestamp: Some(json!(ts)),
            value: None,
            comment: None,
        }
    }

    #[test]
    fn times_parse_in_gorse_s_forms_and_print_as_go_does() {
        let parse = |s: &str| parse_time("t", Some(&json!(s))).unwrap().map(format_time);
        assert_eq!(parse("2022-08-07T00:26:46Z").as_deref(), Some("2022-08-07T00:26:46Z"));
        assert_eq!(parse("2022-08-07T02:26:46+02:00").as_deref(), Some("2022-08-07T00:26:46Z"));
        assert_eq!(parse("2022-08-07T00:26:46.250Z").as_deref(), Some("2022-08-07T00:26:46.25Z"));
        assert_eq!(parse("2010-01-01T01:01:01.000001").as_deref(), Some("2010-01-01T01:01:01.000001Z"));
        assert_eq!(parse("2022-08-07 00:26:46").as_deref(), Some("2022-08-07T00:26:46Z"));
        assert_eq!(parse("2022-02-24").as_deref(), Some("2022-02-24T00:00:00Z"));
        assert_eq!(parse(""), None);
        assert_eq!(parse_time("t", None).unwrap(), None);
        assert!(parse_time("Timestamp", Some(&json!("yesterday")))
            .unwrap_err()
            .message
            .contains("yesterday"));
        assert!(parse_time("t", Some(&json!(12))).is_err());
        assert_eq!(format_time(zero_time()), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn go_durations_parse_and_are_bounded() {
        let ms = |s: &str| parse_duration("d", s).map(|d| d.num_milliseconds());
        assert_eq!(ms("10m"), Ok(600_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(ms(""), Ok(0));
        for bad in ["10", "m", "10x", "-1m", "25h"] {
            assert!(parse_duration("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn feedback_types_map_by_config_then_by_name_then_to_view() {
        let types = FeedbackTypes::default();
        assert_eq!(types.kind("read"), ActivityType::Click);
        assert_eq!(types.kind("star"), ActivityType::Rating);
        assert_eq!(types.kind("cart"), ActivityType::AddToCart);
        assert_eq!(types.kind("add_to_cart"), ActivityType::AddToCart);
        assert_eq!(types.kind("share"), ActivityType::View);
        assert_eq!(types.kind("search"), ActivityType::View, "a type without a product cannot be a target");
        let custom = BTreeMap::from([("share".to_string(), "like".to_string())]);
        assert_eq!(FeedbackTypes::from_config(&custom).unwrap().kind("share"), ActivityType::Like);
        let bad = BTreeMap::from([("q".to_string(), "search".to_string())]);
        assert!(FeedbackTypes::from_config(&bad).unwrap_err().contains("expected one of"));
    }

    #[test]
    fn an_item_reads_back_exactly_as_written() {
        let input: ItemInput = serde_json::from_value(json!({
            "ItemId": "i-1", "IsHidden": false, "Categories": ["phones", "sale"],
            "Timestamp": "2022-08-07T00:26:46Z", "Labels": {"brand": ["acme"]}, "Comment": "A phone",
        }))
        .unwrap();
        let item = item_from_input(input).unwrap();
        let product = product_of(item.clone(), None, now()).unwrap();
        assert_eq!(product.category, "phones");
        assert_eq!(product.name, "A phone");
        assert_eq!(format_time(product.published_at()), "2022-08-07T00:26:46Z");
        assert_eq!(product.created_at, now(), "it entered the catalogue now");
        assert_eq!(item_of(&product), item);
        let json = serde_json::to_value(&item).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
    }

    #[test]
    fn an_item_without_fields_and_a_product_of_the_v1_api_read_as_gorse_would() {
        let bare = item_from_input(serde_json::from_value(json!({"ItemId": "i-2"})).unwrap()).unwrap();
        assert_eq!(bare.timestamp, "0001-01-01T00:00:00Z");
        let product = product_of(bare.clone(), None, now()).unwrap();
        assert_eq!((product.name.as_str(), product.category.as_str()), ("i-2", ""));
        assert_eq!(item_of(&product), bare);
        let mut v1 = plain_product();
        v1.attributes.clear();
        let item = item_of(&v1);
        assert_eq!(item.categories, Some(vec!["audio".to_string()]));
        assert_eq!(item.comment, "Headphones");
        assert_eq!(item.labels, None);
    }

    pub(super) fn plain_product() -> Product {
        Product {
            id: ProductId::parse("p-1").unwrap(),
            name: "Headphones".into(),
            category: "audio".into(),
            price: "99.90".parse().unwrap(),
            attributes: Map::new(),
            in_stock: false,
            hidden: false,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_gorse_write_keeps_the_products_price_stock_creation_and_own_attributes() {
        let mut existing = plain_product();
        existing.attributes.insert("colour".into(), json!("red"));
        let mut item = item_of(&existing);
        item.is_hidden = true;
        item.timestamp = "2020-01-01T00:00:00Z".into();
        let p = product_of(item, Some(&existing), now()).unwrap();
        assert_eq!(p.price.as_str(), "99.90");
        assert!(!p.in_stock && p.hidden);
        assert_eq!(p.created_at, existing.created_at);
        assert_eq!(p.attributes["colour"], json!("red"));
        assert_eq!(item_of(&p).timestamp, "2020-01-01T00:00:00Z");
    }

    #[test]
    fn bad_items_name_the_gorse_field() {
        let item = |v: Value| item_from_input(serde_json::from_value(v).unwrap());
        assert_eq!(item(json!({"ItemId": "x", "Timestamp": "soon"})).unwrap_err()[0].field, "Timestamp");
        let bad_id = item(json!({"ItemId": "a/b"})).unwrap();
        assert_eq!(product_of(bad_id, None, now()).unwrap_err()[0].field, "ItemId");
        let blank = item(json!({"ItemId": "x", "Categories": [" "]})).unwrap();
        assert_eq!(product_of(blank, None, now()).unwrap_err()[0].field, "Categories[0]");
        let nul = item(json!({"ItemId": "x", "Comment": "a\u{0}b"})).unwrap();
        assert_eq!(product_of(nul, None, now()).unwrap_err()[0].field, "Comment");
    }

    #[test]
    fn patches_change_only_what_they_name() {
        let item = item_from_input(
            serde_json::from_value(json!({"ItemId": "x", "Categories": ["a"], "Comment": "c"})).unwrap(),
        )
        .unwrap();
        let patch: ItemPatch = serde_json::from_value(json!({
            "IsHidden": true, "Categories": null, "Labels": null, "Timestamp": null, "Comment": null,
        }))
        .unwrap();
        let patched = patched_item(item.clone(), patch).unwrap();
        assert_eq!(patched, Item { is_hidden: true, ..item });
        let user = user_from_input(serde_json::from_value(json!({"UserId": "u", "Comment": "c"})).unwrap());
        let patched = patched_user(user, serde_json::from_value(json!({"Labels": ["x"]})).unwrap());
        assert_eq!((patched.labels, patched.comment.as_str()), (Some(json!(["x"])), "c"));
    }

    #[test]
    fn a_user_reads_back_as_written_with_null_subscribe_when_not_given() {
        let user =
            user_from_input(serde_json::from_value(json!({"UserId": "u-1", "Labels": ["a"]})).unwrap());
        let record = user_record(user.clone(), None, now()).unwrap();
        assert_eq!(user_of(&record), user);
        let json = serde_json::to_value(user_of(&record)).unwrap();
        assert_eq!(json, json!({"UserId": "u-1", "Labels": ["a"], "Subscribe": null, "Comment": ""}));
    }

    #[test]
    fn feedback_becomes_an_event_and_reads_back() {
        let types = FeedbackTypes::default();
        let mut f = feedback("star", "u-1", "i-1", "2022-08-07T00:26:46Z");
        f.value = Some(4.0);
        let e = activity_of(f.clone(), &types, now()).unwrap();
        assert_eq!(e.activity_type, ActivityType::Rating);
        assert_eq!(e.rating_value(), Some(4.0));
        assert_eq!(e, activity_of(f.clone(), &types, now()).unwrap(), "the same feedback, the same event id");
        f.value = Some(5.0);
        assert_ne!(e.event_id, activity_of(f, &types, now()).unwrap().event_id);
        let back = feedback_of(&stored(1, e)).unwrap();
        assert_eq!(
            back,
            Feedback {
                feedback_type: "star".into(),
                user_id: "u-1".into(),
                item_id: "i-1".into(),
                value: 4.0,
                timestamp: "2022-08-07T00:26:46Z".into(),
                comment: String::new(),
            }
        );
    }

    #[test]
    fn event_ids_stay_what_earlier_versions_stored() {
        // The identity as one string, as the first version hashed it: feedback stored then
        // must keep its id, or a repeat sent after an upgrade would be stored twice.
        let first_version = |kind: &str, user: &str, item: &str, time: &str, gorse: &Value| {
            let identity = format!("{kind}\u{0}{user}\u{0}{item}\u{0}{time}\u{0}{gorse}");
            format!("gorse-{:032x}", xxhash_rust::xxh3::xxh3_128(identity.as_bytes()))
        };
        let types = FeedbackTypes::default();
        let mut star = feedback("star", "u-1", "i-1", "2022-08-07T00:26:46Z");
        star.value = Some(4.0);
        star.comment = Some("ok \"quoted\"".into());
        let e = activity_of(star, &types, now()).unwrap();
        let gorse = json!({"feedbackType": "star", "value": 4.0, "comment": "ok \"quoted\""});
        assert_eq!(e.event_id.as_str(), first_version("star", "u-1", "i-1", "1659832006000", &gorse));
        assert_eq!(e.event_id.as_str(), "gorse-ddee6436525be6d6b8817dddd0850e97", "as 492fe32 stored it");
        let like = activity_of(feedback("like", "u-2", "i-2", ""), &types, now()).unwrap();
        let ms = now().timestamp_millis().to_string();
        assert_eq!(like.event_id.as_str(), first_version("like", "u-2", "i-2", &ms, &json!({})));
        let row =
            feedback_event(feedback("like", "u-2", "i-2", ""), &types, now(), Undated::SameRow).unwrap();
        assert_eq!(row.event_id.as_str(), first_version("like", "u-2", "i-2", "undated", &json!({})));
    }

    #[test]
    fn bad_feedback_names_the_gorse_field_and_a_star_needs_a_value_in_range() {
        let types = FeedbackTypes::default();
        let errs = activity_of(feedback("like", "u 1", "i-1", ""), &types, now()).unwrap_err();
        assert_eq!(errs[0].field, "UserId");
        let mut star = feedback("star", "u-1", "i-1", "");
        star.value = Some(11.0);
        assert_eq!(activity_of(star, &types, now()).unwrap_err()[0].field, "Value");
        let errs = activity_of(feedback("like", "u-1", "i-1", "1900-01-01"), &types, now()).unwrap_err();
        assert_eq!(errs[0].field, "Timestamp");
        let empty = activity_of(feedback("like", "u-1", "i-1", ""), &types, now()).unwrap();
        assert_eq!(empty.timestamp, now(), "no timestamp: the time of receipt");
        for zero in ["0001-01-01T00:00:00Z", "1970-01-01 00:00:00"] {
            let undated = activity_of(feedback("like", "u-1", "i-1", zero), &types, now()).unwrap();
            assert_eq!(undated.timestamp, now(), "Gorse's \"no time\" {zero}: the time of receipt");
        }
    }

    #[test]
    fn listing_keeps_the_latest_feedback_per_type_and_item_and_hides_the_future() {
        let types = FeedbackTypes::default();
        let at = |ts: &str, kind: &str, item: &str| {
            activity_of(feedback(kind, "u", item, ts), &types, now()).unwrap()
        };
        let events = vec![
            stored(1, at("2026-11-01T00:00:00Z", "like", "b")),
            stored(2, at("2026-11-02T00:00:00Z", "like", "b")),
            stored(3, at("2026-11-03T00:00:00Z", "read", "a")),
            stored(4, at("2026-12-01T11:00:00Z", "read", "c")),
        ];
        let listed = latest_feedback(&events, now());
        let keys: Vec<(&str, &str, &str)> = listed
            .iter()
            .map(|f| (f.feedback_type.as_str(), f.item_id.as_str(), f.timestamp.as_str()))
            .collect();
        assert_eq!(keys, [("like", "b", "2026-11-02T00:00:00Z"), ("read", "a", "2026-11-03T00:00:00Z")]);
    }
}
