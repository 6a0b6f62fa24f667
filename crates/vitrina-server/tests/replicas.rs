//! Two servers on one PostgreSQL database: what one does, the other serves.

mod common;

use common::{Backing, TestApp};
use serde_json::json;
use vitrina_core::ports::ModelStatus;
use vitrina_server::training::TRAINING_LOCK;

async fn active(app: &TestApp) -> String {
    let (_, status) = app.get("/api/v1/training/status").await;
    status["activeModelVersion"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_model_activated_through_one_server_is_served_by_the_other() {
    let Some(backing) = Backing::postgres().await else { return };
    let a = backing.start().await;
    let b = a.beside().await;
    assert_eq!(active(&a).await, "v1", "the demo shop's start-up training");
    assert_eq!(active(&b).await, "v1");

    let job = common::train_and_wait(&a, json!({"tolerance": 1.0})).await;
    assert_eq!(job["modelVersion"], "v2", "{job}");
    common::eventually("the other server to serve v2", || async { (active(&b).await == "v2").then_some(()) })
        .await;
    let (_, list) = b.get("/api/v1/recommendations/recommendations/user-1?limit=3").await;
    assert_eq!(list["modelVersion"], "v2", "{list}");

    let (status, body) = a.post("/api/v1/training/rollback", &json!({})).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    common::eventually("the other server to roll back to v1", || async {
        (active(&b).await == "v1").then_some(())
    })
    .await;
}

#[tokio::test]
async fn one_training_job_runs_at_a_time_across_servers_and_a_new_server_leaves_it_alone() {
    let Some(backing) = Backing::postgres().await else { return };
    let a = backing.start().await;
    let ports = &a.embedded.state.ports;
    // Another server's job, as it looks from here: its lock held, its model `training`.
    let held = ports.locks.try_lock(TRAINING_LOCK).await.unwrap().expect("the lock is free");
    let mut record = ports.registry.models().await.unwrap()[0].clone();
    record.version = "v9".into();
    record.status = ModelStatus::Training;
    ports.registry.save_model(record).await.unwrap();

    let b = a.beside().await;
    let status = |app: &TestApp| {
        let registry = app.embedded.state.ports.registry.clone();
        async move { registry.models().await.unwrap().into_iter().find(|m| m.version == "v9").unwrap().status }
    };
    assert_eq!(status(&b).await, ModelStatus::Training, "a job another server runs is not marked failed");

    let (code, queued) = b.post("/api/v1/training/train", &json!({"config": {"tolerance": 1.0}})).await;
    assert_eq!(code.as_u16(), 202, "{queued}");
    common::eventually("the job to wait for the other server's", || async {
        let (_, s) = b.get("/api/v1/training/status").await;
        (s["current"]["phase"] == "waiting").then_some(())
    })
    .await;
    assert_eq!(ports.registry.models().await.unwrap().len(), 2, "no model registered while it waits");
    held.release().await;
    common::eventually("the job to run once the lock is free", || async {
        let (_, s) = b.get("/api/v1/training/status").await;
        (s["lastFinished"]["jobId"] == queued["job"]["jobId"]).then(|| s["lastFinished"].clone())
    })
    .await;

    // With no one training, a new server marks what was left `training` as failed.
    let _c = a.beside().await;
    assert_eq!(status(&a).await, ModelStatus::Failed);
}
