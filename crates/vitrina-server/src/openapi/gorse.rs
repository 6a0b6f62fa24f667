//! The rules of the Gorse-compatible API (`crate::gorse`) written into its schemas, as
//! [`super::constraints`] does for `/api/v1`: Gorse's JSON takes unknown fields, so no
//! object here forbids extra properties.

use serde_json::{json, Value};
use vitrina_core::catalog::MAX_TEXT_LEN;

use super::constraints::{id, int, nullable, num, text};
use crate::gorse::model::FeedbackTypes;

/// A feedback time: RFC 3339 (`…Z`), without a zone, or a date; empty, or Gorse's zero time
/// (`0001-01-01T00:00:00Z`, or the epoch as ClickHouse prints it), for the time of receipt.
/// Years 1990–2099 otherwise (events before 1990 are refused).
const EVENT_TIME: &str = "^$|^0001-01-01T00:00:00Z$|^1970-01-01T00:00:00Z$|^(199[0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])\
    (T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?| ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?$";
/// An item's time: as [`EVENT_TIME`], any year; empty for none.
const ITEM_TIME: &str = "^$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])\
    (T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z?| ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?$";

fn string() -> Value {
    json!({"type": "string"})
}

fn time(pattern: &str) -> Value {
    json!({"type": ["string", "null"], "pattern": pattern,
           "description": "RFC 3339 (`2022-08-07T00:26:46Z`), `2022-08-07 00:26:46` (UTC) or `2022-08-07`; empty (or Gorse's zero time `0001-01-01T00:00:00Z`): none."})
}

fn list_of(items: Value) -> Value {
    nullable(json!({"type": "array", "items": items}))
}

fn any() -> Value {
    json!({"description": "Any JSON."})
}

fn feedback(types: &FeedbackTypes, stored: bool) -> Value {
    let mut schema = json!({
        "type": "object",
        "required": if stored { json!(["FeedbackType", "UserId", "ItemId"]) } else { json!(["FeedbackType", "ItemId"]) },
        "properties": {
            "FeedbackType": if stored { text() } else { string() },
            "UserId": if stored { id() } else { nullable(string()) },
            "ItemId": id(),
            "Timestamp": time(if stored { EVENT_TIME } else { ITEM_TIME }),
            "Value": {"type": ["number", "null"]},
            "Comment": nullable(string()),
        },
    });
    if stored {
        // A feedback stored as a rating needs its value.
        schema["if"] = json!({"properties": {"FeedbackType": {"enum": types.rating_types()}}});
        schema["then"] = json!({"required": ["Value"], "properties": {"Value": num(0.0, 10.0)}});
        schema["description"] = json!(format!(
            "Feedback of the types {:?} is stored as a rating and needs a `Value` from 0 to 10.",
            types.rating_types()
        ));
    }
    schema
}

fn item(input: bool) -> Value {
    let comment = json!({"type": "string", "pattern": "^[^\\x00]*$"});
    let mut props = json!({
        "ItemId": id(),
        "IsHidden": if input { json!({"type": ["boolean", "null"]}) } else { json!({"type": "boolean"}) },
        "Categories": list_of(text()),
        "Timestamp": if input { time(ITEM_TIME) } else { string() },
        "Labels": any(),
        "Comment": if input { nullable(comment) } else { string() },
    });
    if input {
        return json!({"type": "object", "required": ["ItemId"], "properties": props});
    }
    props["Categories"] = list_of(string());
    json!({"type": "object", "required": ["ItemId", "IsHidden", "Categories", "Timestamp", "Labels", "Comment"],
           "properties": props})
}

fn user(input: bool) -> Value {
    let props = json!({
        "UserId": id(),
        "Labels": any(),
        "Subscribe": list_of(string()),
        "Comment": if input { nullable(string()) } else { string() },
    });
    let required =
        if input { json!(["UserId"]) } else { json!(["UserId", "Labels", "Subscribe", "Comment"]) };
    json!({"type": "object", "required": required, "properties": props})
}

/// Gorse's query and path parameters, by name and route; `None` for a route or name of
/// `/api/v1`.
pub(super) fn parameter(path: &str, name: &str) -> Option<Value> {
    if !path.starts_with("/api/") || path.starts_with("/api/v1/") {
        return None;
    }
    let pages = ["/api/items", "/api/users", "/api/feedback"];
    Some(match name {
        "n" if pages.iter().any(|p| path.starts_with(p)) => int(1, 1000),
        "n" => int(1, crate::gorse::MAX_LIST as i64),
        "cursor" | "Cursor" => json!({"type": "string", "pattern": "^[0-9]{0,18}$"}),
        "itemId" => id(),
        "feedbackType" => json!({"type": "string", "minLength": 1}),
        "category" if path.contains("/category/") => text(),
        "category" => json!({"type": "string", "minLength": 1}),
        "write-back-type" => json!({"type": "string", "maxLength": MAX_TEXT_LEN,
            "pattern": "^(|[^\\x00]*[^\\x00 \\t\\n\\r\\v\\f][^\\x00]*)$"}),
        "write-back-delay" => json!({"type": "string",
            "pattern": "^(0|([0-9]h)?([0-9]{1,2}m)?([0-9]{1,2}s)?)$",
            "description": "A Go duration (`10m`, `1h30m`), up to a day."}),
        "q" => super::constraints::search(),
        "X-API-Version" => string(),
        _ => return None,
    })
}

/// Writes the Gorse schemas into `doc`.
pub(super) fn apply(doc: &mut Value, types: &FeedbackTypes) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["FeedbackInput"] = feedback(types, true);
    schemas["SessionFeedback"] = feedback(types, false);
    schemas["ItemInput"] = item(true);
    schemas["ItemPatch"] = json!({"type": "object", "properties": {
        "IsHidden": {"type": ["boolean", "null"]}, "Categories": list_of(text()), "Timestamp": time(ITEM_TIME),
        "Labels": any(), "Comment": nullable(json!({"type": "string", "pattern": "^[^\\x00]*$"})),
    }});
    schemas["Item"] = item(false);
    schemas["GorseUserInput"] = user(true);
    schemas["GorseUserPatch"] = json!({"type": "object", "properties": {
        "Labels": any(), "Subscribe": list_of(string()), "Comment": nullable(string()),
    }});
    schemas["GorseUser"] = user(false);
    // An empty list is both (no `oneOf`).
    schemas["RecommendAnswer"] = json!({"anyOf": [
        {"type": "array", "items": string(), "description": "Item ids (without `X-API-Version: 2`)."},
        {"type": "array", "items": {"$ref": "#/components/schemas/Score"}, "description": "With `X-API-Version: 2`."},
    ]});
    let session =
        json!({"type": "array", "maxItems": 100, "items": {"$ref": "#/components/schemas/SessionFeedback"}});
    for path in ["/api/session/recommend", "/api/session/recommend/{category}"] {
        let pointer =
            format!("/paths/{}/post/requestBody/content/application~1json/schema", path.replace('/', "~1"));
        if let Some(body) = doc.pointer_mut(&pointer) {
            *body = session.clone();
        }
    }
}
