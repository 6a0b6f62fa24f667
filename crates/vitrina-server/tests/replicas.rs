//! Two servers on one PostgreSQL database: what one does, the other serves.

mod common;

use common::{Backing, TestApp};
use serde_json::json;

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
