//! The `ModelRegistry`, `ArtefactStore`, `Locks`, `ExperimentStore` and `KeyStore` contracts,
//! run against every backend.

mod common;

use chrono::{Duration, Utc};
use common::Fixture;
use serde_json::json;
use vitrina_core::{
    keys::{ApiKey, Scope},
    ports::{Artefact, ModelRecord, ModelStatus, StoreError},
};

conformance!(
    activating_a_model_archives_the_previous_one_and_rollbacks_walk_back,
    experiments_are_replaced_by_id_and_listed_oldest_first,
    keys_are_unique_by_id_and_hash_and_revoked_once,
    artefacts_are_replaced_whole_and_deleted_by_path,
    a_lock_has_one_holder_until_it_is_released,
);

fn record(v: &str, minutes: i64) -> ModelRecord {
    ModelRecord {
        version: v.into(),
        algorithm: "covisitation".into(),
        parameters: json!({"timeDecay": 0.9}),
        metrics: json!({"users": 3}),
        status: ModelStatus::Validated,
        status_reason: None,
        data_range: (1, 10),
        artefact: Some(Artefact {
            path: format!("models/{v}.vtb"),
            checksum: "crc32:0badf00d".into(),
            size_bytes: 1234,
        }),
        created_at: Utc::now() + Duration::minutes(minutes),
        finished_at: Some(Utc::now()),
        activated_at: None,
        previous_version: None,
    }
}

async fn activating_a_model_archives_the_previous_one_and_rollbacks_walk_back(f: Fixture) {
    let s = &f.store;
    s.save_model(record("v1", 0)).await.unwrap();
    s.save_model(record("v2", 1)).await.unwrap();
    s.save_model(record("v3", 2)).await.unwrap();
    s.activate_model("v1", Utc::now(), false).await.unwrap();
    s.activate_model("v2", Utc::now(), false).await.unwrap();
    let models = s.models().await.unwrap();
    let status: Vec<_> = models.iter().map(|m| (m.version.as_str(), m.status)).collect();
    assert_eq!(
        status,
        [("v3", ModelStatus::Validated), ("v2", ModelStatus::Active), ("v1", ModelStatus::Archived)]
    );
    assert_eq!(models[2].parameters, json!({"timeDecay": 0.9}));
    assert_eq!(
        models[2].artefact.as_ref().map(|a| (a.path.as_str(), a.size_bytes)),
        Some(("models/v1.vtb", 1234))
    );
    assert_eq!(
        (models[1].previous_version.as_deref(), models[2].previous_version.as_deref()),
        (Some("v1"), None)
    );
    assert!(models[1].activated_at.is_some());
    assert!(s.activate_model("v9", Utc::now(), false).await.is_err());
    // Activating the active model again keeps the model it rolls back to.
    s.activate_model("v2", Utc::now(), false).await.unwrap();
    assert_eq!(s.models().await.unwrap()[1].previous_version.as_deref(), Some("v1"));

    // v3 replaces v2; rolling back twice walks v3 → v2 → v1 without rewriting the history.
    s.activate_model("v3", Utc::now(), false).await.unwrap();
    s.activate_model("v2", Utc::now(), true).await.unwrap();
    let models = s.models().await.unwrap();
    assert_eq!(models[1].previous_version.as_deref(), Some("v1"));
    assert_eq!(models[0].previous_version.as_deref(), Some("v2"));
    assert_eq!(models[1].status, ModelStatus::Active);

    // Saving again updates the record in place.
    let mut failed = record("v3", 2);
    failed.status = ModelStatus::Rejected;
    failed.status_reason = Some("worse than v2".into());
    failed.artefact = None;
    s.save_model(failed).await.unwrap();
    let models = s.models().await.unwrap();
    assert_eq!(models.len(), 3);
    assert_eq!(
        (models[0].status, models[0].status_reason.as_deref()),
        (ModelStatus::Rejected, Some("worse than v2"))
    );
    assert!(models[0].artefact.is_none());
}

async fn artefacts_are_replaced_whole_and_deleted_by_path(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.get_artefact("checkpoints/online.vck").await.unwrap(), None);
    // Larger than a PostgreSQL chunk, so it is stored in several rows.
    let big: Vec<u8> = (0..=255u8).cycle().take(9 << 20).collect();
    s.put_artefact("checkpoints/online.vck", big.clone()).await.unwrap();
    s.put_artefact("models/v1.vtb", b"bundle".to_vec()).await.unwrap();
    assert!(s.get_artefact("checkpoints/online.vck").await.unwrap() == Some(big));
    s.put_artefact("checkpoints/online.vck", b"smaller".to_vec()).await.unwrap();
    assert_eq!(s.get_artefact("checkpoints/online.vck").await.unwrap().as_deref(), Some(&b"smaller"[..]));
    s.delete_artefact("checkpoints/online.vck").await.unwrap();
    assert_eq!(s.get_artefact("checkpoints/online.vck").await.unwrap(), None);
    s.delete_artefact("checkpoints/online.vck").await.expect("deleting what is not there is no error");
    assert_eq!(
        s.get_artefact("models/v1.vtb").await.unwrap().as_deref(),
        Some(&b"bundle"[..]),
        "other paths are untouched"
    );
}

async fn a_lock_has_one_holder_until_it_is_released(f: Fixture) {
    let s = &f.store;
    let held = s.try_lock("training").await.unwrap().expect("a free lock is taken");
    assert!(s.try_lock("training").await.unwrap().is_none(), "a held lock is not taken twice");
    let other = s.try_lock("experiments").await.unwrap().expect("another name is another lock");
    held.release().await;
    let again = s.try_lock("training").await.unwrap().expect("free again once released");
    drop(again);
    drop(other);
}

async fn experiments_are_replaced_by_id_and_listed_oldest_first(f: Fixture) {
    let s = &f.store;
    s.save_experiment("b", json!({"id": "b", "status": "draft"})).await.unwrap();
    s.save_experiment("a", json!({"id": "a", "status": "draft"})).await.unwrap();
    s.save_experiment("b", json!({"id": "b", "status": "running", "variants": [1, 2]})).await.unwrap();
    let docs = s.experiments().await.unwrap();
    assert_eq!(docs.len(), 2);
    let b = docs.iter().find(|d| d["id"] == "b").unwrap();
    assert_eq!(b["status"], "running");
    assert_eq!(b["variants"], json!([1, 2]));
}

async fn keys_are_unique_by_id_and_hash_and_revoked_once(f: Fixture) {
    let s = &f.store;
    let key = |id: &str, hash: &str, minutes: i64| ApiKey {
        id: id.into(),
        name: Some(format!("key {id}")),
        scope: Scope::Read,
        hash: hash.into(),
        prefix: "vk_abc".into(),
        created_at: Utc::now() + Duration::minutes(minutes),
        revoked_at: None,
    };
    s.insert_key(key("k2", "h2", 1)).await.unwrap();
    s.insert_key(key("k1", "h1", 0)).await.unwrap();
    for dup in [key("k1", "h9", 2), key("k9", "h1", 2)] {
        let err = s.insert_key(dup).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
    let keys = s.keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1", "k2"], "oldest first");
    assert_eq!(
        (keys[0].scope, keys[0].name.as_deref(), keys[0].hash.as_str()),
        (Scope::Read, Some("key k1"), "h1")
    );

    let first = Utc::now() - Duration::minutes(5);
    assert!(s.revoke_key("k1", first).await.unwrap());
    assert!(s.revoke_key("k1", Utc::now()).await.unwrap(), "revoking twice is fine");
    assert!(!s.revoke_key("nope", Utc::now()).await.unwrap());
    let keys = s.keys().await.unwrap();
    assert_eq!(
        keys[0].revoked_at.map(|t| t.timestamp_millis()),
        Some(first.timestamp_millis()),
        "the first time stays"
    );
    assert!(keys[1].revoked_at.is_none());
}
