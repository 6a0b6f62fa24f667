//! Hot swap under load: trainings complete and swap in while requests keep arriving.

mod common;

use common::Backing;

vitrina_store::on_every_backend!(ten_trainings_swap_in_under_continuous_requests_without_one_failed_request,);

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use axum::{body::Body, http::Request, Router};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Requests `uris` round-robin until `stop`; returns each answer's status and `modelVersion`.
async fn keep_requesting(router: Router, uris: Vec<String>, stop: Arc<AtomicBool>) -> Vec<(u16, String)> {
    let mut seen = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let req = Request::get(&uris[i % uris.len()]).body(Body::empty()).unwrap();
        i += 1;
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
            .unwrap_or(Value::Null);
        seen.push((status, body["modelVersion"].as_str().unwrap_or("").to_string()));
        tokio::task::yield_now().await;
    }
    seen
}

fn version_number(v: &str) -> u64 {
    v.trim_start_matches('v').parse().unwrap_or_else(|_| panic!("model version {v:?}"))
}

async fn ten_trainings_swap_in_under_continuous_requests_without_one_failed_request(backing: Backing) {
    let app = backing.start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = [
        vec!["/api/v1/recommendations/recommendations/user-1?limit=5".to_string()],
        (1..=5)
            .map(|u| format!("/api/v1/recommendations/recommendations/user-{u}?limit={}", u + 3))
            .collect(),
        vec![
            "/api/v1/recommendations/similar/product-1".to_string(),
            "/api/v1/recommendations/popular?window=week".to_string(),
        ],
    ]
    .into_iter()
    .map(|uris| tokio::spawn(keep_requesting(app.router.clone(), uris, stop.clone())))
    .collect();

    let mut promoted = Vec::new();
    for i in 0..10 {
        // Each job differs a little; tolerance 1 so the gate never holds one back.
        let config = json!({"timeDecay": 0.9 + 0.005 * i as f64, "tolerance": 1.0});
        let job = common::train_and_wait(&app, config).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let version = job["modelVersion"].as_str().unwrap().to_string();
        // The very next request names the new model, cached list or not.
        let (s, list) = app.get("/api/v1/recommendations/recommendations/user-1?limit=5").await;
        assert_eq!((s.as_u16(), list["modelVersion"].as_str().unwrap()), (200, version.as_str()), "{list}");
        promoted.push(version);
    }
    stop.store(true, Ordering::SeqCst);

    let expected: Vec<String> = (2..=11).map(|v| format!("v{v}")).collect();
    assert_eq!(promoted, expected);
    let mut all = Vec::new();
    for l in loops {
        let seen = l.await.unwrap();
        // Within one client's sequence of requests, versions only move forward.
        let numbers: Vec<u64> = seen.iter().map(|(_, v)| version_number(v)).collect();
        assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "versions went back: {numbers:?}");
        all.extend(seen);
    }
    let failed: Vec<_> = all.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        all.len(),
        &failed[..5.min(failed.len())]
    );
    assert!(all.len() >= 100, "only {} requests ran during the trainings", all.len());
    let distinct: std::collections::BTreeSet<u64> = all.iter().map(|(_, v)| version_number(v)).collect();
    assert!(distinct.len() >= 5, "responses moved through too few versions: {distinct:?}");
    eprintln!("{} requests during 10 swaps, versions seen: {distinct:?}", all.len());
}
