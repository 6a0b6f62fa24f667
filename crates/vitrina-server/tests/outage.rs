//! PostgreSQL out of reach: requests that need the store answer 503 `unavailable` in the error
//! shape (never a 500, nothing half-stored), and the server carries on by itself once the
//! database is back.

mod common;

use common::{assert_error, Backing};
use serde_json::json;

#[tokio::test]
async fn while_the_database_refuses_connections_requests_get_503_and_then_recover() {
    let Some(backing) = Backing::postgres().await else { return };
    let Backing::Postgres(db) = &backing else { unreachable!() };
    let (name, admin) = (db.name().to_string(), db.admin().await);
    let app = backing.start().await;
    let event = json!({"userId": "outage-1", "activityType": "view", "productId": "product-1", "eventId": "during-outage"});
    assert_eq!(app.get("/api/v1/catalog/products/product-1").await.0.as_u16(), 200);

    // The database stops taking connections and every open one is ended (as a restart does).
    admin.batch_execute(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")).await.unwrap();
    let Backing::Postgres(db) = app.backing() else { unreachable!() };
    db.terminate_connections().await;
    for _ in 0..2 {
        assert_error(&app.get("/api/v1/catalog/products/product-1").await, 503, "unavailable");
        assert_error(&app.post("/api/v1/activity/track", &event).await, 503, "unavailable");
    }

    admin.batch_execute(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")).await.unwrap();
    let (status, body) = common::eventually("the store to answer again", || async {
        let res = app.post("/api/v1/activity/track", &event).await;
        (res.0.as_u16() != 503).then_some(res)
    })
    .await;
    assert_eq!(status.as_u16(), 201, "the refused event was not stored: {body}");
    let (_, history) = app.get("/api/v1/recommendations/activity/outage-1").await;
    assert_eq!(history["count"], 1, "{history}");
}
