//! The embedded store against the storage ports' contract.

use chrono::{Duration, Utc};
use serde_json::json;
use vitrina_core::{demo, ports::ImpressionItem, ActivityInput};

use super::*;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

fn event(id: &str, user: &str, kind: &str, product: &str) -> NewActivity {
    let input = ActivityInput {
        event_id: Some(id.into()),
        user_id: Some(user.into()),
        activity_type: Some(kind.into()),
        product_id: Some(product.into()),
        ..Default::default()
    };
    NewActivity::validate(input, Utc::now()).unwrap()
}

fn seqs(outcomes: &[AppendOutcome]) -> Vec<(bool, u64)> {
    outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Stored(s) => (true, s.seq),
            AppendOutcome::Duplicate { seq } => (false, *seq),
        })
        .collect()
}

#[tokio::test]
async fn data_survives_a_reopen_and_only_the_first_open_is_fresh() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.created());
        s.append(vec![event("e1", "u1", "view", "p1")]).await.unwrap();
        s.upsert_products(demo::products(Utc::now())).await.unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    assert!(!s.created());
    assert_eq!(s.stats().await.unwrap().events, 1);
    assert_eq!(s.products(ProductQuery { limit: 100, ..Default::default() }).await.unwrap().1, 10);
}

#[tokio::test]
async fn deleting_a_user_removes_their_events_and_impressions_only() {
    let (_dir, s) = store();
    s.append(vec![
        event("e1", "u1", "view", "p1"),
        event("e2", "u1", "view", "p2"),
        event("e3", "u2", "view", "p1"),
    ])
    .await
    .unwrap();
    let u1 = UserId::parse("u1").unwrap();
    s.record_impression(Impression {
        recommendation_id: "r1".into(),
        user_id: u1.clone(),
        model_version: "v1".into(),
        variant: "default".into(),
        created_at: Utc::now(),
        items: vec![ImpressionItem {
            product_id: ProductId::parse("p3").unwrap(),
            source: "popular".into(),
            position: 0,
        }],
    });
    s.flush().await.unwrap();
    let imps = s.impressions_for_user(&u1, Utc::now() - Duration::hours(1)).await.unwrap();
    assert_eq!(imps.len(), 1);
    assert_eq!(imps[0].items[0].source, "popular");

    let deleted = s.delete_user(&u1).await.unwrap().unwrap();
    assert_eq!((deleted.events, deleted.impressions), (2, 1));
    assert!(s.recent_for_user(&u1, 10).await.unwrap().is_empty());
    assert_eq!(s.stats().await.unwrap().events, 1);
    assert!(s.delete_user(&u1).await.unwrap().is_none());
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let (_dir, s) = store();
    s.close();
    assert!(matches!(s.append(vec![event("e1", "u", "view", "p")]).await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn a_failing_write_in_a_group_fails_alone() {
    let (_dir, s) = store();
    let products = demo::products(Utc::now());
    s.upsert_products(vec![products[0].clone()]).await.unwrap();
    // Queued together, these are committed as one group; the conflict must not sink the others.
    let (conflict, appended, inserted) = tokio::join!(
        s.insert_product(products[0].clone()),
        s.append(vec![event("g1", "u1", "view", "p1")]),
        s.insert_product(products[1].clone()),
    );
    assert!(matches!(conflict, Err(StoreError::Conflict(_))));
    assert_eq!(seqs(&appended.unwrap()), [(true, 1)]);
    inserted.unwrap();
    assert!(s.product(&products[1].id).await.unwrap().is_some());
    assert_eq!(s.stats().await.unwrap().events, 1);
}

#[tokio::test]
async fn the_rebuilt_index_recognises_duplicates_and_serves_user_history_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        s.append(vec![event("r1", "u1", "view", "p1"), event("r2", "u2", "view", "p2")]).await.unwrap();
        s.append(vec![event("r3", "u1", "like", "p3")]).await.unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    let out = s.append(vec![event("r2", "u2", "view", "p2"), event("r4", "u1", "view", "p4")]).await.unwrap();
    assert_eq!(seqs(&out), [(false, 2), (true, 4)]);
    let u1 = UserId::parse("u1").unwrap();
    let recent = s.recent_for_user(&u1, 2).await.unwrap();
    assert_eq!(recent.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 3]);
    assert_eq!(s.stats().await.unwrap(), LogStats { events: 4, max_seq: 4 });
}

#[tokio::test]
async fn a_second_process_cannot_open_a_data_directory_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let err = SqliteStore::open(dir.path()).err().expect("the directory is locked");
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains(&std::process::id().to_string()), "names the holder: {err}");
    first.close();
    drop(first);
    SqliteStore::open(dir.path()).expect("free again once the first store is gone");
}

#[tokio::test]
async fn impressions_persist_are_found_by_recommendation_id_and_by_user_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let imp = |id: &str, user: &str, minutes_ago: i64| Impression {
        recommendation_id: id.into(),
        user_id: UserId::parse(user).unwrap(),
        model_version: "v1".into(),
        variant: "b".into(),
        created_at: Utc::now() - Duration::minutes(minutes_ago),
        items: vec![ImpressionItem {
            product_id: ProductId::parse("p1").unwrap(),
            source: "trending".into(),
            position: 0,
        }],
    };
    {
        let s = SqliteStore::open(dir.path()).unwrap();
        s.record_impression(imp("r-old", "u1", 120));
        s.record_impression(imp("r-new", "u1", 1));
        s.record_impression(imp("r-other", "u2", 1));
        s.flush().await.unwrap();
    }
    let s = SqliteStore::open(dir.path()).unwrap();
    let (u1, u2) = (UserId::parse("u1").unwrap(), UserId::parse("u2").unwrap());
    let found = s.impression(&u1, "r-new").await.unwrap().unwrap();
    assert_eq!((found.user_id.as_str(), found.variant.as_str()), ("u1", "b"));
    assert!(s.impression(&u1, "r-missing").await.unwrap().is_none());
    assert!(s.impression(&u2, "r-new").await.unwrap().is_none(), "another visitor's list is not theirs");
    let recent = s
        .impressions_for_user(&UserId::parse("u1").unwrap(), Utc::now() - Duration::minutes(60))
        .await
        .unwrap();
    assert_eq!(recent.iter().map(|i| i.recommendation_id.as_str()).collect::<Vec<_>>(), ["r-new"]);
    let deleted = s.delete_user(&UserId::parse("u1").unwrap()).await.unwrap().unwrap();
    assert_eq!(deleted.impressions, 2);
    assert!(s.impression(&u1, "r-new").await.unwrap().is_none());
    assert!(s.impression(&u2, "r-other").await.unwrap().is_some());
}

#[tokio::test]
async fn visitor_ids_never_reach_the_impression_file_and_erasure_leaves_no_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "erase-me-7f3a";
    let who = UserId::parse(secret).unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let mut keep = event("e-keep", "keeper", "view", "p1");
    keep.metadata.insert("note".into(), json!("keeper's row"));
    s.append(vec![event("e-erase", secret, "view", "p1"), keep]).await.unwrap();
    s.upsert_user(User {
        id: who.clone(),
        name: Some("Erase Me".into()),
        attributes: Default::default(),
        created_at: Utc::now(),
    })
    .await
    .unwrap();
    s.record_impression(Impression {
        recommendation_id: "r-erase".into(),
        user_id: who.clone(),
        model_version: "v1".into(),
        variant: "default".into(),
        created_at: Utc::now(),
        items: vec![ImpressionItem {
            product_id: ProductId::parse("p1").unwrap(),
            source: "trending".into(),
            position: 0,
        }],
    });
    s.flush().await.unwrap();
    let files = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let holds = |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (name, bytes) in files(dir.path()) {
        if name.ends_with("impressions.db") || name.ends_with("impressions.db-wal") {
            assert!(!holds(&bytes, secret), "{name} holds the raw visitor id");
        }
    }
    assert_eq!(s.impressions_for_user(&who, Utc::now() - Duration::hours(1)).await.unwrap().len(), 1);

    let deleted = s.delete_user(&who).await.unwrap().unwrap();
    assert_eq!((deleted.events, deleted.impressions), (1, 1));
    // Once the call returned, no file of the data directory holds the id or the name.
    for (name, bytes) in files(dir.path()) {
        assert!(
            !holds(&bytes, secret) && !holds(&bytes, "Erase Me"),
            "{name} still holds the erased visitor"
        );
    }
    assert!(files(dir.path()).iter().any(|(_, b)| holds(b, "keeper's row")), "other visitors' data stays");
}

/// A store whose retention threads do not run (the tests prune by hand).
fn store_without_retention() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { impression_retention: None, event_retention: None };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    (dir, store)
}

#[tokio::test]
async fn lists_and_outcomes_past_the_retention_are_deleted() {
    let (_dir, s) = store_without_retention();
    let u = UserId::parse("u1").unwrap();
    for (id, days_ago) in [("r-40", 40), ("r-31", 31), ("r-29", 29), ("r-1", 1)] {
        s.record_impression(Impression {
            recommendation_id: id.into(),
            user_id: u.clone(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: Utc::now() - Duration::days(days_ago),
            items: vec![],
        });
        s.record_outcome(AttributedOutcome {
            event_id: format!("e-{id}"),
            recommendation_id: id.into(),
            user_id: u.clone(),
            variant: "default".into(),
            product_id: ProductId::parse("p1").unwrap(),
            source: "trending".into(),
            position: 0,
            kind: vitrina_core::ActivityType::Click,
            value: 0.0,
            created_at: Utc::now() - Duration::days(days_ago),
        });
    }
    s.flush().await.unwrap();
    let pruned = s.impressions.prune(Utc::now() - Duration::days(30)).await.unwrap();
    assert_eq!(pruned, 2);
    let left = s.impressions_for_user(&u, Utc::now() - Duration::days(365)).await.unwrap();
    assert_eq!(left.iter().map(|i| i.recommendation_id.as_str()).collect::<Vec<_>>(), ["r-29", "r-1"]);
    let (_, outcomes) = s.experiment_log("default").await.unwrap();
    assert_eq!(outcomes.iter().map(|o| o.event_id.as_str()).collect::<Vec<_>>(), ["e-r-29", "e-r-1"]);
    let mine = s.outcomes_for_user(&u).await.unwrap();
    assert_eq!(
        mine.iter().map(|o| (o.event_id.as_str(), o.user_id.as_str())).collect::<Vec<_>>(),
        [("e-r-29", "u1"), ("e-r-1", "u1")]
    );
    assert!(s.outcomes_for_user(&UserId::parse("u2").unwrap()).await.unwrap().is_empty());
    // The product's daily totals go with the days past the retention.
    let p1 = ProductId::parse("p1").unwrap();
    assert_eq!(s.exposure(&p1, Utc::now() - Duration::days(365)).await.unwrap().clicks, 2);
    assert_eq!(s.impressions.prune(Utc::now() - Duration::days(30)).await.unwrap(), 0);
}

#[tokio::test]
async fn pruning_more_lists_than_one_step_takes_goes_on_until_none_is_left() {
    let (_dir, s) = store_without_retention();
    let u = UserId::parse("u1").unwrap();
    let old = impressions::PRUNE_CHUNK as usize + 10;
    for i in 0..old + 5 {
        s.record_impression(Impression {
            recommendation_id: format!("r-{i}"),
            user_id: u.clone(),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: Utc::now() - Duration::days(if i < old { 40 } else { 1 }),
            items: vec![],
        });
        if i % 4096 == 0 {
            s.flush().await.unwrap(); // the queue holds 65,536; stay well inside it
        }
    }
    s.flush().await.unwrap();
    assert_eq!(s.impressions.prune(Utc::now() - Duration::days(30)).await.unwrap(), old as u64);
    let left = s.impressions_for_user(&u, Utc::now() - Duration::days(365)).await.unwrap();
    assert_eq!(left.len(), 5);
}

#[tokio::test]
async fn events_past_the_retention_leave_the_log_the_index_and_deduplication() {
    let (dir, s) = store();
    // More old events than one retention step takes, over a few visitors, then new ones.
    let old = writer::PRUNE_EVENTS_CHUNK + 50;
    let batch: Vec<NewActivity> =
        (0..old).map(|i| event(&format!("old-{i}"), &format!("u{}", i % 3), "view", "p1")).collect();
    s.append(batch).await.unwrap();
    s.append(vec![event("new-1", "u0", "click", "p2"), event("new-2", "u9", "view", "p3")]).await.unwrap();
    // The old ones were received 40 days ago (written straight into the file: the writer
    // stamps receipt with the present).
    let conn = rusqlite::Connection::open(dir.path().join("vitrina.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    let forty_days = Duration::days(40).num_milliseconds();
    conn.execute(
        "UPDATE events SET received_ms = received_ms - ?1 WHERE event_id LIKE 'old-%'",
        [forty_days],
    )
    .unwrap();
    drop(conn);

    let pruned = s.prune_events(Utc::now() - Duration::days(30)).await.unwrap();
    assert_eq!(pruned, old as u64, "every old event, over two steps");
    assert_eq!(s.stats().await.unwrap().events, 2);
    let u0: Vec<String> = s
        .recent_for_user(&UserId::parse("u0").unwrap(), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.event_id.to_string())
        .collect();
    assert_eq!(u0, ["new-1"]);
    assert!(s.recent_for_user(&UserId::parse("u1").unwrap(), 100).await.unwrap().is_empty());
    assert_eq!(s.index.read().unwrap().users(), 2, "visitors with nothing left leave the index");
    // A pruned eventId is new again; a kept one is still a repeat.
    let again =
        s.append(vec![event("old-1", "u1", "view", "p1"), event("new-2", "u9", "view", "p3")]).await.unwrap();
    assert!(
        matches!(again[0], AppendOutcome::Stored(_)) && matches!(again[1], AppendOutcome::Duplicate { .. })
    );
    assert_eq!(s.prune_events(Utc::now() - Duration::days(30)).await.unwrap(), 0, "nothing left to prune");
    // The index rebuilt from the file agrees.
    s.close();
    drop(s);
    let s = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(s.stats().await.unwrap().events, 3);
    assert_eq!(s.index.read().unwrap().events(), 3);
}

#[tokio::test]
async fn health_reports_a_stopped_writer_and_a_stuck_impression_writer() {
    let (_dir, s) = store();
    assert_eq!(EventLog::health(&s), Ok(()));
    assert_eq!(ImpressionStore::health(&s), Ok(()));
    // Lists waiting, no batch finished for longer than the bound: stuck.
    s.impressions.progress.queued();
    let later = std::time::Instant::now() + crate::served::STUCK_AFTER + std::time::Duration::from_secs(1);
    let stuck = s.impressions.health(later).unwrap_err();
    assert!(stuck.contains("finished nothing") && stuck.contains("1 lists waiting"), "{stuck}");
    s.impressions.progress.handled(1, std::time::Instant::now());
    assert!(s.impressions.health(later - std::time::Duration::from_secs(2)).is_ok(), "progress clears it");
    // A writer that is gone: every write would fail, and health says so.
    s.close();
    assert!(EventLog::health(&s).unwrap_err().contains("closed"));
    assert!(ImpressionStore::health(&s).is_err());
}
