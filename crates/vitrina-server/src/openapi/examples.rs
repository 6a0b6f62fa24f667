//! An example for every operation: each request body, and each path parameter by name, so
//! that generated docs and clients show a working call. `tests/api.rs` sends every example to
//! a live server and expects it accepted.

use serde_json::{json, Value};

/// The request body example of an operation, by operation id.
fn body(operation_id: &str) -> Option<Value> {
    Some(match operation_id {
        "activity_track" => {
            json!({"userId": "user-1", "activityType": "add_to_cart", "productId": "sku-1001",
            "metadata": {"quantity": 1, "recommendationId": "rec-0190c3a1"}, "timestamp": "2024-01-15T10:30:00.000Z",
            "eventId": "evt-0001"})
        }
        "activity_track_batch" => json!({"events": [
            {"userId": "user-1", "activityType": "view", "productId": "sku-1001"},
            {"userId": "user-1", "activityType": "search", "metadata": {"query": "desk lamp"}},
            {"userId": "user-2", "activityType": "purchase", "productId": "sku-1002",
             "metadata": {"revenue": "49.90", "quantity": 1}}]}),
        "recommendations_refresh" => json!({"limit": 10}),
        "recommendations_session" => json!({"sessionId": "session-1",
            "events": [{"productId": "sku-1001", "activityType": "view"},
                       {"productId": "sku-1002", "activityType": "add_to_cart"}],
            "limit": 10, "exclude": ["sku-1003"]}),
        "training_train" => json!({"config": {"algorithms": ["als", "item-knn", "transitions", "popularity"],
            "timeDecay": 0.95, "als": {"factors": 32, "iterations": 10}}}),
        "catalog_create" => json!({"id": "sku-1001", "name": "Desk lamp", "category": "lighting",
            "price": "29.90", "attributes": {"color": "black"}, "inStock": true}),
        "catalog_put" => json!({"name": "Desk lamp", "category": "lighting", "price": "24.90",
            "attributes": {"color": "black"}, "inStock": true, "hidden": false}),
        "catalog_patch" => json!({"inStock": false}),
        "catalog_bulk" => json!({"products": [
            {"id": "sku-1003", "name": "Lamp shade", "category": "lighting", "price": "9.90"},
            {"id": "sku-1002", "name": "Office chair", "category": "furniture", "price": "149.00"}]}),
        "users_upsert" => json!({"id": "user-1", "name": "Ada", "attributes": {"segment": "returning"}}),
        "experiments_create" => json!({"name": "trending-heavy", "goal": "ctr",
            "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 2.0}}}]}),
        "keys_create" => json!({"scope": "track", "name": "storefront"}),
        "gorse_items_insert" => json!({"ItemId": "sku-2001", "IsHidden": false, "Categories": ["lighting"],
            "Timestamp": "2024-01-15T10:30:00Z", "Labels": ["black"], "Comment": "Floor lamp"}),
        "gorse_items_insert_many" => {
            json!([{"ItemId": "sku-2002", "Categories": ["lighting"], "Timestamp": "2024-01-16"}])
        }
        "gorse_items_patch" => json!({"IsHidden": false, "Comment": "Desk lamp, black"}),
        "gorse_users_insert" => json!({"UserId": "user-3", "Labels": ["returning"], "Comment": "Grace"}),
        "gorse_users_insert_many" => json!([{"UserId": "user-4"}]),
        "gorse_users_patch" => json!({"Comment": "Ada L."}),
        "gorse_feedback_insert" => {
            json!([{"FeedbackType": "like", "UserId": "user-1", "ItemId": "sku-1001", "Timestamp": "2024-01-15T10:31:00Z"}])
        }
        "gorse_feedback_upsert" => json!([{"FeedbackType": "star", "UserId": "user-1", "ItemId": "sku-1002",
            "Timestamp": "2024-01-15T10:32:00Z", "Value": 4}]),
        "gorse_lists_session" | "gorse_lists_session_in" => {
            json!([{"FeedbackType": "like", "ItemId": "sku-1001", "Timestamp": "2024-01-15T10:33:00Z"}])
        }
        _ => return None,
    })
}

/// The example of a path parameter, by name.
fn path_parameter(name: &str) -> Option<Value> {
    Some(match name {
        "userId" => json!("user-1"),
        "productId" => json!("sku-1001"),
        "version" => json!("1"),
        "jobId" => json!("job-1"),
        "id" => json!("exp-1"),
        "keyId" => json!("key-1"),
        "itemId" => json!("sku-1001"),
        "feedbackType" => json!("like"),
        "category" => json!("lighting"),
        _ => return None,
    })
}

/// Writes the examples into `doc` (the document as JSON).
pub fn apply(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            if let (Some(example), Some(content)) =
                (body(&id), op.pointer_mut("/requestBody/content/application~1json"))
            {
                content["example"] = example;
            }
            for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                if p["in"] == "path" {
                    if let Some(example) = path_parameter(p["name"].as_str().unwrap_or_default()) {
                        p["example"] = example;
                    }
                }
            }
        }
    }
}
