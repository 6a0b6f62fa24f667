//! The rules the handlers enforce, written into the published schemas, so that everything
//! the document calls valid is accepted (what schema-driven fuzzers check) and generated
//! clients know the bounds. The handlers stay the authority: each rule here mirrors one of
//! theirs (`vitrina_core` validation, `check_limit`, the config validators), and
//! `tests/spec.rs` sends schema-valid requests to keep the two in step.
//!
//! What no schema can say is left to descriptions: an RFC 3339 timestamp (published as
//! epoch milliseconds, which is also accepted), and the cross-field rules of experiment
//! specs.

use serde_json::{json, Map, Value};
use vitrina_core::{
    activity::AMOUNTS,
    catalog::{MAX_TEXT_LEN, NON_BLANK_PATTERN, TEXT_PATTERN},
    time::{MAX_EVENT_MS, MIN_EVENT_MS},
    ActivityType,
};

use crate::state::Limits;

/// Visitor, product and event ids (`vitrina_core::ids`).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:@-]{1,128}$";

pub(super) fn id() -> Value {
    json!({"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": 128})
}

/// Names, categories and labels: trimmed, non-empty, no NUL, at most 512 characters.
pub(super) fn text() -> Value {
    json!({"type": "string", "maxLength": MAX_TEXT_LEN, "pattern": TEXT_PATTERN})
}

/// A catalogue search (`TextSearch`): blank searches nothing; no NUL; at most 512 characters.
pub(super) fn search() -> Value {
    json!({"type": "string", "maxLength": MAX_TEXT_LEN, "pattern": "^[^\\x00]*$"})
}

pub(super) fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").cloned() {
        schema["type"] = match t {
            Value::Array(mut types) => {
                types.push(json!("null"));
                Value::Array(types)
            }
            one => json!([one, "null"]),
        };
        schema
    } else {
        json!({"oneOf": [{"type": "null"}, schema]})
    }
}

pub(super) fn int(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

pub(super) fn num(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

/// A free-form object (its size is bounded as a whole: 8 KiB of metadata, 16 KiB of
/// attributes), with the `known` properties constrained.
fn object(known: Map<String, Value>, description: &str) -> Value {
    json!({"type": "object", "properties": known, "description": description})
}

/// Prices: a decimal string (`"2499.00"`, up to 15 digits and 4 decimals) or a whole number.
fn price() -> Value {
    json!({"oneOf": [
        {"type": "string", "pattern": "^[0-9]{1,15}(\\.[0-9]{1,4})?$", "example": "2499.00"},
        {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_i64},
    ], "description": "A decimal string (up to 15 digits and 4 decimals) or a whole number."})
}

/// Event times: epoch milliseconds from 1990-01-01 up to the publication of the document
/// (the server accepts up to 24 h ahead of its clock, and RFC 3339 text).
fn timestamp() -> Value {
    json!({"type": ["integer", "null"], "minimum": MIN_EVENT_MS, "maximum": MAX_EVENT_MS,
           "description": "Epoch milliseconds (an RFC 3339 string is accepted too); default: the time of receipt. \
               A time more than 24 hours ahead of the server's clock is recorded as the time of receipt."})
}

const WITH_PRODUCT: [ActivityType; 6] = [
    ActivityType::View,
    ActivityType::Click,
    ActivityType::Like,
    ActivityType::AddToCart,
    ActivityType::RemoveFromCart,
    ActivityType::Purchase,
];

fn metadata(extra: Value) -> Value {
    let mut props = Map::new();
    for (key, max) in AMOUNTS {
        let digits = max.log10() as usize;
        props.insert(
            key.into(),
            json!({"oneOf": [
                num(0.0, max),
                {"type": "string", "pattern": format!("^[0-9]{{1,{digits}}}(\\.[0-9]{{1,6}})?$")},
            ]}),
        );
    }
    if let Value::Object(extra) = extra {
        props.extend(extra);
    }
    object(
        props,
        "Free-form, at most 8 KiB serialised. Purchases may carry `revenue`, `price` and `quantity`; \
        clicks, carts and purchases the `recommendationId` they respond to.",
    )
}

/// One event as `POST /track` takes it: one shape per kind of activity.
fn track_request() -> Value {
    let kinds = |ks: &[ActivityType]| json!(ks.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    let common = |kind: Value, meta: Value, product: Value| {
        json!({
            "userId": id(),
            "activityType": kind,
            "productId": product,
            "metadata": meta,
            "timestamp": timestamp(),
            "eventId": nullable(id()),
        })
    };
    json!({
        "description": "One visitor event. `productId` is required for every type but `search`, which needs \
            `metadata.query`; `rating` needs `metadata.value` (0–10). Purchases may carry `metadata.revenue`, \
            `price` and `quantity` (numbers or numeric strings).",
        "oneOf": [
            {"type": "object", "required": ["userId", "activityType", "productId"],
             "properties": common(json!({"type": "string", "enum": kinds(&WITH_PRODUCT)}), nullable(metadata(json!({}))), id())},
            {"type": "object", "required": ["userId", "activityType", "metadata"],
             "properties": common(json!({"type": "string", "enum": ["search"]}),
                json!({"allOf": [metadata(json!({"query": {"type": "string", "pattern": NON_BLANK_PATTERN}})),
                                 {"required": ["query"]}]}), nullable(id()))},
            {"type": "object", "required": ["userId", "activityType", "productId", "metadata"],
             "properties": common(json!({"type": "string", "enum": ["rating"]}),
                json!({"allOf": [metadata(json!({"value": num(0.0, 10.0)})), {"required": ["value"]}]}), id())},
        ],
    })
}

fn product(with_id: bool) -> Value {
    let mut props = json!({
        "name": text(),
        "category": text(),
        "price": price(),
        "attributes": nullable(object(Map::new(), "Free-form, at most 16 KiB serialised.")),
        "inStock": {"type": ["boolean", "null"], "description": "Default true."},
        "hidden": {"type": ["boolean", "null"], "description": "Default false."},
    });
    let mut required = vec!["name", "category", "price"];
    if with_id {
        props["id"] = id();
        required.insert(0, "id");
    }
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

/// Any 64-bit unsigned integer (counts and seeds the server takes as they are).
fn any_u64() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

/// Merges `patch` into `target`, objects key by key.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// The bounds of the training configuration (`TrainingConfig::validate`), merged into the
/// derived schemas so their defaults and descriptions stay.
fn constrain_training(schemas: &mut Value) {
    let weights = json!({
        "type": "object",
        "propertyNames": {"enum": ActivityType::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
        "additionalProperties": num(-100.0, 100.0),
        "description": "Weight of one event of each type, -100 to 100.",
    });
    let big = 1e6;
    let parts = [
        (
            "TrainingConfig",
            json!({
                "weights": weights,
                "timeDecay": {"exclusiveMinimum": 0, "maximum": 1},
                "algorithms": {"minItems": 1, "items": {"enum": vitrina_engine::config::ALGORITHMS}},
                "maxItemsPerUser": int(2, 100_000),
                "seed": any_u64(),
                "tolerance": num(0.0, 1.0),
                "validationUsers": any_u64(),
                "validationSampleUsers": any_u64(),
            "minValidationUsers": any_u64(),
            }),
        ),
        (
            "RankerTrainingConfig",
            json!({
                "labelShare": num(0.01, 0.5), "maxVisitors": int(vitrina_engine::learn::MIN_LISTS as i64, 1_000_000), "sampleUsers": any_u64(),
                "trees": int(1, 2_000), "learningRate": {"exclusiveMinimum": 0, "maximum": 1},
                "maxLeaves": int(2, 1_024), "minRowsInLeaf": int(1, 100_000),
            }),
        ),
        (
            "AlsParams",
            json!({
                "factors": int(1, 512), "iterations": int(1, 100), "regularization": num(0.0, big),
                "alpha": num(0.0, big), "cgSteps": int(0, 100), "seed": any_u64(),
            }),
        ),
        ("ItemKnnParams", json!({"k": int(1, 1000), "shrink": num(0.0, big)})),
        (
            "TransitionParams",
            json!({
                "window": int(1, 50), "k": int(1, 1000), "historyLen": int(0, 1000),
                "gapDecay": num(0.0, big), "backward": num(0.0, big), "shrink": num(0.0, big),
                "beta": num(0.0, big), "recency": num(0.0, big),
            }),
        ),
        (
            "EaseConfig",
            json!({
                "lambda": {"exclusiveMinimum": 0, "maximum": 1e9}, "k": int(1, 1000),
                "maxItems": int(0, 30_000), "sessionSeconds": num(0.0, 1e9), "sessionFloor": num(0.0, 1.0),
                "historyK": int(0, 5000), "historyLambda": {"exclusiveMinimum": 0, "maximum": 1e9},
            }),
        ),
    ];
    for (name, props) in parts {
        merge(&mut schemas[name], json!({"properties": props, "additionalProperties": false}));
    }
}

/// Constraints of query and path parameters, by name (and for `limit`, by route).
fn parameter(path: &str, name: &str) -> Option<Value> {
    if let Some(schema) = super::gorse::parameter(path, name) {
        return Some(schema);
    }
    Some(match name {
        "userId" | "productId" => id(),
        "limit" if path.starts_with("/api/v1/recommendations/activity/") => int(1, 1000),
        "limit" if path.starts_with("/api/v1/recommendations/") => int(1, 100),
        "limit" => int(1, 1000),
        "offset" => int(0, crate::dto::MAX_OFFSET as i64),
        "minPrice" | "maxPrice" => json!({"type": "number", "minimum": 0, "maximum": f64::MAX}),
        "exclude" => json!({"type": "array", "items": id()}),
        "window" => json!({"type": "string", "enum": ["hour", "day", "week", "month"]}),
        "days" => int(1, 365),
        "category" => json!({"type": "string"}),
        "q" => search(),
        "force" => json!({"type": "boolean"}),
        "keyId" | "version" | "jobId" | "id" => json!({"type": "string", "minLength": 1, "maxLength": 128}),
        _ => return None,
    })
}

/// Writes the constraints into `doc` (the document as JSON).
pub fn apply(doc: &mut Value, limits: &Limits, gorse: &crate::gorse::model::FeedbackTypes) {
    super::gorse::apply(doc, gorse);
    let schemas = &mut doc["components"]["schemas"];
    schemas["TrackRequest"] = track_request();
    schemas["BatchRequest"] = json!({"type": "object", "required": ["events"], "additionalProperties": false,
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": limits.batch_events,
                                  "items": {"$ref": "#/components/schemas/TrackRequest"}}}});
    schemas["ProductInput"] = product(true);
    schemas["ProductReplace"] = product(false);
    schemas["ProductPatch"] = json!({"type": "object", "additionalProperties": false, "properties": {
        "name": text(), "category": text(), "price": price(), "attributes": object(Map::new(), "Free-form, at most 16 KiB serialised."),
        "inStock": {"type": "boolean"}, "hidden": {"type": "boolean"}}});
    schemas["BulkRequest"] = json!({"type": "object", "required": ["products"], "additionalProperties": false,
        "properties": {"products": {"type": "array", "minItems": 1, "maxItems": limits.bulk_products,
                                    "items": {"$ref": "#/components/schemas/ProductInput"}}}});
    schemas["UserInput"] = json!({"type": "object", "required": ["id"], "additionalProperties": false,
        "properties": {"id": id(), "name": nullable(text()), "attributes": nullable(object(Map::new(), "Free-form, at most 16 KiB serialised."))}});
    schemas["CreateKey"] = json!({"type": "object", "required": ["scope"], "additionalProperties": false,
        "properties": {"scope": {"type": "string", "enum": ["track", "read", "admin"]}, "name": nullable(text())}});
    schemas["RefreshRequest"] = json!({"type": "object", "additionalProperties": false,
        "properties": {"limit": nullable(int(1, 100))}});
    constrain_training(schemas);
    schemas["TrainRequest"] = json!({"type": "object", "additionalProperties": false,
        "properties": {"config": nullable(json!({"$ref": "#/components/schemas/TrainingConfig"}))}});
    schemas["SessionEventDto"] = json!({"type": "object", "required": ["productId"], "additionalProperties": false,
    "properties": {
        "productId": id(),
        "activityType": {"type": ["string", "null"],
                         "enum": WITH_PRODUCT.iter().map(|k| json!(k.as_str())).chain([json!("rating"), Value::Null]).collect::<Vec<_>>()},
        "timestamp": timestamp(),
    }});
    schemas["SessionRequest"] = json!({"type": "object", "additionalProperties": false,
    "properties": {
        "sessionId": nullable(id()),
        "events": {"type": "array", "maxItems": 100, "items": {"$ref": "#/components/schemas/SessionEventDto"}},
        "productIds": {"type": "array", "maxItems": 100, "items": id()},
        "limit": nullable(int(1, 100)),
        "category": {"type": ["string", "null"]},
        "exclude": {"type": "array", "items": id()},
        "minPrice": {"type": ["number", "null"], "minimum": 0},
        "maxPrice": {"type": ["number", "null"], "minimum": 0},
    }});

    // PUT takes the product without its id (the path names it).
    if let Some(body) = doc.pointer_mut(
        "/paths/~1api~1v1~1catalog~1products~1{productId}/put/requestBody/content/application~1json/schema",
    ) {
        *body = json!({"$ref": "#/components/schemas/ProductReplace"});
    }
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for p in params.into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default().to_string();
                if let Some(schema) = parameter(path, &name) {
                    if schema["type"] == "array" {
                        // `?exclude=a,b`: one parameter, comma-separated.
                        p["style"] = json!("form");
                        p["explode"] = json!(false);
                    }
                    p["schema"] = schema;
                }
            }
        }
    }
}
