//! Training jobs and process death: a SIGKILL in the middle of a job leaves the registry
//! consistent and the active model serving; SIGTERM cancels a running job cleanly; and
//! `vitrina train` runs the same job on the data directory.

mod common;

use std::process::Command;

use common::Server;
use serde_json::{json, Value};

async fn get(c: &reqwest::Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// A slow job: many ALS factors and iterations.
fn slow_job() -> Value {
    json!({"config": {"als": {"factors": 128, "iterations": 100}, "tolerance": 1.0, "validationUsers": 0}})
}

/// Queues a slow job and waits until it is past loading.
async fn start_slow_job(c: &reqwest::Client, server: &Server) -> String {
    let res = c.post(server.url("/api/v1/training/train")).json(&slow_job()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 202);
    common::eventually("the job to get to training", || async {
        let status = get(c, server.url("/api/v1/training/status")).await;
        let current = &status["current"];
        (current["progress"].as_f64().unwrap_or(0.0) > 0.6)
            .then(|| current["modelVersion"].as_str().unwrap().to_string())
    })
    .await
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_job_leaves_the_registry_consistent_and_the_model_serving() {
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    let server = Server::start(dir.path());
    common::load_views(&c, &server).await;
    let version = start_slow_job(&c, &server).await;
    assert_eq!(version, "v2");
    let models = get(&c, server.url("/api/v1/training/models")).await;
    assert_eq!(models["models"][0]["status"], "training", "{models}");
    server.kill_hard();

    let server = Server::start(dir.path());
    let models = get(&c, server.url("/api/v1/training/models")).await;
    assert_eq!(models["activeVersion"], "v1", "{models}");
    let v2 = &models["models"][0];
    assert_eq!((v2["version"].as_str(), v2["status"].as_str()), (Some("v2"), Some("failed")), "{models}");
    assert!(v2["statusReason"].as_str().unwrap().contains("interrupted"), "{v2}");
    let status = get(&c, server.url("/api/v1/training/status")).await;
    assert!(status["current"].is_null(), "{status}");
    // u1 has seen all ten products; the demo's user-1 has not.
    let list = get(&c, server.url("/api/v1/recommendations/recommendations/user-1")).await;
    assert_eq!(list["modelVersion"], "v1");
    assert!(!list["recommendations"].as_array().unwrap().is_empty(), "{list}");

    // The next job gets a fresh version and is promoted.
    let res = c
        .post(server.url("/api/v1/training/train"))
        .json(&json!({"config": {"tolerance": 1.0}}))
        .send()
        .await
        .unwrap();
    let job = res.json::<Value>().await.unwrap()["job"]["jobId"].clone();
    let done = common::eventually("the next job to finish", || async {
        let status = get(&c, server.url("/api/v1/training/status")).await;
        (status["lastFinished"]["jobId"] == job).then(|| status["lastFinished"].clone())
    })
    .await;
    assert_eq!(
        (done["status"].as_str(), done["modelVersion"].as_str()),
        (Some("succeeded"), Some("v3")),
        "{done}"
    );
    server.stop();
}

#[tokio::test]
async fn sigterm_cancels_a_running_job_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    let server = Server::start(dir.path());
    common::load_views(&c, &server).await;
    start_slow_job(&c, &server).await;
    let started = std::time::Instant::now();
    let exit = server.stop();
    assert!(exit.success(), "{exit:?}");
    eprintln!("shutdown with a running job took {:?}", started.elapsed());

    let server = Server::start(dir.path());
    let models = get(&c, server.url("/api/v1/training/models")).await;
    let v2 = &models["models"][0];
    assert_eq!((v2["version"].as_str(), v2["status"].as_str()), (Some("v2"), Some("failed")), "{models}");
    assert_eq!(models["activeVersion"], "v1");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vitrina_train_runs_a_job_on_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    let server = Server::start(dir.path());
    common::load_views(&c, &server).await;
    server.stop();

    let train = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vitrina"))
            .arg("train")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("VITRINA_CONFIG")
            .output()
            .unwrap()
    };
    let out = train(&["--training", r#"{"timeDecay": 0.95, "tolerance": 1.0}"#]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("v2 trained, validated and promoted"), "{stdout}");
    // what became of the learned ranker is said, trained or not
    assert!(stdout.lines().any(|l| l.starts_with("learned ranker")), "{stdout}");

    let bad = train(&["--training", r#"{"timeDecay": 7}"#]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("timeDecay"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let server = Server::start(dir.path());
    let models = get(&c, server.url("/api/v1/training/models")).await;
    assert_eq!(models["activeVersion"], "v2", "{models}");
    assert_eq!(models["models"][0]["parameters"]["timeDecay"], 0.95);
    let list = get(&c, server.url("/api/v1/recommendations/recommendations/u1")).await;
    assert_eq!(list["modelVersion"], "v2");

    // The same command through the running server's API.
    let through = |training: &str| {
        Command::new(env!("CARGO_BIN_EXE_vitrina"))
            .args(["train", "--url", &server.base, "--training", training])
            .env_remove("VITRINA_CONFIG")
            .env_remove("VITRINA_DATA_DIR")
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| through(r#"{"tolerance": 1.0}"#));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("v3 trained, validated and promoted"), "{stdout}");
    let refused = tokio::task::block_in_place(|| through(r#"{"timeDecay": 7}"#));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("refused the job (400") && stderr.contains("timeDecay"), "{stderr}");
    assert_eq!(get(&c, server.url("/api/v1/training/models")).await["activeVersion"], "v3");
    server.stop();
}
