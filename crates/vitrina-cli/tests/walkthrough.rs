//! The seed walkthrough of the brief, against the real binary over HTTP, on every backend.

mod common;

use common::Backing;
use serde_json::{json, Value};

vitrina_store::on_every_backend!(
    seed_walkthrough,
    a_restart_keeps_data_and_the_active_model_and_loads_no_demo_twice
);

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let res = client.get(url).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = client.post(url).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn seed_walkthrough(backing: Backing) {
    let server = backing.start();
    let c = reqwest::Client::new();

    let (s, health) = get(&c, server.url("/health")).await;
    assert_eq!((s, health["message"].clone()), (200, json!("Recommendation System is healthy")));

    // Demo data answers the very first request.
    let (s, first) = get(&c, server.url("/api/v1/recommendations/recommendations/user-1?limit=5")).await;
    assert_eq!(s, 200);
    assert_eq!(first["success"], true);
    assert_eq!(first["userId"], "user-1");
    assert_eq!(first["fromCache"], false);
    let recs = first["recommendations"].as_array().unwrap();
    assert!(!recs.is_empty() && recs.len() <= 5);
    for r in recs {
        for key in ["productId", "score", "confidence", "reason", "product"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        for key in ["id", "name", "category", "price"] {
            assert!(r["product"][key].is_string(), "product.{key} in {r}");
        }
    }
    let generated = first["generatedAt"].as_str().unwrap();
    assert!(generated.ends_with('Z') && generated.len() == 24, "{generated}");

    // Track a view; the activity history shows it, newest first.
    let (s, tracked) = post(&c, server.url("/api/v1/activity/track"), json!({"userId": "user-1", "activityType": "view", "productId": "product-2", "metadata": {"source": "walkthrough"}})).await;
    assert_eq!(
        (s, tracked["success"].clone(), tracked["event"].clone()),
        (201, json!(true), json!("UserViewedProduct"))
    );
    let (_, history) = get(&c, server.url("/api/v1/recommendations/activity/user-1?limit=3")).await;
    assert_eq!(history["activities"][0]["productId"], "product-2");
    assert_eq!(history["activities"][0]["metadata"]["source"], "walkthrough");

    // Recommendations reflect it; asking again is served from the cache.
    let (_, recs) = get(&c, server.url("/api/v1/recommendations/recommendations/user-1?limit=5")).await;
    assert_eq!(recs["fromCache"], false);
    assert!(!recs["recommendations"].as_array().unwrap().iter().any(|r| r["productId"] == "product-2"));
    let (_, cached) = get(&c, server.url("/api/v1/recommendations/recommendations/user-1?limit=5")).await;
    assert_eq!(cached["fromCache"], true);

    // Add to cart, refresh, purchase.
    let target = recs["recommendations"][0]["productId"].clone();
    let rec_id = recs["recommendationId"].clone();
    let (s, cart) = post(&c, server.url("/api/v1/activity/track"), json!({"userId": "user-1", "activityType": "add_to_cart", "productId": target, "metadata": {"recommendationId": rec_id}})).await;
    assert_eq!((s, cart["event"].clone()), (201, json!("UserAddedToCart")));
    let (s, refreshed) =
        post(&c, server.url("/api/v1/recommendations/recommendations/user-1/refresh"), json!({"limit": 3}))
            .await;
    assert_eq!((s, refreshed["fromCache"].clone()), (200, json!(false)));
    assert!(refreshed["recommendations"].as_array().unwrap().len() <= 3);
    let (s, bought) = post(&c, server.url("/api/v1/activity/track"), json!({"userId": "user-1", "activityType": "purchase", "productId": target, "metadata": {"recommendationId": rec_id}})).await;
    assert_eq!((s, bought["event"].clone()), (201, json!("UserPurchasedProduct")));

    // Stats attribute the cart and the purchase to the list that was served.
    let (s, stats) = get(&c, server.url("/api/v1/recommendations/stats/user-1?days=7")).await;
    assert_eq!(s, 200);
    assert_eq!(stats["stats"]["conversions"], 1, "{stats}");
    assert_eq!(stats["stats"]["addToCarts"], 1);
    assert!(stats["stats"]["impressions"].as_u64().unwrap() >= 5);

    // Train; status and the registry report it. The demo's five visitors are too few for the
    // validation gate to tell two models apart (either may win by one list), so the
    // walkthrough turns it off: what it checks is the job's flow to the registry.
    let (s, train) = post(
        &c,
        server.url("/api/v1/training/train"),
        json!({"config": {"weights": {"view": 1.0, "add_to_cart": 2.5, "purchase": 5.0}, "timeDecay": 0.9, "tolerance": 1.0}}),
    )
    .await;
    assert_eq!((s, train["success"].clone()), (202, json!(true)));
    let active = common::eventually("the training job to finish", || async {
        let (_, status) = get(&c, server.url("/api/v1/training/status")).await;
        (status["lastFinished"]["jobId"] == train["job"]["jobId"]).then(|| {
            assert_eq!(status["lastFinished"]["status"], "succeeded", "{status}");
            status["activeModelVersion"].clone()
        })
    })
    .await;
    assert_eq!(active, "v2");
    let (_, models) = get(&c, server.url("/api/v1/training/models")).await;
    assert_eq!(models["activeVersion"], "v2");

    assert!(server.stop().success(), "SIGTERM ends the server cleanly");
}

async fn a_restart_keeps_data_and_the_active_model_and_loads_no_demo_twice(backing: Backing) {
    let c = reqwest::Client::new();
    let server = backing.start();
    let refreshes = || async {
        let text = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("vitrina_trending_refreshes_total "))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    post(
        &c,
        server.url("/api/v1/activity/track"),
        json!({"userId": "keep", "activityType": "like", "productId": "product-1"}),
    )
    .await;
    post(&c, server.url("/api/v1/training/train"), json!({})).await;
    common::eventually("v2 to become active", || async {
        (get(&c, server.url("/api/v1/training/status")).await.1["activeModelVersion"] == "v2").then_some(())
    })
    .await;
    // Live popularity is re-ranked about every second: wait until a re-ranking that began
    // after the last event has finished (two more than now), so the list includes it.
    let seen = refreshes().await;
    common::eventually("live popularity to take in the last event", || async {
        (refreshes().await >= seen + 2).then_some(())
    })
    .await;
    let (_, before) =
        post(&c, server.url("/api/v1/recommendations/recommendations/user-2/refresh"), json!({"limit": 5}))
            .await;
    assert!(server.stop().success());

    let server = backing.start();
    let metrics = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let restored = metrics.lines().find_map(|l| l.strip_prefix("vitrina_checkpoint_restored_sequence "));
    assert!(
        restored.is_some_and(|seq| seq.trim().parse::<f64>().unwrap() > 0.0),
        "the online state is restored from the checkpoint the stop wrote: {restored:?}"
    );
    let (_, history) = get(&c, server.url("/api/v1/recommendations/activity/keep")).await;
    assert_eq!(history["count"], 1);
    let (_, products) = get(&c, server.url("/api/v1/catalog/products")).await;
    assert_eq!(products["total"], 10, "the demo catalogue is not loaded again");
    let (_, after) = get(&c, server.url("/api/v1/recommendations/recommendations/user-2?limit=5")).await;
    assert_eq!(after["modelVersion"], "v2");
    let ids = |v: &Value| {
        v["recommendations"].as_array().unwrap().iter().map(|r| r["productId"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&before), ids(&after), "the restored model gives the same list");
}

/// The server runs with transparent huge pages off (with them its RSS was higher under steady
/// traffic; docs/BENCHMARKS.md, "Soak"), unless `MIMALLOC_ALLOW_THP` hands the choice back to
/// the allocator.
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_with_transparent_huge_pages_off_unless_the_allocator_is_told_otherwise() {
    let thp_enabled = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"));
        line.expect("THP_enabled in /proc/PID/status (Linux 5.0 or later)").trim().to_string()
    };
    // A parent with them off (a service manager's setting) would hide a server that never
    // turns them off.
    assert_eq!(thp_enabled(std::process::id()), "1", "the test runs with transparent huge pages allowed");
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path());
    assert_eq!(thp_enabled(server.child.id()), "0");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let options = common::Options { env: vec![("MIMALLOC_ALLOW_THP", "1")], ..Default::default() };
    let server = common::Server::start_with(dir.path(), options);
    assert_eq!(thp_enabled(server.child.id()), "1");
}
