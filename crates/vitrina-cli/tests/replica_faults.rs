//! Processes of a deployment of roles killed with SIGKILL while they work: an api replica
//! under load, and the training process in the middle of a job.

mod common;

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

use common::deployment::*;
use serde_json::{json, Value};

/// Checkpoints every second, so the replica killed has one to restart from.
const CHECKPOINT_EVERY_SECOND: (&str, &str) = ("VITRINA__STORAGE__CHECKPOINT_INTERVAL_SECONDS", "1");

/// 50 events of 500 visitors (views, clicks, carts, purchases over the demo's products).
fn batch(b: usize) -> Value {
    let kinds = ["view", "view", "click", "add_to_cart", "purchase"];
    let events: Vec<Value> = (0..50)
        .map(|e| {
            let n = b * 50 + e;
            json!({"userId": format!("load-{}", n % 500), "activityType": kinds[n % kinds.len()],
                   "productId": format!("product-{}", 1 + (n * 7 + b) % 10)})
        })
        .collect();
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_replica_killed_under_load_restarts_from_a_checkpoint_and_converges() {
    let Some(d) = deploy_with_api_env(vec![CHECKPOINT_EVERY_SECOND]).await else { return };
    let Deployment { training: _training, activity, api: [survivor, victim], urls } = d;
    let c = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));

    // Tracking through the activity process, and reads of the survivor, until told to stop.
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (c, url, stop, acked) =
            (c.clone(), activity.url("/api/v1/activity/track/batch"), stop.clone(), acked.clone());
        tokio::spawn(async move {
            for b in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let res = c.post(&url).json(&batch(b)).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
                acked.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let reader = {
        let (c, base, stop) = (c.clone(), survivor.url(""), stop.clone());
        tokio::spawn(async move {
            let (mut answered, mut failed) = (0usize, Vec::new());
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let url = format!("{base}{}", list_path(&format!("load-{}", n % 500)));
                match c.get(&url).send().await {
                    Ok(res) if res.status().as_u16() == 200 => answered += 1,
                    Ok(res) => {
                        failed.push(format!("{}: {}", res.status(), res.text().await.unwrap_or_default()))
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (answered, failed)
        })
    };
    let batches = |n: usize| {
        let acked = acked.clone();
        async move { (acked.load(Ordering::SeqCst) >= n).then_some(()) }
    };

    // The victim has written a checkpoint of the state it applied under load.
    common::eventually("the replica to write a checkpoint under load", || async {
        let seq = metric(&c, &victim, "vitrina_checkpoint_sequence").await;
        (seq > 0.0 && acked.load(Ordering::SeqCst) >= 10).then_some(())
    })
    .await;
    victim.kill_hard();
    let at_kill = acked.load(Ordering::SeqCst);
    common::eventually("tracking to go on without the victim", || batches(at_kill + 10)).await;
    let victim = urls.start_with_env("api", vec![CHECKPOINT_EVERY_SECOND]);
    let restored = metric(&c, &victim, "vitrina_checkpoint_restored_sequence").await;
    assert!(restored > 0.0, "the restarted replica restores a checkpoint and replays only the tail");
    common::eventually("tracking to go on while the victim catches up", || batches(at_kill + 20)).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let (answered, failed) = reader.await.unwrap();
    assert!(answered > 0 && failed.is_empty(), "the survivor answered {answered}; failed: {failed:?}");

    // Both replicas apply the whole log and then hold the same visitors' states.
    let head = log_head(&c, &activity).await;
    assert!(head >= restored as u64);
    for replica in [&survivor, &victim] {
        common::eventually("the replica to apply the whole log", || async {
            (applied(&c, replica).await >= head).then_some(())
        })
        .await;
    }
    let (a, b) = (engine_state(&c, &survivor).await, engine_state(&c, &victim).await);
    assert_eq!(a["appliedSequence"], head, "{a}");
    assert_eq!(b["appliedSequence"], head, "{b}");
    assert!(a["visitors"].as_u64().unwrap() >= 500, "{a}");
    assert_eq!((&a["visitors"], &a["events"], &a["digest"]), (&b["visitors"], &b["events"], &b["digest"]));
    drop((survivor, victim, activity, _training));
    drop(urls);
}

#[tokio::test]
async fn a_training_process_killed_mid_job_fails_the_job_and_the_next_job_reaches_every_replica() {
    let Some(d) = deploy().await else { return };
    let Deployment { training, activity, api, urls } = d;
    let c = reqwest::Client::new();
    common::eventually("the first model to be active", || async {
        let (_, models) = get(&c, &training, "/api/v1/training/models").await;
        (models["activeVersion"] == "v1").then_some(())
    })
    .await;
    common::load_views(&c, &activity).await;

    // A slow job (many factors and iterations), killed once it is past loading.
    let slow = json!({"config": {"als": {"factors": 128, "iterations": 100}, "tolerance": 1.0, "validationUsers": 0}});
    let (s, body) = send(&c, "POST", &training, "/api/v1/training/train", slow).await;
    assert_eq!(s, 202, "{body}");
    let version = common::eventually("the job to get to training", || async {
        let (_, status) = get(&c, &training, "/api/v1/training/status").await;
        assert!(
            status["lastFinished"]["modelVersion"] != "v2",
            "the slow job finished before the kill: {status}"
        );
        let current = &status["current"];
        (current["progress"].as_f64().unwrap_or(0.0) > 0.6).then(|| current["modelVersion"].clone())
    })
    .await;
    assert_eq!(version, "v2");
    training.kill_hard();

    // The training process started again finds the job interrupted and marks it failed (once
    // PostgreSQL has let go of the killed process's training lock).
    let training = urls.start("training");
    let models = common::eventually("the interrupted job to be marked failed", || async {
        let (_, models) = get(&c, &training, "/api/v1/training/models").await;
        let v2 = models["models"].as_array().unwrap().iter().find(|m| m["version"] == "v2").cloned();
        (v2.unwrap()["status"] == "failed").then_some(models)
    })
    .await;
    assert_eq!(models["activeVersion"], "v1", "{models}");
    let v2 = models["models"].as_array().unwrap().iter().find(|m| m["version"] == "v2").unwrap();
    assert!(v2["statusReason"].as_str().unwrap().contains("interrupted"), "{v2}");
    let (_, status) = get(&c, &training, "/api/v1/training/status").await;
    assert!(status["current"].is_null(), "{status}");

    // The next job runs, and every replica swaps to its model.
    let (s, body) =
        send(&c, "POST", &training, "/api/v1/training/train", json!({"config": {"tolerance": 1.0}})).await;
    assert_eq!(s, 202, "{body}");
    let job = body["job"]["jobId"].clone();
    let done = common::eventually("the next job to finish", || async {
        let (_, status) = get(&c, &training, "/api/v1/training/status").await;
        (status["lastFinished"]["jobId"] == job).then(|| status["lastFinished"].clone())
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let next = done["modelVersion"].clone();
    assert_ne!(next, "v2", "{done}");
    for replica in &api {
        common::eventually("the replica to serve the next model", || async {
            let (s, list) = get(&c, replica, &list_path("u7")).await;
            assert_eq!(s, 200, "{list}");
            (list["modelVersion"] == next).then_some(())
        })
        .await;
    }
    drop((api, activity, training));
    drop(urls);
}
