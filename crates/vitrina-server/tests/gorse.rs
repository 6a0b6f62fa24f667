//! The Gorse-compatible API end to end: Gorse's paths and JSON over Vitrina's store and
//! engine (the unchanged Gorse SDKs are driven against a live server by `clients/gorse`).

mod common;

use axum::{body::Body, http::Request};
use common::{assert_error, TestApp};
use serde_json::{json, Value};

/// An empty shop (no demo data), so every row is the test's own.
async fn shop() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = vitrina_server::embedded::EmbeddedConfig {
        demo: false,
        ..vitrina_server::embedded::EmbeddedConfig::new(dir.path())
    };
    let embedded = vitrina_server::embedded::Embedded::start(config).await.unwrap();
    TestApp::from_embedded(embedded, dir)
}

#[track_caller]
fn rows(res: &(axum::http::StatusCode, Value), n: usize) {
    assert_eq!(res.0.as_u16(), 200, "{}", res.1);
    assert_eq!(res.1, json!({"RowAffected": n}));
}

async fn with_header(app: &TestApp, uri: &str, name: &str, value: &str) -> (axum::http::StatusCode, Value) {
    app.raw(Request::get(uri).header(name, value).body(Body::empty()).unwrap()).await
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn items_read_back_exactly_as_written_and_page_with_cursors() {
    let app = shop().await;
    let item = json!({
        "ItemId": "phone-1", "IsHidden": false, "Categories": ["phones", "sale"],
        "Timestamp": "2022-08-07T00:26:46Z", "Labels": {"brand": ["acme"]}, "Comment": "A phone",
    });
    rows(&app.post("/api/item", &item).await, 1);
    assert_eq!(app.get("/api/item/phone-1").await, (axum::http::StatusCode::OK, item.clone()));
    let (_, product) = app.get("/api/v1/catalog/products/phone-1").await;
    assert_eq!(product["product"]["category"], "phones", "the first category is the product's: {product}");
    assert_eq!(product["product"]["name"], "A phone");

    let more: Vec<Value> =
        (2..=5).map(|i| json!({"ItemId": format!("phone-{i}"), "Categories": ["phones"]})).collect();
    rows(&app.post("/api/items", &json!(more)).await, 4);
    let (s, first) = app.get("/api/items?n=3").await;
    assert_eq!(s.as_u16(), 200, "{first}");
    let cursor = first["Cursor"].as_str().unwrap();
    assert!(!cursor.is_empty());
    assert_eq!(first["Items"].as_array().unwrap().len(), 3);
    let (_, second) = app.get(&format!("/api/items?n=3&Cursor={cursor}")).await;
    assert_eq!(second["Cursor"], "", "the last page: {second}");
    let mut all: Vec<Value> = first["Items"].as_array().unwrap().clone();
    all.extend(second["Items"].as_array().unwrap().iter().cloned());
    let listed: Vec<&str> = all.iter().map(|i| i["ItemId"].as_str().unwrap()).collect();
    assert_eq!(listed, ["phone-1", "phone-2", "phone-3", "phone-4", "phone-5"]);
    let (_, found) = app.get("/api/items?q=PHONE-4&n=10").await;
    assert_eq!(found["Items"][0]["ItemId"], "phone-4", "{found}");

    let patch = json!({"IsHidden": true, "Categories": null, "Labels": null, "Timestamp": null, "Comment": "renamed"});
    rows(&app.send("PATCH", "/api/item/phone-1", &patch).await, 1);
    rows(&app.send("PUT", "/api/item/phone-1/category/gifts", &Value::Null).await, 1);
    rows(&app.send("DELETE", "/api/item/phone-1/category/sale", &Value::Null).await, 1);
    let (_, changed) = app.get("/api/item/phone-1").await;
    assert_eq!(changed["IsHidden"], true);
    assert_eq!(changed["Comment"], "renamed");
    assert_eq!(changed["Categories"], json!(["phones", "gifts"]));
    assert_eq!(changed["Labels"], item["Labels"], "a null field is left as it was");

    rows(&app.send("DELETE", "/api/item/phone-1", &Value::Null).await, 1);
    assert_error(&app.get("/api/item/phone-1").await, 404, "not_found");
    rows(&app.send("DELETE", "/api/item/phone-1", &Value::Null).await, 0);
    assert_error(&app.send("PATCH", "/api/item/phone-1", &patch).await, 404, "not_found");
}

#[tokio::test]
async fn users_read_back_as_gorse_writes_them_and_deleting_one_erases_their_feedback() {
    let app = shop().await;
    rows(
        &app.post("/api/user", &json!({"UserId": "u-1", "Labels": ["a", "b"], "Comment": "first"})).await,
        1,
    );
    let (s, user) = app.get("/api/user/u-1").await;
    assert_eq!(s.as_u16(), 200, "{user}");
    assert_eq!(user, json!({"UserId": "u-1", "Labels": ["a", "b"], "Subscribe": null, "Comment": "first"}));
    rows(
        &app.post("/api/users", &json!([{"UserId": "u-2"}, {"UserId": "u-3", "Subscribe": ["x"]}])).await,
        2,
    );
    rows(&app.send("PATCH", "/api/user/u-3", &json!({"Comment": "third"})).await, 1);
    // A patch is one object: an array is not read as a patch of nothing.
    assert_error(&app.send("PATCH", "/api/user/u-3", &json!([])).await, 400, "validation_failed");
    assert_error(&app.send("PATCH", "/api/item/phone-1", &json!([])).await, 400, "validation_failed");
    let (_, third) = app.get("/api/user/u-3").await;
    assert_eq!(third, json!({"UserId": "u-3", "Labels": null, "Subscribe": ["x"], "Comment": "third"}));
    let (_, page) = app.get("/api/users?n=2").await;
    assert_eq!(page["Users"].as_array().unwrap().len(), 2);
    let (_, rest) = app.get(&format!("/api/users?n=2&cursor={}", page["Cursor"].as_str().unwrap())).await;
    assert_eq!((rest["Users"][0]["UserId"].as_str(), rest["Cursor"].as_str()), (Some("u-3"), Some("")));

    let feedback = json!([{"FeedbackType": "like", "UserId": "u-1", "ItemId": "i-1", "Timestamp": "2026-01-01T00:00:00Z"}]);
    rows(&app.post("/api/feedback", &feedback).await, 1);
    assert_eq!(app.get("/api/user/u-1/feedback").await.1.as_array().unwrap().len(), 1);
    rows(&app.send("DELETE", "/api/user/u-1", &Value::Null).await, 1);
    assert_error(&app.get("/api/user/u-1").await, 404, "not_found");
    assert_eq!(app.get("/api/user/u-1/feedback").await.1, json!([]), "the feedback is erased with the user");
    assert_error(&app.get("/api/v1/users/u-1/export").await, 404, "not_found");
    rows(&app.send("DELETE", "/api/user/u-1", &Value::Null).await, 0);
}

#[tokio::test]
async fn feedback_is_stored_once_listed_as_gorse_keeps_it_and_creates_unknown_items_and_users() {
    let app = shop().await;
    let feedback = json!([
        {"FeedbackType": "star", "UserId": "u-1", "ItemId": "i-1", "Timestamp": "2026-01-01T00:00:00Z", "Value": 4},
        {"FeedbackType": "read", "UserId": "u-1", "ItemId": "i-2", "Timestamp": "2026-01-02"},
        {"FeedbackType": "read", "UserId": "u-1", "ItemId": "i-2", "Timestamp": "2026-01-03T00:00:00Z"},
    ]);
    rows(&app.post("/api/feedback", &feedback).await, 3);
    rows(&app.post("/api/feedback", &feedback).await, 3);
    let (_, log) = app.get("/api/v1/recommendations/activity/u-1").await;
    assert_eq!(log["count"], 3, "a repeat is stored once: {log}");
    let kinds: Vec<&str> =
        log["activities"].as_array().unwrap().iter().map(|a| a["activityType"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["click", "click", "rating"], "read is a click, star a rating (newest first)");

    let (_, listed) = app.get("/api/user/u-1/feedback").await;
    assert_eq!(
        listed,
        json!([
            {"FeedbackType": "read", "UserId": "u-1", "ItemId": "i-2", "Value": 0.0, "Timestamp": "2026-01-03T00:00:00Z", "Comment": ""},
            {"FeedbackType": "star", "UserId": "u-1", "ItemId": "i-1", "Value": 4.0, "Timestamp": "2026-01-01T00:00:00Z", "Comment": ""},
        ]),
        "one per type and item, the latest"
    );
    assert_eq!(app.get("/api/user/u-1/feedback/star").await.1.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/feedback/u-1/i-2").await.1.as_array().unwrap().len(), 1);
    let (s, one) = app.get("/api/feedback/star/u-1/i-1").await;
    assert_eq!((s.as_u16(), &one["Value"]), (200, &json!(4.0)), "{one}");
    assert_error(&app.get("/api/feedback/like/u-1/i-1").await, 404, "not_found");

    let (_, page) = app.get("/api/feedback?n=2").await;
    assert_eq!(page["Feedback"].as_array().unwrap().len(), 2);
    let (_, rest) = app.get(&format!("/api/feedback?n=2&cursor={}", page["Cursor"].as_str().unwrap())).await;
    assert_eq!((rest["Feedback"].as_array().unwrap().len(), rest["Cursor"].as_str()), (1, Some("")));
    let (_, reads) = app.get("/api/feedback/read?n=10").await;
    assert_eq!(reads["Feedback"].as_array().unwrap().len(), 2, "{reads}");

    assert_eq!(app.get("/api/item/i-1").await.1["ItemId"], "i-1", "feedback created the item");
    assert_eq!(app.get("/api/user/u-1").await.1["UserId"], "u-1", "and the user");
}

#[tokio::test]
async fn bad_feedback_stores_nothing_and_names_the_gorse_field() {
    let app = shop().await;
    let batch = json!([
        {"FeedbackType": "like", "UserId": "u-1", "ItemId": "i-1"},
        {"FeedbackType": "like", "UserId": "u 2", "ItemId": "i-1", "Timestamp": "yesterday"},
    ]);
    let res = app.post("/api/feedback", &batch).await;
    assert_error(&res, 400, "validation_failed");
    let fields: Vec<&str> =
        res.1["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["[1].UserId", "[1].Timestamp"], "{}", res.1);
    assert_eq!(app.get("/api/v1/recommendations/activity/u-1").await.1["count"], 0, "nothing half-stored");
    assert_error(
        &app.post("/api/feedback", &json!({"FeedbackType": "like"})).await,
        400,
        "validation_failed",
    );
    assert_error(&app.get("/api/recommend/u-1?n=0").await, 400, "validation_failed");
    assert_error(&app.get("/api/recommend/u-1?n=101").await, 400, "validation_failed");
    let (s, deep) = app.get("/api/recommend/u-1?n=90&offset=20").await;
    assert_eq!(s.as_u16(), 200, "a list holds 100 items at most, as Gorse's cache: {deep}");
    assert_error(
        &app.get("/api/recommend/u-1?write-back-type=read&write-back-delay=soon").await,
        400,
        "validation_failed",
    );
    assert_error(&app.get("/api/users?cursor=abc").await, 400, "validation_failed");
}

#[tokio::test]
async fn bad_bodies_and_paths_get_clear_errors_and_store_nothing() {
    let app = shop().await;
    // serde would read an array as a struct's fields in order: Gorse never sends one.
    assert_error(&app.post("/api/user", &json!([null, null])).await, 400, "validation_failed");
    assert_error(
        &app.post("/api/feedback", &json!([["like", "u-1", "i-1"]])).await,
        400,
        "validation_failed",
    );
    let res = app.post("/api/users", &json!([{"UserId": "u-0"}, {"UserId": "u 1"}])).await;
    assert_error(&res, 400, "validation_failed");
    assert_eq!(res.1["details"]["errors"][0]["field"], "[1].UserId", "{}", res.1);
    assert_error(&app.get("/api/user/u-0").await, 404, "not_found");
    assert_error(&app.send("PATCH", "/api/user/u-0", &json!({"Comment": "x"})).await, 404, "not_found");
    assert_error(&app.send("PUT", "/api/item/nope/category/c", &Value::Null).await, 404, "not_found");
    rows(&app.post("/api/item", &json!({"ItemId": "i-1", "Categories": ["c"]})).await, 1);
    let blank = app.send("DELETE", "/api/item/i-1/category/%20", &Value::Null).await;
    assert_error(&blank, 400, "validation_failed");
    assert_eq!(app.get("/api/item/i-1").await.1["Categories"], json!(["c"]));
    let (s, deep) = app.get("/api/items?cursor=1000001").await;
    assert_eq!((s.as_u16(), deep), (200, json!({"Cursor": "", "Items": []})), "past the deepest page: none");
}

/// Five shoppers who like `a` also like `b`; `c` is more popular, with others.
async fn tastes(app: &TestApp) {
    let mut rows = Vec::new();
    for u in 0..5 {
        for item in ["a", "b"] {
            rows.push(json!({"FeedbackType": "like", "UserId": format!("fan-{u}"), "ItemId": item}));
        }
    }
    for u in 5..12 {
        rows.push(json!({"FeedbackType": "like", "UserId": format!("fan-{u}"), "ItemId": "c"}));
    }
    let (s, body) = app.post("/api/feedback", &json!(rows)).await;
    assert_eq!(s.as_u16(), 200, "{body}");
    // Live popularity is re-ranked every second; now, for the test.
    app.embedded.state.engine.refresh();
}

#[tokio::test]
async fn a_feedback_changes_the_next_recommendation_and_write_back_records_what_was_shown() {
    let app = shop().await;
    tastes(&app).await;
    let (s, before) = app.get("/api/recommend/newcomer").await;
    assert_eq!(s.as_u16(), 200, "{before}");
    assert_eq!(ids(&before)[0], "c", "a stranger gets what is popular: {before}");
    rows(
        &app.post("/api/feedback", &json!([{"FeedbackType": "like", "UserId": "newcomer", "ItemId": "a"}]))
            .await,
        1,
    );
    let (_, after) = app.get("/api/recommend/newcomer/").await;
    assert_ne!(after, before, "the like is reflected at once");
    assert_eq!(ids(&after)[0], "b", "those who like a like b: {after}");

    let (_, scored) = with_header(&app, "/api/recommend/newcomer?n=2", "X-API-Version", "2").await;
    let scored = scored.as_array().unwrap().clone();
    assert_eq!(scored.len(), 2);
    assert_eq!(scored[0]["Id"], "b");
    assert!(scored[0]["Score"].as_f64().unwrap() >= scored[1]["Score"].as_f64().unwrap());
    let (_, skipped) = app.get("/api/recommend/newcomer?n=1&offset=1").await;
    assert_eq!(skipped, json!([scored[1]["Id"]]), "offset skips the first");

    let (s, shown) = app.get("/api/recommend/newcomer?n=1&write-back-type=read").await;
    assert_eq!(s.as_u16(), 200, "{shown}");
    let shown = ids(&shown)[0].clone();
    let (_, read) = app.get("/api/user/newcomer/feedback/read").await;
    assert_eq!(read.as_array().unwrap().len(), 1, "{read}");
    assert_eq!(read[0]["ItemId"], shown.as_str(), "{read}");
    let (_, history) = app.get("/api/v1/recommendations/activity/newcomer?limit=1").await;
    assert_eq!(history["activities"][0]["activityType"], "view", "what was shown is a view, never a click");
    let (s, later) = app.get("/api/recommend/newcomer?n=1&write-back-type=read&write-back-delay=10m").await;
    assert_eq!(s.as_u16(), 200, "{later}");
    assert_ne!(ids(&later)[0], shown, "the written-back item is not recommended again");
    let (_, read) = app.get("/api/user/newcomer/feedback/read").await;
    assert_eq!(
        read.as_array().unwrap().len(),
        1,
        "a delayed write-back is not listed before its time: {read}"
    );
    let (_, history) = app.get("/api/v1/recommendations/activity/newcomer?limit=1").await;
    assert_eq!(history["activities"][0]["productId"], later[0], "but it is stored");
}

#[tokio::test]
async fn a_deleted_feedback_is_gone_from_the_listings_the_log_and_the_next_list() {
    let app = shop().await;
    tastes(&app).await;
    // The newcomer likes a (twice: a repeat with its own time), reads a and likes c; their
    // twin only likes c.
    let feedback = |user: &str, kind: &str, item: &str, ts: &str| json!({"FeedbackType": kind, "UserId": user, "ItemId": item, "Timestamp": ts});
    let sent = json!([
        feedback("newcomer", "like", "a", "2026-01-01T00:00:00Z"),
        feedback("newcomer", "like", "a", "2026-01-02T00:00:00Z"),
        feedback("newcomer", "read", "a", "2026-01-03T00:00:00Z"),
        feedback("newcomer", "like", "c", "2026-01-04T00:00:00Z"),
        feedback("twin", "like", "c", "2026-01-04T00:00:00Z"),
    ]);
    rows(&app.post("/api/feedback", &sent).await, 5);
    let (_, liked) = app.get("/api/recommend/newcomer").await;
    assert_eq!(ids(&liked)[0], "b", "those who like a like b: {liked}");

    // One type: both stored likes of a go, counted as the one feedback Gorse keeps.
    rows(&app.send("DELETE", "/api/feedback/like/newcomer/a", &Value::Null).await, 1);
    rows(&app.send("DELETE", "/api/feedback/like/newcomer/a", &Value::Null).await, 0);
    assert_error(&app.get("/api/feedback/like/newcomer/a").await, 404, "not_found");
    let (_, left) = app.get("/api/user/newcomer/feedback").await;
    let left: Vec<(&str, &str)> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["FeedbackType"].as_str().unwrap(), f["ItemId"].as_str().unwrap()))
        .collect();
    assert_eq!(left, [("like", "c"), ("read", "a")]);
    // Every type: the read of a goes too; the like of c stays.
    rows(&app.send("DELETE", "/api/feedback/newcomer/a", &Value::Null).await, 1);
    assert_eq!(app.get("/api/feedback/newcomer/a").await.1, json!([]));
    let (_, history) = app.get("/api/v1/recommendations/activity/newcomer").await;
    assert_eq!(history["count"], 1, "{history}");
    assert_eq!(history["activities"][0]["productId"], "c");
    // The next list is the twin's, who never liked or read a.
    let (_, now) = app.get("/api/recommend/newcomer").await;
    let (_, twin) = app.get("/api/recommend/twin").await;
    assert_eq!(now, twin, "the newcomer is served as if a was never liked or read");
    assert_ne!(ids(&now)[0], "b");
    // The deleted events' ids are free again: the same like is stored anew.
    rows(
        &app.post("/api/feedback", &json!([feedback("newcomer", "like", "a", "2026-01-01T00:00:00Z")])).await,
        1,
    );
    assert_eq!(app.get("/api/v1/recommendations/activity/newcomer").await.1["count"], 2);
    // Bad paths are refused; nobody's feedback is nothing to delete.
    assert_error(
        &app.send("DELETE", "/api/feedback/newcomer/%20", &Value::Null).await,
        400,
        "validation_failed",
    );
    rows(&app.send("DELETE", "/api/feedback/stranger/a", &Value::Null).await, 0);
}

#[tokio::test]
async fn an_item_s_feedback_and_a_user_s_neighbours_are_read_from_the_log() {
    let app = shop().await;
    tastes(&app).await;
    let more = json!([
        {"FeedbackType": "like", "UserId": "newcomer", "ItemId": "a", "Timestamp": "2026-01-01T00:00:00Z"},
        {"FeedbackType": "read", "UserId": "newcomer", "ItemId": "a", "Timestamp": "2026-01-02T00:00:00Z"},
        {"FeedbackType": "read", "UserId": "newcomer", "ItemId": "a", "Timestamp": "2026-01-03T00:00:00Z"},
    ]);
    rows(&app.post("/api/feedback", &more).await, 3);
    // a: liked by fan-0…fan-4 and the newcomer, read by the newcomer (the latest read only).
    let (s, on_a) = app.get("/api/item/a/feedback").await;
    assert_eq!(s.as_u16(), 200, "{on_a}");
    let listed: Vec<(&str, &str)> = on_a
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["FeedbackType"].as_str().unwrap(), f["UserId"].as_str().unwrap()))
        .collect();
    let likers = ["fan-0", "fan-1", "fan-2", "fan-3", "fan-4", "newcomer"];
    let want: Vec<(&str, &str)> = likers.iter().map(|u| ("like", *u)).chain([("read", "newcomer")]).collect();
    assert_eq!(listed, want);
    assert_eq!(on_a[6]["Timestamp"], "2026-01-03T00:00:00Z");
    let (_, reads) = app.get("/api/item/a/feedback/read").await;
    assert_eq!(reads.as_array().unwrap().len(), 1, "{reads}");
    assert_eq!(app.get("/api/item/nothing/feedback").await.1, json!([]));

    // The newcomer's items are {a}: fan-0…fan-4 share it (cosine 1/√2), fan-5… share nothing.
    let (s, near) = app.get("/api/user/newcomer/neighbors?n=3").await;
    assert_eq!(s.as_u16(), 200, "{near}");
    let near = near.as_array().unwrap();
    assert_eq!(
        near.iter().map(|n| n["Id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["fan-0", "fan-1", "fan-2"]
    );
    assert!((near[0]["Score"].as_f64().unwrap() - 0.5f64.sqrt()).abs() < 1e-9, "{near:?}");
    let (_, next) = app.get("/api/user/newcomer/neighbors?n=3&offset=3").await;
    assert_eq!(
        next,
        json!([{"Id": "fan-3", "Score": near[0]["Score"]}, {"Id": "fan-4", "Score": near[0]["Score"]}])
    );
    // fan-0 likes a and b: the other fans like the same two (1.0), the newcomer one of them.
    let (_, fan) = app.get("/api/user/fan-0/neighbors").await;
    assert_eq!(fan[0], json!({"Id": "fan-1", "Score": 1.0}));
    assert_eq!(app.get("/api/user/stranger/neighbors").await.1, json!([]));
    assert_error(&app.get("/api/user/newcomer/neighbors?n=0").await, 400, "validation_failed");
}

#[tokio::test]
async fn an_item_s_feedback_is_judged_on_the_log_s_last_100_000_events() {
    let app = shop().await;
    let like = |user: &str| json!([{"FeedbackType": "like", "UserId": user, "ItemId": "x", "Timestamp": "2026-01-01"}]);
    rows(&app.post("/api/feedback", &like("early")).await, 1);
    // 100,000 views of another item after it, in ten batches: many pages of the log.
    rows(&app.post("/api/item", &json!({"ItemId": "filler", "Timestamp": "2026-01-01"})).await, 1);
    for batch in 0..10 {
        let events: Vec<Value> = (0..10_000)
            .map(
                |k| json!({"userId": format!("f{batch}-{k}"), "activityType": "view", "productId": "filler"}),
            )
            .collect();
        let (s, body) = app.post("/api/v1/activity/track/batch", &json!({"events": events})).await;
        assert_eq!(s.as_u16(), 200, "{body}");
    }
    rows(&app.post("/api/feedback", &like("late")).await, 1);
    let (_, on_x) = app.get("/api/item/x/feedback").await;
    let users: Vec<&str> = on_x.as_array().unwrap().iter().map(|f| f["UserId"].as_str().unwrap()).collect();
    assert_eq!(users, ["late"], "the early like is older than the last 100,000 events");
    // A typed page reads at most 100,000 events and says where to go on.
    let (_, likes) = app.get("/api/feedback/like?n=5").await;
    assert_eq!(likes["Feedback"].as_array().unwrap().len(), 1, "{likes}");
    let cursor = likes["Cursor"].as_str().unwrap().to_string();
    assert!(!cursor.is_empty(), "the search stopped at its bound, not at the end");
    let (_, rest) = app.get(&format!("/api/feedback/like?n=5&cursor={cursor}")).await;
    assert_eq!((rest["Feedback"][0]["UserId"].as_str(), rest["Cursor"].as_str()), (Some("late"), Some("")));
}

#[tokio::test]
async fn neighbours_popular_latest_and_session_lists_answer_in_gorse_s_shape() {
    let app = shop().await;
    for (id, ts, category) in [("a", "2026-01-03", "x"), ("b", "2026-01-01", "x"), ("c", "2026-01-02", "y")] {
        rows(
            &app.post("/api/item", &json!({"ItemId": id, "Timestamp": ts, "Categories": [category]})).await,
            1,
        );
    }
    tastes(&app).await;
    let (s, neighbours) = app.get("/api/item/a/neighbors?n=1").await;
    assert_eq!(s.as_u16(), 200, "{neighbours}");
    assert_eq!(neighbours[0]["Id"], "b", "{neighbours}");
    assert_eq!(app.get("/api/item/a/neighbors/").await.0.as_u16(), 200, "an empty category is none");
    assert_eq!(
        app.get("/api/item/a/neighbors/y")
            .await
            .1
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Id"] == "b")
            .count(),
        0
    );
    assert_eq!(
        app.get("/api/item/unknown/neighbors").await.1,
        json!([]),
        "an unknown item has none, as in Gorse"
    );

    let (_, popular) = app.get("/api/popular?n=1").await;
    assert_eq!(popular[0]["Id"], "c", "{popular}");
    let (_, popular_x) = app.get("/api/popular/x").await;
    assert!(popular_x.as_array().unwrap().iter().all(|s| s["Id"] != "c"), "{popular_x}");

    let (_, latest) = app.get("/api/latest").await;
    let unix = |d: &str| chrono::DateTime::parse_from_rfc3339(d).unwrap().timestamp() as f64;
    assert_eq!(
        latest,
        json!([
            {"Id": "a", "Score": unix("2026-01-03T00:00:00Z")},
            {"Id": "c", "Score": unix("2026-01-02T00:00:00Z")},
            {"Id": "b", "Score": unix("2026-01-01T00:00:00Z")},
        ])
    );
    assert_eq!(app.get("/api/latest/x?n=1&offset=1").await.1[0]["Id"], "b");

    let session = json!([{"FeedbackType": "like", "UserId": "anyone", "ItemId": "a", "Timestamp": "2026-01-05T00:00:00Z"}]);
    let (s, list) = app.post("/api/session/recommend?n=2", &session).await;
    assert_eq!(s.as_u16(), 200, "{list}");
    assert_eq!(list[0]["Id"], "b", "{list}");
    assert!(list.as_array().unwrap().iter().all(|s| s["Id"] != "a"), "the session's own items are left out");
    assert_eq!(app.get("/api/user/anyone/feedback").await.1, json!([]), "a session stores nothing");
}

#[tokio::test]
async fn keys_guard_the_gorse_api_as_they_guard_v1() {
    let app = shop().await;
    let key = |scope: &str| {
        let app = &app;
        let scope = scope.to_string();
        async move {
            app.post("/api/v1/keys", &json!({"scope": scope})).await.1["key"].as_str().unwrap().to_string()
        }
    };
    let admin = key("admin").await;
    let call = |method: &str, uri: &str, key: Option<&str>, body: Value| {
        let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        app.raw(req.body(Body::from(body.to_string())).unwrap())
    };
    let (_, created) = call("POST", "/api/v1/keys", Some(&admin), json!({"scope": "track"})).await;
    let track = created["key"].as_str().unwrap().to_string();
    let feedback = json!([{"FeedbackType": "like", "UserId": "u", "ItemId": "i"}]);
    assert_error(&call("POST", "/api/feedback", None, feedback.clone()).await, 401, "unauthorized");
    rows(&call("POST", "/api/feedback", Some(&track), feedback).await, 1);
    assert_error(&call("POST", "/api/item", Some(&track), json!({"ItemId": "j"})).await, 403, "forbidden");
    rows(&call("POST", "/api/item", Some(&admin), json!({"ItemId": "j"})).await, 1);
    let (_, created) = call("POST", "/api/v1/keys", Some(&admin), json!({"scope": "read"})).await;
    let read = created["key"].as_str().unwrap().to_string();
    assert_eq!(call("GET", "/api/recommend/u", Some(&read), Value::Null).await.0.as_u16(), 200);
    assert_error(
        &call("GET", "/api/recommend/u?write-back-type=read", Some(&read), Value::Null).await,
        403,
        "forbidden",
    );
    assert_eq!(
        call("GET", "/api/recommend/u?write-back-type=read", Some(&admin), Value::Null).await.0.as_u16(),
        200
    );
    assert_eq!(call("GET", "/api/user/u/feedback", Some(&read), Value::Null).await.0.as_u16(), 200);
    assert_error(&call("GET", "/api/feedback", Some(&read), Value::Null).await, 403, "forbidden");
    assert_error(&call("GET", "/api/feedback/like", Some(&read), Value::Null).await, 403, "forbidden");
    assert_error(&call("GET", "/api/users", Some(&read), Value::Null).await, 403, "forbidden");
    assert_eq!(
        call("GET", "/api/health/ready", None, Value::Null).await.1["Ready"],
        true,
        "health needs no key"
    );
}
