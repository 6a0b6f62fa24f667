//! Behaviour of the API on the embedded backend: idempotency, cache freshness, catalogue
//! rules, user deletion, training and the registry, docs and metrics.

mod common;

use common::start;
use serde_json::{json, Value};

const TRACK: &str = "/api/v1/activity/track";

fn product_ids(body: &Value) -> Vec<String> {
    body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["productId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_same_event_id_is_stored_once() {
    let app = start().await;
    let event =
        json!({"userId": "dup", "activityType": "view", "productId": "product-1", "eventId": "evt-1"});
    let (s1, first) = app.post(TRACK, &event).await;
    let (s2, second) = app.post(TRACK, &event).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (201, 200));
    assert_eq!((first["duplicate"].clone(), second["duplicate"].clone()), (json!(false), json!(true)));
    assert_eq!(first["sequence"], second["sequence"]);
    assert_eq!(first["event"], "UserViewedProduct");
    let batch = json!({"events": [event, {"userId": "dup", "activityType": "like", "productId": "product-2", "eventId": "evt-2"}]});
    let (_, res) = app.post("/api/v1/activity/track/batch", &batch).await;
    assert_eq!((res["stored"].clone(), res["duplicates"].clone()), (json!(1), json!(1)));
    assert_eq!(res["results"][0]["status"], "duplicate");
    let (_, history) = app.get("/api/v1/recommendations/activity/dup").await;
    let ids: Vec<_> =
        history["activities"].as_array().unwrap().iter().map(|a| a["eventId"].clone()).collect();
    assert_eq!(ids, [json!("evt-2"), json!("evt-1")]);
}

#[tokio::test]
async fn the_cache_serves_until_the_visitor_acts_and_refresh_bypasses_it() {
    let app = start().await;
    let uri = "/api/v1/recommendations/recommendations/user-4?limit=5";
    let (_, first) = app.get(uri).await;
    let (_, second) = app.get(uri).await;
    assert_eq!((first["fromCache"].clone(), second["fromCache"].clone()), (json!(false), json!(true)));
    assert_eq!(product_ids(&first), product_ids(&second));
    assert_ne!(first["recommendationId"], second["recommendationId"]);

    let top = product_ids(&first)[0].clone();
    let (status, _) =
        app.post(TRACK, &json!({"userId": "user-4", "activityType": "purchase", "productId": top})).await;
    assert_eq!(status.as_u16(), 201);
    let (_, after) = app.get(uri).await;
    assert_eq!(after["fromCache"], false);
    assert!(!product_ids(&after).contains(&top), "a purchased item must not come back");

    let (_, refreshed) =
        app.post("/api/v1/recommendations/recommendations/user-4/refresh", &json!({"limit": 2})).await;
    assert_eq!(refreshed["fromCache"], false);
    assert_eq!(product_ids(&refreshed).len(), 2);
}

#[tokio::test]
async fn a_view_personalises_a_new_visitor_with_the_reason() {
    let app = start().await;
    let (_, cold) = app.get("/api/v1/recommendations/recommendations/brand-new?limit=3").await;
    let cold_reasons: Vec<&str> =
        cold["recommendations"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(
        cold_reasons.iter().all(|r| ["trending", "popular_in_category", "new_item"].contains(r)),
        "a new visitor gets popular items: {cold}"
    );
    assert!(cold["recommendations"].as_array().unwrap().iter().all(|r| r["explanation"].is_null()));
    app.post(TRACK, &json!({"userId": "brand-new", "activityType": "view", "productId": "product-3"})).await;
    let (_, warm) = app.get("/api/v1/recommendations/recommendations/brand-new?limit=3").await;
    let first = &warm["recommendations"][0];
    let personal = [
        "collaborative_filtering",
        "matrix_factorization",
        "next_item",
        "linear_item_model",
        "whole_history",
    ];
    assert!(personal.contains(&first["reason"].as_str().unwrap()), "{warm}");
    assert_eq!(
        first["explanation"], "viewed Ноутбук MacBook Air M2 (product-3)",
        "the product by name and id"
    );
    assert!(!product_ids(&warm).contains(&"product-3".to_string()));
    assert_eq!(first["product"]["id"], first["productId"]);
    assert!(first["product"]["price"].as_str().unwrap().contains('.'));
}

#[tokio::test]
async fn a_hidden_or_out_of_stock_product_disappears_at_once() {
    let app = start().await;
    let uri = "/api/v1/recommendations/recommendations/user-1?limit=20";
    let (_, before) = app.get(uri).await;
    let ids = product_ids(&before);
    let (hide, out) = (ids[0].clone(), ids[1].clone());
    let (s, _) =
        app.send("PATCH", &format!("/api/v1/catalog/products/{hide}"), &json!({"hidden": true})).await;
    assert_eq!(s.as_u16(), 200);
    app.send("PATCH", &format!("/api/v1/catalog/products/{out}"), &json!({"inStock": false})).await;
    for user in ["user-1", "user-2", "user-3", "nobody"] {
        let (_, list) = app.get(&format!("/api/v1/recommendations/recommendations/{user}?limit=20")).await;
        let got = product_ids(&list);
        assert!(!got.contains(&hide) && !got.contains(&out), "{user}: {got:?}");
    }
    // Every other endpoint too: similar items (of every product), popular in each window,
    // an anonymous session that viewed the hidden product itself.
    let mut lists = Vec::new();
    for p in 1..=10 {
        let (s, list) = app.get(&format!("/api/v1/recommendations/similar/product-{p}?limit=20")).await;
        assert_eq!(s.as_u16(), 200, "{list}");
        lists.push(list);
    }
    for window in ["hour", "day", "week", "month"] {
        lists.push(app.get(&format!("/api/v1/recommendations/popular?limit=20&window={window}")).await.1);
    }
    let session = json!({"productIds": [hide.clone(), out.clone(), "product-1"], "limit": 20});
    lists.push(app.post("/api/v1/recommendations/session", &session).await.1);
    for (i, list) in lists.iter().enumerate() {
        let got = product_ids(list);
        // Popular and session lists always have items to show (similar may have none).
        assert!(i < 10 || !got.is_empty(), "{list}");
        assert!(!got.contains(&hide) && !got.contains(&out), "{got:?}");
    }
    assert!(lists[..10].iter().any(|l| !product_ids(l).is_empty()), "similar lists are not all empty");
}

#[tokio::test]
async fn filters_apply() {
    let app = start().await;
    let (_, list) = app.get("/api/v1/recommendations/recommendations/user-5?limit=20&category=%D0%90%D0%BA%D1%81%D0%B5%D1%81%D1%81%D1%83%D0%B0%D1%80%D1%8B&exclude=product-8").await;
    let recs = list["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty());
    assert!(
        recs.iter().all(|r| r["product"]["category"] == "Аксессуары" && r["productId"] != "product-8"),
        "{list}"
    );
    let (_, cheap) = app.get("/api/v1/recommendations/recommendations/user-5?limit=20&maxPrice=5000").await;
    assert!(cheap["recommendations"].as_array().unwrap().iter().all(|r| r["product"]["price"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        <= 5000.0));
}

#[tokio::test]
async fn deleting_a_user_erases_their_history() {
    let app = start().await;
    let (s, body) = app.send("DELETE", "/api/v1/users/user-2", &json!({})).await;
    assert_eq!(s.as_u16(), 200, "{body}");
    assert_eq!(body["deleted"]["events"], 3);
    let (_, history) = app.get("/api/v1/recommendations/activity/user-2").await;
    assert_eq!(history["count"], 0);
    assert_eq!(app.get("/api/v1/users/user-2").await.0.as_u16(), 404);
}

#[tokio::test]
async fn catalogue_crud_round_trip() {
    let app = start().await;
    let (s, created) = app
        .post(
            "/api/v1/catalog/products",
            &json!({"id": "p-100", "name": "Кабель", "category": "Аксессуары", "price": "199.5"}),
        )
        .await;
    assert_eq!(s.as_u16(), 201);
    assert_eq!(created["product"]["price"], "199.50");
    // Money is never a float: a fractional JSON number is refused, a whole one is fine.
    let float = json!({"id": "p-101", "name": "Кабель", "category": "Аксессуары", "price": 199.5});
    common::assert_error(&app.post("/api/v1/catalog/products", &float).await, 400, "validation_failed");
    let (_, put) = app
        .send(
            "PUT",
            "/api/v1/catalog/products/p-100",
            &json!({"name": "Кабель USB-C", "category": "Аксессуары", "price": "249"}),
        )
        .await;
    assert_eq!(
        (put["product"]["name"].clone(), put["product"]["createdAt"].clone()),
        (json!("Кабель USB-C"), created["product"]["createdAt"].clone())
    );
    let (_, list) = app.get("/api/v1/catalog/products?limit=2&offset=0").await;
    assert_eq!((list["total"].clone(), list["products"].as_array().unwrap().len()), (json!(11), 2));
    let (s, _) = app.post("/api/v1/catalog/products/bulk", &json!({"products": [{"id": "p-101", "name": "A", "category": "c", "price": "1"}, {"id": "p-100", "name": "B", "category": "c", "price": "2"}]})).await;
    assert_eq!(s.as_u16(), 200);
    assert_eq!(app.get("/api/v1/catalog/products/p-100").await.1["product"]["name"], "B");
    assert_eq!(app.send("DELETE", "/api/v1/catalog/products/p-101", &json!({})).await.0.as_u16(), 200);
    assert_eq!(app.get("/api/v1/catalog/products/p-101").await.0.as_u16(), 404);
}

#[tokio::test]
async fn a_catalogue_search_finds_id_name_or_category_in_any_case_and_pages_its_hits() {
    let app = start().await;
    let products = [
        json!({"id": "p-100", "name": "Кабель", "category": "Аксессуары", "price": "199"}),
        json!({"id": "p-102", "name": "Кабельный органайзер", "category": "Дом", "price": "99", "hidden": true}),
        json!({"id": "p-103", "name": "Лампа", "category": "Дом", "price": "900"}),
    ];
    for product in &products {
        assert_eq!(app.post("/api/v1/catalog/products", product).await.0.as_u16(), 201);
    }
    let ids = |list: &Value| -> Vec<String> {
        list["products"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
    };
    let search = |query: &'static str| {
        let app = &app;
        async move {
            let (status, list) = app.get(&format!("/api/v1/catalog/products?{query}")).await;
            assert_eq!(status.as_u16(), 200, "{list}");
            (list["total"].as_u64().unwrap(), ids(&list))
        }
    };
    // "КАБЕЛЬ" finds the names "Кабель…" in another case, the hidden product too, by id.
    let cable = search("q=%D0%9A%D0%90%D0%91%D0%95%D0%9B%D0%AC").await;
    assert_eq!(cable, (2, vec!["p-100".to_string(), "p-102".to_string()]));
    // The total counts every hit; offset and limit page them.
    let paged = search("q=%D0%9A%D0%90%D0%91%D0%95%D0%9B%D0%AC&offset=1&limit=1").await;
    assert_eq!(paged, (2, vec!["p-102".to_string()]));
    // The id; the category ("дом"); "каб" within the category "Дом".
    assert_eq!(search("q=P-10").await.0, 3);
    assert_eq!(search("q=%D0%B4%D0%BE%D0%BC").await, (2, vec!["p-102".to_string(), "p-103".to_string()]));
    let in_home = search("q=%D0%BA%D0%B0%D0%B1&category=%D0%94%D0%BE%D0%BC").await;
    assert_eq!(in_home, (1, vec!["p-102".to_string()]));
    assert_eq!(search("q=no-such-text").await, (0, vec![]));
    // A blank search searches nothing: the whole catalogue (10 demo products and 3 here).
    assert_eq!(search("q=%20%20").await.0, 13);
    // A deleted product is no longer found; a too long search is refused, naming `q`.
    assert_eq!(app.send("DELETE", "/api/v1/catalog/products/p-100", &json!({})).await.0.as_u16(), 200);
    assert_eq!(search("q=%D0%9A%D0%90%D0%91%D0%95%D0%9B%D0%AC").await, (1, vec!["p-102".to_string()]));
    let long = app.get(&format!("/api/v1/catalog/products?q={}", "a".repeat(513))).await;
    common::assert_error(&long, 400, "validation_failed");
    assert_eq!(long.1["details"]["errors"][0]["field"], "q", "{}", long.1);
}

#[tokio::test]
async fn training_registers_and_activates_a_new_model() {
    let app = start().await;
    let (s, queued) = app.post("/api/v1/training/train", &json!({"config": {"weights": {"view": 1.0, "add_to_cart": 2.5, "purchase": 5.0}, "timeDecay": 0.9}})).await;
    assert_eq!(s.as_u16(), 202, "{queued}");
    let job = queued["job"]["jobId"].clone();
    let finished = common::eventually("the training job to finish", || async {
        let (_, status) = app.get("/api/v1/training/status").await;
        (status["lastFinished"]["jobId"] == job).then_some(status)
    })
    .await;
    assert_eq!(finished["lastFinished"]["status"], "succeeded", "{finished}");
    assert_eq!(finished["activeModelVersion"], "v2");
    let (_, models) = app.get("/api/v1/training/models").await;
    assert_eq!(
        models["models"][0]["parameters"]["als"]["regularization"],
        json!(0.1),
        "no f32 noise: {models}"
    );
    assert_eq!(models["activeVersion"], "v2");
    let statuses: Vec<_> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].clone(), m["status"].clone()))
        .collect();
    assert_eq!(statuses, [(json!("v2"), json!("active")), (json!("v1"), json!("archived"))]);
    assert_eq!(models["models"][0]["parameters"]["timeDecay"], 0.9);
    // five demo visitors are too few to learn a ranker from: the record says so
    let ranker = &models["models"][0]["metrics"]["ranker"];
    assert_eq!(ranker["serves"], false, "{ranker}");
    assert!(ranker["skipped"].as_str().unwrap().contains("needs at least 120"), "{ranker}");
    let (_, recs) = app.get("/api/v1/recommendations/recommendations/user-1").await;
    assert_eq!(recs["modelVersion"], "v2");
}

#[tokio::test]
async fn stats_attribute_clicks_to_the_served_list() {
    let app = start().await;
    let (_, list) = app.get("/api/v1/recommendations/recommendations/user-3?limit=3").await;
    let rec_id = list["recommendationId"].clone();
    let first = list["recommendations"][0].clone();
    app.post(TRACK, &json!({"userId": "user-3", "activityType": "click", "productId": first["productId"], "metadata": {"recommendationId": rec_id}})).await;
    app.post(TRACK, &json!({"userId": "user-3", "activityType": "purchase", "productId": first["productId"], "metadata": {"recommendationId": rec_id}})).await;
    let (_, stats) = app.get("/api/v1/recommendations/stats/user-3?days=7").await;
    let s = &stats["stats"];
    assert_eq!(
        (s["lists"].clone(), s["impressions"].clone(), s["clicks"].clone(), s["conversions"].clone()),
        (json!(1), json!(3), json!(1), json!(1)),
        "{stats}"
    );
    let slice =
        s["byAlgorithm"].as_array().unwrap().iter().find(|b| b["algorithm"] == first["reason"]).unwrap();
    assert_eq!((slice["clicks"].clone(), slice["variant"].clone()), (json!(1), json!("default")));
}

#[tokio::test]
async fn a_products_exposure_counts_its_impressions_and_attributed_outcomes() {
    let app = start().await;
    let (_, list) = app.get("/api/v1/recommendations/recommendations/user-3?limit=3").await;
    let rec_id = list["recommendationId"].clone();
    let [first, second] =
        [0, 1].map(|k| list["recommendations"][k]["productId"].as_str().unwrap().to_string());
    app.post(TRACK, &json!({"userId": "user-3", "activityType": "click", "productId": first, "metadata": {"recommendationId": rec_id}})).await;
    app.post(
        TRACK,
        &json!({"userId": "user-3", "activityType": "purchase", "productId": first,
        "metadata": {"recommendationId": rec_id, "revenue": 25}}),
    )
    .await;
    // Outcomes are attributed off the request path: wait for the purchase to count.
    let exposure = |product: String| {
        let app = &app;
        // Today and yesterday (UTC): the lists of this test, even when it runs across midnight.
        async move { app.get(&format!("/api/v1/catalog/products/{product}/exposure?days=2")).await.1 }
    };
    let bought = common::eventually("the purchase to be attributed", || async {
        let e = exposure(first.clone()).await;
        (e["purchases"] == json!(1)).then_some(e)
    })
    .await;
    assert_eq!(
        (
            &bought["impressions"],
            &bought["clicks"],
            &bought["addToCarts"],
            &bought["revenue"],
            &bought["ctr"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(25.0), &json!(1.0)),
        "{bought}"
    );
    assert_eq!(bought["days"], json!(2));
    assert!(bought["since"].as_str().unwrap().ends_with("T00:00:00.000Z"), "{bought}");
    let only_shown = exposure(second.clone()).await;
    assert_eq!((&only_shown["impressions"], &only_shown["clicks"]), (&json!(1), &json!(0)), "{only_shown}");
    // A preview is the list the visitor would be served, and is not logged; a served list
    // after it is.
    let ids = |list: &Value| -> Vec<Value> {
        list["recommendations"].as_array().unwrap().iter().map(|r| r["productId"].clone()).collect()
    };
    let (_, served) = app.get("/api/v1/recommendations/recommendations/user-7?limit=3").await;
    let shown = served["recommendations"][0]["productId"].as_str().unwrap().to_string();
    let before = exposure(shown.clone()).await["impressions"].as_u64().unwrap();
    let (status, preview) =
        app.get("/api/v1/recommendations/recommendations/user-7?limit=3&preview=true").await;
    assert_eq!(status.as_u16(), 200, "{preview}");
    assert_eq!(ids(&preview), ids(&served));
    assert_eq!(
        exposure(shown.clone()).await["impressions"].as_u64(),
        Some(before),
        "the preview is not logged"
    );
    app.get("/api/v1/recommendations/recommendations/user-7?limit=3").await;
    assert_eq!(exposure(shown).await["impressions"].as_u64(), Some(before + 1), "a served list is");
}

#[tokio::test]
async fn health_docs_and_metrics() {
    let app = start().await;
    let (s, health) = app.get("/health").await;
    assert_eq!((s.as_u16(), health["message"].clone()), (200, json!("Recommendation System is healthy")));
    for (path, name) in [
        ("activity", "Activity Service"),
        ("engine", "Recommendation Engine"),
        ("recommendations", "Recommendation Service"),
        ("training", "Training Service"),
    ] {
        let (s, h) = app.get(&format!("/api/v1/{path}/health")).await;
        assert_eq!((s.as_u16(), h["message"].clone()), (200, json!(format!("{name} is healthy"))));
    }
    let (_, spec) = app.get("/openapi.json").await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/activity/track",
        "/api/v1/activity/track/batch",
        "/api/v1/recommendations/recommendations/{userId}",
        "/api/v1/recommendations/recommendations/{userId}/refresh",
        "/api/v1/recommendations/activity/{userId}",
        "/api/v1/recommendations/stats/{userId}",
        "/api/v1/training/train",
        "/api/v1/training/status",
        "/api/v1/training/models",
        "/health",
        "/api/v1/catalog/products/{productId}",
        "/api/v1/users/{userId}",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from the spec");
    }
    // The training config is published field by field (a client can generate it), down to
    // the nested model parameters, and a job shows the same schema.
    let schemas = &spec["components"]["schemas"];
    let config = &schemas["TrainingConfig"]["properties"];
    for field in ["weights", "timeDecay", "algorithms", "als", "ease", "validationUsers", "tolerance"] {
        assert!(config.get(field).is_some(), "TrainingConfig.{field} missing from the spec: {config}");
    }
    assert_eq!(schemas["EaseConfig"]["properties"]["sessionSeconds"]["type"], json!("number"));
    assert_eq!(config["timeDecay"]["default"], json!(0.95), "defaults are published");
    assert!(schemas["AlsParams"]["properties"].get("factors").is_some());
    assert_eq!(
        spec["components"]["schemas"]["Job"]["properties"]["config"]["$ref"],
        json!("#/components/schemas/TrainingConfig")
    );
    let (s, page) = app.get("/docs/").await;
    assert_eq!(s.as_u16(), 200);
    assert!(page.as_str().unwrap().contains("swagger"), "docs page is served from the binary");
    vitrina_server::observe::prometheus();
    app.get("/health").await;
    app.get("/api/v1/recommendations/recommendations/user-1").await;
    let (_, metrics) = app.get("/metrics").await;
    let text = metrics.as_str().unwrap();
    for want in [
        "# HELP vitrina_http_requests_total",
        "# TYPE vitrina_http_requests_total counter",
        "route=\"/api/v1/recommendations/recommendations/{userId}\"",
        "vitrina_active_model_version 1",
        "vitrina_training_queued_jobs 0",
        "vitrina_online_visitors ",
        "vitrina_cache_entries ",
        "# HELP process_resident_memory_bytes",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(want), "/metrics lacks {want:?}:\n{text}");
    }
}

#[tokio::test]
async fn rollback_restores_the_previous_models_exact_lists_and_walks_back() {
    let app = start().await;
    let uri = "/api/v1/recommendations/recommendations/user-5?limit=10";
    // Product ids with scores rounded to 1e-4: live popularity keeps decaying between requests
    // (scores are re-normalised, so only float rounding moves), nothing else may change.
    let scores = |v: &Value| {
        v["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["productId"].clone(), (r["score"].as_f64().unwrap() * 1e4).round() as i64))
            .collect::<Vec<_>>()
    };
    let (_, v1) = app.get(uri).await;
    // Purchases weighted far above views make a visibly different model (same data: no
    // event arrives meanwhile, so only the model differs).
    assert_eq!(
        common::train_and_wait(
            &app,
            json!({"weights": {"view": 0.1, "purchase": 50.0}, "timeDecay": 0.5, "tolerance": 1.0})
        )
        .await["modelVersion"],
        "v2"
    );
    assert_eq!(
        common::train_and_wait(&app, json!({"timeDecay": 0.99, "tolerance": 1.0})).await["modelVersion"],
        "v3"
    );
    let (_, v3) = app.get(uri).await;
    assert_eq!(v3["modelVersion"], "v3");

    let (s, back) = app.post("/api/v1/training/rollback", &json!({})).await;
    assert_eq!((s.as_u16(), back["model"]["version"].clone()), (200, json!("v2")), "{back}");
    let (s, back) = app.post("/api/v1/training/rollback", &json!({})).await;
    assert_eq!((s.as_u16(), back["model"]["version"].clone()), (200, json!("v1")));
    let (_, again) = app.get(uri).await;
    assert_eq!(again["modelVersion"], "v1");
    assert_eq!(scores(&again), scores(&v1), "v1 serves exactly what it served before");
    common::assert_error(&app.post("/api/v1/training/rollback", &json!({})).await, 409, "conflict");

    let (s, promoted) = app.post("/api/v1/training/models/v3/activate", &json!({})).await;
    assert_eq!((s.as_u16(), promoted["model"]["status"].clone()), (200, json!("active")));
    assert_eq!(promoted["model"]["previousVersion"], "v1");
    let (_, now) = app.get(uri).await;
    assert_eq!(scores(&now), scores(&v3));
    common::assert_error(
        &app.post("/api/v1/training/models/v42/activate", &json!({})).await,
        404,
        "not_found",
    );
    common::assert_error(&app.get("/api/v1/training/models/v42").await, 404, "not_found");
    assert_eq!(app.get("/api/v1/training/models/v2").await.1["model"]["status"], "archived");
}

#[tokio::test]
async fn health_turns_503_naming_the_reason_while_no_model_serves_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = vitrina_server::embedded::EmbeddedConfig {
        demo: false,
        ..vitrina_server::embedded::EmbeddedConfig::new(dir.path())
    };
    let embedded = vitrina_server::embedded::Embedded::start(config).await.unwrap();
    let app = common::TestApp::from_embedded(embedded, dir);
    let (s, body) = app.get("/api/v1/engine/health").await;
    assert_eq!(s.as_u16(), 200, "an empty shop has nothing to learn from: {body}");
    for (u, p) in [("a", "p1"), ("a", "p2"), ("b", "p1"), ("b", "p3")] {
        let (s, body) = app
            .post("/api/v1/activity/track", &json!({"userId": u, "activityType": "view", "productId": p}))
            .await;
        assert_eq!(s.as_u16(), 201, "{body}");
    }
    let (s, body) = app.get("/api/v1/engine/health").await;
    assert_eq!(s.as_u16(), 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(body["checks"][0]["detail"].as_str().unwrap().contains("no model trained yet"), "{body}");
    assert_eq!(app.get("/health").await.0.as_u16(), 503, "the whole system says so too");
    let finished = common::train_and_wait(&app, json!({"tolerance": 1.0})).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let (s, body) = app.get("/api/v1/engine/health").await;
    assert_eq!(s.as_u16(), 200, "{body}");
    let (s, body) = app.get("/api/v1/training/health").await;
    assert_eq!(s.as_u16(), 200, "{body}");
    assert!(body["checks"][0]["detail"].as_str().unwrap().contains("running: none"), "{body}");
}

#[tokio::test]
async fn a_candidate_too_small_to_validate_waits_for_a_forced_activation() {
    let app = start().await;
    let finished = common::train_and_wait(&app, json!({"minValidationUsers": 1000})).await;
    assert_eq!(finished["status"], "rejected", "{finished}");
    let version = finished["modelVersion"].as_str().unwrap().to_string();
    let (_, model) = app.get(&format!("/api/v1/training/models/{version}")).await;
    assert_eq!(model["model"]["status"], "unvalidated", "{model}");
    assert!(model["model"]["statusReason"].as_str().unwrap().contains("minValidationUsers"), "{model}");
    let (_, status) = app.get("/api/v1/training/status").await;
    assert_eq!(status["activeModelVersion"], "v1", "not promoted silently");
    let activate = format!("/api/v1/training/models/{version}/activate");
    common::assert_error(&app.post(&activate, &json!({})).await, 409, "conflict");
    let (s, body) = app.post(&format!("{activate}?force=true"), &json!({})).await;
    assert_eq!(s.as_u16(), 200, "{body}");
    let (_, list) = app.get("/api/v1/recommendations/recommendations/user-1").await;
    assert_eq!(list["modelVersion"], version.as_str());
}

#[tokio::test]
async fn key_and_listing_errors_are_clear() {
    let app = start().await;
    common::assert_error(
        &app.post("/api/v1/keys", &json!({"scope": "root"})).await,
        400,
        "validation_failed",
    );
    common::assert_error(
        &app.post("/api/v1/keys", &json!({"scope": "read", "name": "  "})).await,
        400,
        "validation_failed",
    );
    let (s, created) = app.post("/api/v1/keys", &json!({"scope": "admin"})).await;
    assert_eq!(s.as_u16(), 201, "{created}");
    let (key, id) = (created["key"].as_str().unwrap(), created["apiKey"]["id"].as_str().unwrap());
    let with_key = |method: &str, uri: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let own = app.raw(with_key("DELETE", &format!("/api/v1/keys/{id}"))).await;
    common::assert_error(&own, 409, "conflict");
    assert!(own.1["message"].as_str().unwrap().contains("cannot revoke itself"), "{}", own.1);
    common::assert_error(&app.raw(with_key("DELETE", "/api/v1/keys/key_nope")).await, 404, "not_found");
    let deep = app.raw(with_key("GET", "/api/v1/catalog/products?offset=1000001")).await;
    common::assert_error(&deep, 400, "validation_failed");
    assert_eq!(deep.1["details"]["errors"][0]["field"], "offset", "{}", deep.1);
    let wide = app.raw(with_key("GET", "/api/v1/users?limit=0")).await;
    assert_eq!(wide.1["details"]["errors"][0]["field"], "limit", "{}", wide.1);
}

/// Every operation's request body and path parameters carry an example, and the examples,
/// sent in an order a shop would send them, are accepted.
#[tokio::test]
async fn every_example_in_the_spec_is_accepted() {
    let app = start().await;
    let (_, spec) = app.get("/openapi.json").await;
    let mut bodies = std::collections::BTreeMap::new();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_string();
            if let Some(content) = op.pointer("/requestBody/content/application~1json") {
                let example = content.get("example").unwrap_or_else(|| panic!("{id} has no body example"));
                bodies.insert(id.clone(), example.clone());
            }
            let mut concrete = path.clone();
            for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                let example = p["example"].as_str().unwrap_or_else(|| panic!("{id}: {name} has no example"));
                concrete = concrete.replace(&format!("{{{name}}}"), example);
            }
            operations.push((id, method.to_uppercase(), concrete));
        }
    }
    // Products first, then people and what they do, then the admin side; the key last (from
    // then on every call would need it).
    let order = [
        "catalog_create",
        "catalog_bulk",
        "catalog_put",
        "users_upsert",
        "activity_track",
        "activity_track_batch",
        "recommendations_session",
        "recommendations_refresh",
        "catalog_patch",
        "experiments_create",
        "training_train",
        "gorse_items_insert",
        "gorse_items_insert_many",
        "gorse_items_patch",
        "gorse_users_insert",
        "gorse_users_insert_many",
        "gorse_users_patch",
        "gorse_feedback_insert",
        "gorse_feedback_upsert",
        "gorse_lists_session",
        "gorse_lists_session_in",
        "keys_create",
    ];
    assert_eq!(
        bodies.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        order.iter().map(|s| s.to_string()).collect(),
        "an operation with a body is missing from this test's order"
    );
    for id in order {
        let (_, method, path) = operations.iter().find(|(op, _, _)| op == id).unwrap();
        let (status, answer) = app.send(method, path, &bodies[id]).await;
        assert!(status.is_success(), "{id}: {method} {path} with its example answered {status}: {answer}");
    }
}
