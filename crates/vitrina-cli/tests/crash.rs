//! An acknowledged event survives SIGKILL right after the acknowledgement, exactly once, on
//! every backend.

mod common;

use common::Backing;
use serde_json::{json, Value};

vitrina_store::on_every_backend!(acknowledged_events_survive_sigkill_exactly_once);

async fn acknowledged_events_survive_sigkill_exactly_once(backing: Backing) {
    let c = reqwest::Client::new();
    let server = backing.start();
    let mut acked = Vec::new();

    // Single events from concurrent clients, so group commit batches them.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (c, url) = (c.clone(), server.url("/api/v1/activity/track"));
        tasks.push(tokio::spawn(async move {
            let id = format!("crash-{i}");
            let res = c.post(url).json(&json!({"userId": format!("crash-user-{}", i % 7), "activityType": "view", "productId": "product-1", "eventId": id})).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 201);
            id
        }));
    }
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    // And one batch, acknowledged last, right before the kill.
    let batch: Vec<Value> = (0..500)
        .map(|i| json!({"userId": format!("crash-user-{}", i % 7), "activityType": "click", "productId": "product-2", "eventId": format!("crash-b-{i}")}))
        .collect();
    let res = c
        .post(server.url("/api/v1/activity/track/batch"))
        .json(&json!({"events": batch}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    acked.extend((0..500).map(|i| format!("crash-b-{i}")));
    server.kill_hard();

    let server = backing.start();
    let mut found = Vec::new();
    for u in 0..7 {
        let url = server.url(&format!("/api/v1/recommendations/activity/crash-user-{u}?limit=1000"));
        let body: Value = c.get(url).send().await.unwrap().json().await.unwrap();
        found.extend(
            body["activities"].as_array().unwrap().iter().map(|a| a["eventId"].as_str().unwrap().to_string()),
        );
    }
    let total = found.len();
    found.sort();
    found.dedup();
    assert_eq!(total, found.len(), "an event was stored twice");
    acked.sort();
    assert_eq!(found, acked, "every acknowledged event is there");

    // Re-sending after the crash is recognised as a duplicate.
    let res = c.post(server.url("/api/v1/activity/track")).json(&json!({"userId": "crash-user-0", "activityType": "view", "productId": "product-1", "eventId": "crash-0"})).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
}
