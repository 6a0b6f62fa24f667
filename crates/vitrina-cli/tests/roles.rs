//! A deployment of roles, each its own `vitrina serve` process over one PostgreSQL database,
//! NATS JetStream and Redis: one training, one activity and two api processes. Writes go to
//! the activity process, reads alternate between the api replicas.

mod common;

use common::{deployment::*, Backing, Cuttable, Options, Server};
use serde_json::{json, Value};
use vitrina_store::testing::{service_url, NATS_URL, REDIS_URL};

#[tokio::test]
async fn roles_split_the_api_and_replicas_serve_what_the_activity_process_stored() {
    let Some(d) = deploy().await else { return };
    let c = reqwest::Client::new();

    // Each process is healthy for what it plays, and sends the rest where it is served.
    for server in [&d.training, &d.activity, &d.api[0], &d.api[1]] {
        let (s, health) = get(&c, server, "/health").await;
        assert_eq!(s, 200, "{health}");
    }
    let (s, wrong) =
        send(&c, "POST", &d.api[0], "/api/v1/activity/track", json!({"userId": "u", "activityType": "view"}))
            .await;
    assert_eq!(
        (s, wrong["error"].as_str(), wrong["details"]["servedBy"].as_str()),
        (421, Some("wrong_role"), Some("activity"))
    );
    let (s, wrong) = get(&c, &d.activity, "/api/v1/recommendations/recommendations/user-1").await;
    assert_eq!((s, wrong["details"]["servedBy"].as_str()), (421, Some("api")), "{wrong}");
    let (s, wrong) = send(&c, "POST", &d.api[1], "/api/v1/training/train", json!({})).await;
    assert_eq!((s, wrong["details"]["servedBy"].as_str()), (421, Some("training")), "{wrong}");

    // Read-your-writes across replicas: a view acknowledged by the activity process is in
    // the very next list of either replica (a visitor new to both: a stale list would
    // explain nothing by it). Products with neighbours in the demo shop's model.
    let products = ["product-2", "product-3", "product-4", "product-5", "product-7", "product-8"];
    let mut stale = Vec::new();
    for i in 0..1000 {
        let (visitor, product) = (format!("ryw-{i}"), products[i % products.len()]);
        let event = json!({"userId": visitor, "activityType": "view", "productId": product});
        let (s, body) = send(&c, "POST", &d.activity, "/api/v1/activity/track", event).await;
        assert_eq!(s, 201, "{body}");
        let (s, list) =
            get(&c, &d.api[i % 2], &format!("/api/v1/recommendations/recommendations/{visitor}?limit=10"))
                .await;
        assert_eq!(s, 200, "{list}");
        if !explained_by(&list, product) {
            stale.push((i, list));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of 1000 lists did not reflect the acknowledged view; first: {:?}",
        stale.len(),
        stale[0]
    );

    // The replicas share their lists through Redis: the one api[0] computed is api[1]'s
    // from cache, and the visitor's next event drops it for both.
    // (A model swap or catalogue change between the two reads would drop the list: then again.)
    let path = "/api/v1/recommendations/recommendations/shared-1?limit=10";
    common::eventually("a list one replica computed to be the other's from cache", || async {
        let computed = get(&c, &d.api[0], path).await.1;
        let cached = get(&c, &d.api[1], path).await.1;
        (cached["fromCache"] == true)
            .then(|| assert_eq!(cached["recommendations"], computed["recommendations"]))
    })
    .await;
    let event = json!({"userId": "shared-1", "activityType": "view", "productId": "product-7"});
    assert_eq!(send(&c, "POST", &d.activity, "/api/v1/activity/track", event).await.0, 201);
    let fresh = get(&c, &d.api[1], path).await.1;
    assert!(fresh["fromCache"] == false && explained_by(&fresh, "product-7"), "{fresh}");
    // The activity process dropped the cached list before it acknowledged; api[0] serves the
    // new one too.
    assert!(explained_by(&get(&c, &d.api[0], path).await.1, "product-7"));
    let again = get(&c, &d.api[1], path).await.1;
    assert!(again["fromCache"] == true && explained_by(&again, "product-7"), "{again}");

    // A product hidden through the activity process leaves both replicas' lists.
    let (s, body) =
        send(&c, "PATCH", &d.activity, "/api/v1/catalog/products/product-4", json!({"hidden": true})).await;
    assert_eq!(s, 200, "{body}");
    for api in &d.api {
        common::eventually("the hidden product to leave the replica's lists", || async {
            let (_, list) = get(&c, api, "/api/v1/recommendations/recommendations/ryw-2?limit=10").await;
            let shown =
                list["recommendations"].as_array().unwrap().iter().any(|r| r["productId"] == "product-4");
            (!shown).then_some(())
        })
        .await;
    }

    // A model trained by the training process is served by both replicas.
    let (s, queued) =
        send(&c, "POST", &d.training, "/api/v1/training/train", json!({"config": {"tolerance": 1.0}})).await;
    assert_eq!(s, 202, "{queued}");
    let job = queued["job"]["jobId"].clone();
    let finished = common::eventually("the training job to finish", || async {
        let (_, status) = get(&c, &d.training, "/api/v1/training/status").await;
        (status["lastFinished"]["jobId"] == job).then(|| status["lastFinished"].clone())
    })
    .await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let version = finished["modelVersion"].as_str().unwrap().to_string();
    for api in &d.api {
        common::eventually("the replica to serve the new model", || async {
            let (_, list) = get(&c, api, "/api/v1/recommendations/recommendations/ryw-3?limit=5").await;
            (list["modelVersion"] == version.as_str()).then_some(())
        })
        .await;
    }

    // An experiment started by the training process assigns every visitor the same variant
    // on both replicas.
    let experiment = json!({"name": "split", "goal": "ctr",
        "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 5.0}}}]});
    let (s, created) = send(&c, "POST", &d.training, "/api/v1/experiments", experiment).await;
    assert_eq!(s, 201, "{created}");
    let id = created["experiment"]["id"].as_str().unwrap().to_string();
    let (s, started) =
        send(&c, "POST", &d.training, &format!("/api/v1/experiments/{id}/start"), json!({})).await;
    assert_eq!(s, 200, "{started}");
    for api in &d.api {
        // Its lists, not its experiment listing (read from the shared store), say that the
        // replica runs the experiment.
        common::eventually("the replica to run the experiment", || async {
            let (_, e) = get(&c, api, &format!("/api/v1/experiments/{id}")).await;
            let (_, list) = get(&c, api, "/api/v1/recommendations/recommendations/exp-0?limit=3").await;
            let serving = list["variant"].as_str().is_some_and(|v| v.starts_with(&id));
            (e["experiment"]["status"] == "running" && serving).then_some(())
        })
        .await;
    }
    for v in 0..40 {
        let path = format!("/api/v1/recommendations/recommendations/exp-{v}?limit=3");
        let (a, b) = (get(&c, &d.api[0], &path).await.1, get(&c, &d.api[1], &path).await.1);
        assert!(a["variant"].as_str().unwrap().starts_with(&id), "{a}");
        assert_eq!(a["variant"], b["variant"], "visitor exp-{v}");
    }

    // A replica killed under load: the other answers every request; the killed one comes
    // back (checkpoint and log) to the same applied sequence and the same lists.
    let Deployment { training: _training, activity, api: [first, second], urls } = d;
    second.kill_hard();
    for i in 0..50 {
        let (visitor, product) = (format!("after-kill-{i}"), products[i % products.len()]);
        let event = json!({"userId": visitor, "activityType": "view", "productId": product});
        assert_eq!(send(&c, "POST", &activity, "/api/v1/activity/track", event).await.0, 201);
        let (s, list) =
            get(&c, &first, &format!("/api/v1/recommendations/recommendations/{visitor}?limit=10")).await;
        assert!(s == 200 && explained_by(&list, product), "{list}");
    }
    let second = urls.start("api");
    let head = applied(&c, &first).await;
    common::eventually("the restarted replica to catch up", || async {
        (applied(&c, &second).await == head).then_some(())
    })
    .await;
    for i in [0, 17, 49] {
        let path = format!("/api/v1/recommendations/recommendations/after-kill-{i}?limit=10");
        assert!(
            explained_by(&get(&c, &second, &path).await.1, products[i % products.len()]),
            "after-kill-{i}"
        );
    }
    let d = Deployment { training: _training, activity, api: [first, second], urls };

    // An erasure through the activity process empties both replicas' state of the visitor.
    let (s, erased) = send(&c, "DELETE", &d.activity, "/api/v1/users/ryw-0", json!({})).await;
    assert_eq!(s, 200, "{erased}");
    for api in &d.api {
        common::eventually("the replica to forget the erased visitor", || async {
            let (_, list) = get(&c, api, "/api/v1/recommendations/recommendations/ryw-0?limit=10").await;
            (!explained_by(&list, products[0])).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn an_activity_process_killed_mid_batch_loses_no_acknowledged_event_and_stores_none_twice() {
    let Some(d) = deploy().await else { return };
    let Deployment { training: _training, activity, api, urls } = d;
    let c = reqwest::Client::new();
    // Batches of 100 views, each of a visitor of its own, sent 4 at a time until the kill.
    let batch = |b: usize| {
        let events: Vec<Value> = (0..100)
            .map(|e| {
                json!({"eventId": format!("kill-{b}-{e}"), "userId": format!("kill-{b}"),
                             "activityType": "view", "productId": format!("product-{}", 2 + e % 3)})
            })
            .collect();
        json!({ "events": events })
    };
    let url = activity.url("/api/v1/activity/track/batch");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (c, url, acked) = (c.clone(), url.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for b in (worker..).step_by(4) {
                match c.post(&url).json(&batch(b)).send().await {
                    Ok(res) if res.status().as_u16() == 201 || res.status().as_u16() == 200 => {
                        acked.lock().unwrap().push(b)
                    }
                    _ => return b,
                }
            }
            unreachable!()
        }));
    }
    common::eventually("40 batches to be acknowledged", || async {
        (acked.lock().unwrap().len() >= 40).then_some(())
    })
    .await;
    activity.kill_hard();
    let mut sent = 0;
    for s in senders {
        sent = sent.max(s.await.unwrap());
    }
    let _activity = urls.start("activity");
    let acked: std::collections::HashSet<usize> = acked.lock().unwrap().iter().copied().collect();
    let head = log_head(&c, &_activity).await;
    for api in &api {
        common::eventually("the replica to apply the whole log", || async {
            (applied(&c, api).await >= head).then_some(())
        })
        .await;
    }
    for b in 0..=sent {
        let (s, history) =
            get(&c, &api[b % 2], &format!("/api/v1/recommendations/activity/kill-{b}?limit=1000")).await;
        let stored = if s == 200 { history["activities"].as_array().unwrap().len() } else { 0 };
        if acked.contains(&b) {
            assert_eq!(stored, 100, "acknowledged batch {b}: every event exactly once");
        } else {
            assert!(
                stored == 0 || stored == 100,
                "batch {b} in flight at the kill: all or nothing, found {stored}"
            );
        }
        if stored == 100 {
            for replica in &api {
                let path = format!("/api/v1/recommendations/recommendations/kill-{b}?limit=10");
                let list = get(&c, replica, &path).await.1;
                assert!(
                    ["product-2", "product-3", "product-4"].iter().any(|p| explained_by(&list, p)),
                    "batch {b} is in the replica's state: {list}"
                );
            }
        }
    }
    // The servers go before their database does.
    drop((api, _activity, _training));
    drop(urls);
}

/// `vitrina serve` with `args`, expected to refuse: its stderr.
fn refused(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VITRINA_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} must be refused: {stderr}");
    stderr
}

#[tokio::test]
async fn a_process_refuses_roles_and_services_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let why = refused(&["--data-dir", data, "--role", "api"]);
    assert!(why.contains("give --store postgres://"), "{why}");
    let why = refused(&["--data-dir", data, "--role", "api,cache"]);
    assert!(why.contains("unknown role 'cache'"), "{why}");
    for flag in ["--bus", "--cache"] {
        let why = refused(&["--data-dir", data, flag, "nats://127.0.0.1:4222"]);
        assert!(
            why.contains(&format!("{flag} connects the processes")) && why.contains("serves one process"),
            "{why}"
        );
    }
    let Some(Backing::Postgres(db)) = Backing::postgres().await else { return };
    let store = db.url();
    // Nothing listens on port 1: a process told to use a service does not start without it.
    let why = refused(&["--store", &store, "--role", "api", "--bus", "nats://127.0.0.1:1"]);
    assert!(why.contains("connecting to the bus (--bus)"), "{why}");
    let why = refused(&["--store", &store, "--role", "api", "--cache", "redis://127.0.0.1:1"]);
    assert!(why.contains("connecting to Redis at redis://127.0.0.1:1 (--cache)"), "{why}");
}

/// NATS, Redis and (for the activity process) PostgreSQL go away one after the other, each
/// behind a proxy the test cuts: no acknowledged event is lost, no request fails with a 500,
/// and each service is used again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rides_out_outages_of_nats_redis_and_postgresql() {
    let Some(Backing::Postgres(db)) = Backing::postgres().await else { return };
    let (Some(nats), Some(redis)) = (service_url(NATS_URL), service_url(REDIS_URL)) else { return };
    let (pg, bus, cache) =
        (Cuttable::to(&db.url()).await, Cuttable::to(&nats).await, Cuttable::to(&redis).await);
    let (bus_url, cache_url) = (bus.url(&nats), cache.url(&redis));
    let start = |role: &str, store: String| {
        let args = ["--role", role, "--bus", &bus_url, "--cache", &cache_url].map(String::from).to_vec();
        Server::start_with(&std::env::temp_dir(), Options { store: Some(store), args, ..Default::default() })
    };
    let training = start("training", db.url());
    let activity = start("activity", pg.url(&db.url()));
    let api = start("api", db.url());
    let c = reqwest::Client::new();
    let products = ["product-2", "product-3", "product-5", "product-7"];
    // The training process trains the first model after it started: its swap drops the
    // cached lists, so the test begins once the replica serves it.
    common::eventually("the replica to serve the first model", || async {
        (get(&c, &api, &list_path("warm-up")).await.1["modelVersion"] == "v1").then_some(())
    })
    .await;

    // NATS away: events are acknowledged, and the replica reads them from the log in time
    // for the visitor's next list (the watermark in Redis says it must).
    bus.cut().await;
    for i in 0..8 {
        let (visitor, product) = (format!("nats-{i}"), products[i % products.len()]);
        let (s, body) = view(&c, &activity, &visitor, product).await;
        assert_eq!(s, 201, "{body}");
        let (s, list) = get(&c, &api, &list_path(&visitor)).await;
        assert!(s == 200 && explained_by(&list, product), "{list}");
    }
    let heard = metric(&c, &api, "vitrina_bus_heard_total{kind=\"commits\"}").await;
    bus.restore();
    common::eventually("the replica to hear commits from the broker again", || async {
        assert_eq!(view(&c, &activity, "nats-back", "product-2").await.0, 201);
        (metric(&c, &api, "vitrina_bus_heard_total{kind=\"commits\"}").await > heard).then_some(())
    })
    .await;

    // A visitor whose list is cached in Redis…
    assert_eq!(view(&c, &activity, "redis-x", "product-2").await.0, 201);
    get(&c, &api, &list_path("redis-x")).await;
    let cached = get(&c, &api, &list_path("redis-x")).await.1;
    assert!(cached["fromCache"] == true && explained_by(&cached, "product-2"), "{cached}");

    // Redis away: events are acknowledged and lists served, computed (nothing is cached).
    cache.cut().await;
    // (…views another product meanwhile: the replica applies it, but the activity process
    // cannot drop the list.)
    assert_eq!(view(&c, &activity, "redis-x", "product-8").await.0, 201);
    common::eventually("the replica to apply the view while Redis is away", || async {
        let list = get(&c, &api, &list_path("redis-x")).await.1;
        assert_eq!(list["fromCache"], false, "{list}");
        explained_by(&list, "product-8").then_some(())
    })
    .await;
    for i in 0..4 {
        let (visitor, product) = (format!("redis-{i}"), products[i % products.len()]);
        let (s, body) = view(&c, &activity, &visitor, product).await;
        assert_eq!(s, 201, "{body}");
        for _ in 0..2 {
            let (s, list) = get(&c, &api, &list_path(&visitor)).await;
            assert_eq!((s, &list["fromCache"]), (200, &json!(false)), "{list}");
        }
    }
    cache.restore();
    common::eventually("lists to be shared through Redis again", || async {
        let (first, second) =
            (get(&c, &api, &list_path("redis-0")).await, get(&c, &api, &list_path("redis-0")).await);
        assert_eq!((first.0, second.0), (200, 200));
        (second.1["fromCache"] == true).then_some(())
    })
    .await;
    // Read-your-writes is promised again once both processes reach Redis (each warns and
    // counts a watermark it could not raise or read until then)…
    let failures = "vitrina_watermark_failures_total";
    common::eventually("both processes to reach Redis again", || async {
        let before = (metric(&c, &activity, failures).await, metric(&c, &api, failures).await);
        assert_eq!(view(&c, &activity, "redis-probe", "product-2").await.0, 201);
        assert_eq!(get(&c, &api, &list_path("redis-probe")).await.0, 200);
        let after = (metric(&c, &activity, failures).await, metric(&c, &api, failures).await);
        (before == after).then_some(())
    })
    .await;
    // …the list cached before Redis went away, older than the view made meanwhile, is not
    // served (the activity process lost that invalidation, so it dropped every list once
    // Redis was back)…
    let list = get(&c, &api, &list_path("redis-x")).await.1;
    assert!(explained_by(&list, "product-8"), "{list}");
    // …and a view now is in the visitor's next list.
    assert_eq!(view(&c, &activity, "redis-0", "product-8").await.0, 201);
    let list = get(&c, &api, &list_path("redis-0")).await.1;
    assert!(explained_by(&list, "product-8"), "{list}");

    // PostgreSQL away from the activity process: tracking answers 503 and stores nothing;
    // the replica keeps serving; the activity process stores again once it is back.
    pg.cut().await;
    let (s, body) = view(&c, &activity, "pg-0", "product-2").await;
    assert_eq!((s, body["error"].as_str()), (503, Some("unavailable")), "{body}");
    assert_eq!(get(&c, &api, &list_path("nats-0")).await.0, 200);
    pg.restore();
    common::eventually("the activity process to store events again", || async {
        let (s, body) = view(&c, &activity, "pg-1", "product-3").await;
        assert!(s == 201 || s == 503, "{body}");
        (s == 201).then_some(())
    })
    .await;
    let list = get(&c, &api, &list_path("pg-1")).await.1;
    assert!(explained_by(&list, "product-3"), "{list}");
    let (s, history) = get(&c, &api, "/api/v1/recommendations/activity/pg-0?limit=10").await;
    let stored = if s == 200 { history["activities"].as_array().unwrap().len() } else { 0 };
    assert_eq!(stored, 0, "the refused event is not stored: {history}");
    drop((api, activity, training));
}
