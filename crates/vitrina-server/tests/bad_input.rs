//! Every class of bad input gets the documented error shape with the right status, and
//! nothing of a rejected request is stored.

mod common;

use common::Backing;

vitrina_store::on_every_backend!(
    unknown_activity_type_is_rejected_with_the_field,
    missing_ids_are_each_named,
    wrong_types_name_the_path,
    malformed_json_and_missing_content_type,
    oversized_bodies_get_413,
    overlong_request_targets_get_414_in_the_error_shape,
    absurd_timestamps_are_rejected,
    unknown_routes_and_methods,
    bad_query_and_path_parameters,
    a_batch_with_one_bad_event_stores_nothing,
    bad_products_and_users_change_nothing,
    bad_training_configs_queue_nothing,
    text_with_a_nul_character_is_refused_and_json_text_keeps_it,
);

use axum::{body::Body, http::Request};
use common::assert_error;
use serde_json::json;

const TRACK: &str = "/api/v1/activity/track";

async fn unknown_activity_type_is_rejected_with_the_field(backing: Backing) {
    let app = backing.start().await;
    let res =
        app.post(TRACK, &json!({"userId": "u", "activityType": "teleport", "productId": "product-1"})).await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"][0]["field"], "activityType");
}

async fn missing_ids_are_each_named(backing: Backing) {
    let app = backing.start().await;
    let res = app.post(TRACK, &json!({"activityType": "view"})).await;
    assert_error(&res, 400, "validation_failed");
    let fields: Vec<_> =
        res.1["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
    assert_eq!(fields, [json!("userId"), json!("productId")]);
    assert_error(
        &app.post(TRACK, &json!({"userId": "", "activityType": "view", "productId": "p"})).await,
        400,
        "validation_failed",
    );
}

async fn wrong_types_name_the_path(backing: Backing) {
    let app = backing.start().await;
    let res = app.post(TRACK, &json!({"userId": 42, "activityType": "view", "productId": "p"})).await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"][0]["field"], "userId");
    let res = app
        .post(TRACK, &json!({"userId": "u", "activityType": "view", "productId": "p", "metadata": [1]}))
        .await;
    assert_error(&res, 400, "validation_failed");
    assert_error(&app.post(TRACK, &json!([1, 2])).await, 400, "validation_failed");
}

async fn malformed_json_and_missing_content_type(backing: Backing) {
    let app = backing.start().await;
    assert_error(&app.send_text("POST", TRACK, "{\"userId\": ").await, 400, "invalid_json");
    assert_error(&app.send_text("POST", TRACK, "not json").await, 400, "invalid_json");
    let req = Request::post(TRACK).body(Body::from("{}")).unwrap();
    assert_error(&app.raw(req).await, 415, "unsupported_media_type");
}

async fn oversized_bodies_get_413(backing: Backing) {
    let app = backing.start().await;
    let blob = "x".repeat(2 * 1024 * 1024);
    let res = app
        .post(
            TRACK,
            &json!({"userId": "u", "activityType": "view", "productId": "p", "metadata": {"b": blob}}),
        )
        .await;
    assert_error(&res, 413, "payload_too_large");
}

async fn overlong_request_targets_get_414_in_the_error_shape(backing: Backing) {
    let app = backing.start().await;
    let long = "c".repeat(vitrina_server::routes::MAX_URI_BYTES);
    let res = app.get(&format!("/api/v1/recommendations/popular?category={long}")).await;
    assert_error(&res, 414, "uri_too_long");
    assert!(res.1["message"].as_str().unwrap().contains("8192"), "{}", res.1);
    // Just under the limit the route answers as usual.
    let short = "c".repeat(vitrina_server::routes::MAX_URI_BYTES - 200);
    assert_eq!(app.get(&format!("/api/v1/recommendations/popular?category={short}")).await.0, 200);
}

async fn absurd_timestamps_are_rejected(backing: Backing) {
    let app = backing.start().await;
    for ts in [
        json!("1970-01-01T00:00:00Z"),
        json!("+10000-01-01T00:00:00Z"),
        json!(253_402_300_800_000_i64),
        json!("yesterday"),
        json!(-5),
        json!(true),
    ] {
        let res = app
            .post(TRACK, &json!({"userId": "u", "activityType": "view", "productId": "p", "timestamp": ts}))
            .await;
        assert_error(&res, 400, "validation_failed");
        assert_eq!(res.1["details"]["errors"][0]["field"], "timestamp", "{ts}");
    }
    let (_, history) = app.get("/api/v1/recommendations/activity/u").await;
    assert_eq!(history["count"], 0);

    // A time far ahead (a client clock years off) is recorded as the time of receipt; a day of
    // skew is kept as sent.
    let before = chrono::Utc::now();
    let (s, _) = app
        .post(TRACK, &json!({"userId": "u", "activityType": "view", "productId": "p", "timestamp": "3000-01-01T00:00:00Z"}))
        .await;
    assert_eq!(s.as_u16(), 201);
    let skew = (before + chrono::Duration::hours(20)).timestamp_millis();
    let (s, _) = app
        .post(TRACK, &json!({"userId": "u", "activityType": "like", "productId": "p", "timestamp": skew}))
        .await;
    assert_eq!(s.as_u16(), 201);
    let (_, history) = app.get("/api/v1/recommendations/activity/u").await;
    let times: Vec<i64> = history["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            chrono::DateTime::parse_from_rfc3339(a["timestamp"].as_str().unwrap()).unwrap().timestamp_millis()
        })
        .collect();
    assert_eq!(times[0], skew, "{history}");
    assert!(
        times[1] >= before.timestamp_millis() && times[1] <= chrono::Utc::now().timestamp_millis(),
        "{history}"
    );
}

async fn unknown_routes_and_methods(backing: Backing) {
    let app = backing.start().await;
    assert_error(&app.get("/api/v1/nothing-here").await, 404, "not_found");
    assert_error(&app.send("DELETE", "/health", &json!({})).await, 405, "method_not_allowed");
    assert_error(&app.get("/api/v1/catalog/products/product-404").await, 404, "not_found");
    assert_error(&app.get("/api/v1/catalog/products/product-404/exposure").await, 404, "not_found");
}

async fn bad_query_and_path_parameters(backing: Backing) {
    let app = backing.start().await;
    for uri in [
        "/api/v1/recommendations/recommendations/user-1?limit=abc",
        "/api/v1/recommendations/recommendations/user-1?limit=0",
        "/api/v1/recommendations/recommendations/user-1?limit=100000",
        "/api/v1/recommendations/recommendations/user-1?minPrice=-1",
        "/api/v1/recommendations/recommendations/user%201",
        "/api/v1/recommendations/stats/user-1?days=0",
        "/api/v1/catalog/products/product-1/exposure?days=0",
        "/api/v1/catalog/products/product-1/exposure?days=366",
        "/api/v1/recommendations/activity/user-1?limit=-3",
    ] {
        assert_error(&app.get(uri).await, 400, "validation_failed");
    }
}

async fn a_batch_with_one_bad_event_stores_nothing(backing: Backing) {
    let app = backing.start().await;
    let events = json!({"events": [
        {"userId": "batch-u", "activityType": "view", "productId": "product-1", "eventId": "b-1"},
        {"userId": "batch-u", "activityType": "fly", "productId": "product-2"},
        {"userId": "batch-u", "activityType": "view"},
    ]});
    let res = app.post("/api/v1/activity/track/batch", &events).await;
    assert_error(&res, 400, "validation_failed");
    let errors = res.1["details"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        (errors[0]["index"].clone(), errors[0]["field"].clone()),
        (json!(1), json!("events[1].activityType"))
    );
    assert_eq!(errors[1]["index"], 2);
    let (_, history) = app.get("/api/v1/recommendations/activity/batch-u").await;
    assert_eq!(history["count"], 0);

    assert_error(
        &app.post("/api/v1/activity/track/batch", &json!({"events": []})).await,
        400,
        "validation_failed",
    );
    let too_many: Vec<_> =
        (0..10_001).map(|_| json!({"userId": "u", "activityType": "view", "productId": "p"})).collect();
    assert_error(
        &app.post("/api/v1/activity/track/batch", &json!({"events": too_many})).await,
        400,
        "validation_failed",
    );
}

async fn bad_products_and_users_change_nothing(backing: Backing) {
    let app = backing.start().await;
    let res = app
        .post(
            "/api/v1/catalog/products",
            &json!({"id": "p-new", "name": " ", "category": "x", "price": "12,50"}),
        )
        .await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"].as_array().unwrap().len(), 2);
    assert_error(&app.get("/api/v1/catalog/products/p-new").await, 404, "not_found");

    let res = app
        .send("PATCH", "/api/v1/catalog/products/product-1", &json!({"price": "free", "hidden": true}))
        .await;
    assert_error(&res, 400, "validation_failed");
    let (_, p) = app.get("/api/v1/catalog/products/product-1").await;
    assert_eq!(
        (p["product"]["hidden"].clone(), p["product"]["price"].clone()),
        (json!(false), json!("79999.00"))
    );

    let bulk = json!({"products": [
        {"id": "ok-1", "name": "A", "category": "c", "price": "1.00"},
        {"id": "bad id", "name": "B", "category": "c", "price": "1.00"},
    ]});
    let res = app.post("/api/v1/catalog/products/bulk", &bulk).await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"][0]["field"], "products[1].id");
    assert_error(&app.get("/api/v1/catalog/products/ok-1").await, 404, "not_found");

    assert_error(
        &app.post(
            "/api/v1/catalog/products",
            &json!({"id": "product-1", "name": "A", "category": "c", "price": "1"}),
        )
        .await,
        409,
        "conflict",
    );
    assert_error(&app.post("/api/v1/users", &json!({"id": "u/1"})).await, 400, "validation_failed");
    assert_error(&app.send("DELETE", "/api/v1/users/nobody", &json!({})).await, 404, "not_found");
}

async fn bad_training_configs_queue_nothing(backing: Backing) {
    let app = backing.start().await;
    for config in [
        json!({"timeDecay": 0}),
        json!({"weights": {"teleport": 1.0}}),
        json!({"weights": {"view": "a lot"}}),
        json!({"bogus": 1}),
    ] {
        let res = app.post("/api/v1/training/train", &json!({"config": config})).await;
        assert_error(&res, 400, "validation_failed");
    }
    let (_, status) = app.get("/api/v1/training/status").await;
    assert_eq!(status["queued"], json!([]));
    assert_eq!(status["recent"].as_array().unwrap().len(), 1, "only the start-up job: {status}");
}

/// PostgreSQL's TEXT cannot hold U+0000: names and categories with it are refused alike on
/// every backend, while JSON fields (metadata, attributes) keep it escaped.
async fn text_with_a_nul_character_is_refused_and_json_text_keeps_it(backing: Backing) {
    let app = backing.start().await;
    let res = app
        .post(
            "/api/v1/catalog/products",
            &json!({"id": "p-nul", "name": "a\u{0}b", "category": "c", "price": "1"}),
        )
        .await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"][0]["field"], "name", "{}", res.1);
    assert_error(&app.get("/api/v1/catalog/products/p-nul").await, 404, "not_found");
    let res = app.send("PATCH", "/api/v1/catalog/products/product-1", &json!({"category": "\u{0}"})).await;
    assert_error(&res, 400, "validation_failed");
    assert_error(
        &app.post("/api/v1/users", &json!({"id": "u-nul", "name": "\u{0}"})).await,
        400,
        "validation_failed",
    );

    let attrs = json!({"note": "x\u{0}y"});
    let (s, body) = app.post("/api/v1/users", &json!({"id": "u-json", "attributes": attrs})).await;
    assert!(s.is_success(), "{body}");
    let (_, user) = app.get("/api/v1/users/u-json").await;
    assert_eq!(user["user"]["attributes"], attrs, "{user}");
    let search = json!({"userId": "u-json", "activityType": "search", "metadata": {"query": "a\u{0}b"}});
    let (s, body) = app.post(TRACK, &search).await;
    assert_eq!(s.as_u16(), 201, "{body}");
    let (_, history) = app.get("/api/v1/recommendations/activity/u-json").await;
    assert_eq!(history["activities"][0]["metadata"]["query"], "a\u{0}b", "{history}");
}
