//! The PostgreSQL store when its connections die under load: what was acknowledged stays,
//! what was not is stored once or not at all, and the store recovers by itself.

mod common;

use std::collections::HashSet;

use common::{event, Fixture};
use vitrina_core::ports::{AppendOutcome, StoreError};
use vitrina_store::postgres::{ConnectError, PgOptions, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_during_tracking_lose_no_acknowledged_event_and_the_store_recovers() {
    let Some(f) = Fixture::postgres().await else { return };
    let store = f.store.clone();
    let (kill_at, total) = (300, 900);
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        let mut failures = 0;
        for i in 0..total {
            let id = format!("e{i:05}");
            match store.append(vec![event(&id, &format!("u{}", i % 13), "view", "p1")]).await {
                Ok(out) => {
                    assert!(matches!(out[0], AppendOutcome::Stored(_)), "{id} is new");
                    acked_tx.send((i, id)).unwrap();
                }
                Err(StoreError::Unavailable(_)) => failures += 1,
                Err(e) => panic!("a lost connection is 'unavailable', not {e}"),
            }
        }
        failures
    });
    // Kill the connections once a third of the events are acknowledged.
    let mut acked = HashSet::new();
    while let Some((_, id)) = acked_rx.recv().await {
        acked.insert(id);
        if acked.len() == kill_at {
            assert!(f.terminate_connections().await > 0, "the store had connections to kill");
        }
    }
    let failures = writer.await.unwrap();
    let stored: Vec<String> =
        f.store.page(0, 10_000).await.unwrap().into_iter().map(|e| e.event.event_id.to_string()).collect();
    let unique: HashSet<&String> = stored.iter().collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(stored.len() <= total && stored.len() >= acked.len());
    assert!(failures <= 16, "the store came back by itself ({failures} appends failed)");
    assert!(acked.len() > kill_at, "appends succeed again after the kill");
    assert_eq!(
        f.store.stats().await.unwrap().events,
        stored.len() as u64,
        "the head's count matches the log"
    );
}

/// The deterministic case of the above: an append waits inside its transaction (another
/// connection holds the log head's lock) when its connection is killed. The caller hears
/// "unavailable", nothing of it is stored, and the next append works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_connection_dies_inside_its_transaction_is_unavailable_and_stores_nothing() {
    let Some(f) = Fixture::postgres().await else { return };
    let holder = f.client().await;
    holder.batch_execute("BEGIN; SELECT seq FROM log_head FOR UPDATE").await.unwrap();
    let store = f.store.clone();
    let blocked = tokio::spawn(async move { store.append(vec![event("blocked", "u1", "view", "p1")]).await });
    let pid = f.lock_waiter().await;
    holder.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    let result = blocked.await.unwrap();
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    let out = f.store.append(vec![event("after", "u1", "view", "p1")]).await.unwrap();
    assert!(
        matches!(&out[0], AppendOutcome::Stored(s) if s.seq == 1),
        "nothing of the killed append: {out:?}"
    );
}

/// A large group (written by `COPY`) that meets a unique violation other than a stored
/// `eventId` — here a taken `seq`, as a head set back by hand would give — fails with an error
/// naming that constraint, not as a repeat, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_group_meeting_a_taken_seq_fails_naming_the_constraint() {
    let Some(f) = Fixture::postgres().await else { return };
    f.store.append(vec![event("first", "u1", "view", "p1")]).await.unwrap();
    f.client().await.batch_execute("UPDATE log_head SET seq = 0").await.unwrap();
    let batch: Vec<_> = (0..200).map(|i| event(&format!("big-{i}"), "u2", "view", "p1")).collect();
    let err = f.store.append(batch).await.unwrap_err();
    assert!(matches!(&err, StoreError::Backend(m) if m.contains("events_pkey")), "{err}");
    assert_eq!(f.store.stats().await.unwrap().events, 1, "nothing of the failed group");
}

/// A database migrated by a newer build is refused with both versions named, and nothing is
/// changed in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_newer_schema_is_refused_naming_both_versions() {
    let Some(f) = Fixture::postgres().await else { return };
    let known = vitrina_store::postgres::schema::latest();
    f.client()
        .await
        .execute(
            "INSERT INTO vitrina_schema_history (version, name, applied_on, checksum) VALUES ($1, 'from the future', '', '0')",
            &[&((known + 97) as i32)],
        )
        .await
        .unwrap();
    let err = match PgStore::connect_with(f.config(), PgOptions::default()).await {
        Ok(_) => panic!("a newer schema was accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, ConnectError::Schema { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("schema version {}", known + 97)), "{text}");
    assert!(text.contains(&format!("({known})")) && text.contains("upgrade vitrina"), "{text}");
}

/// No server at the address: a clear error naming where, without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_without_its_password() {
    let options = PgOptions { timeout: std::time::Duration::from_secs(5), ..PgOptions::default() };
    let err = match PgStore::connect("postgres://vitrina:s3cret@127.0.0.1:9/shop", options).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e,
    };
    assert!(matches!(err, ConnectError::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:9") && text.contains("shop"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// `users` rows deleted outside the store (an operator in psql, an older build during a
/// rolling upgrade): the triggers of V5 move `log_head.deletions`, so an appender that knew
/// the visitors registers them again; a deletion that takes no row and a retraction leave the
/// count alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_rows_deleted_by_hand_are_registered_again_and_only_real_deletions_count() {
    let Some(f) = Fixture::postgres().await else { return };
    let db = f.client().await;
    let deletions =
        || async { db.query_one("SELECT deletions FROM log_head", &[]).await.unwrap().get::<_, i64>(0) };
    let rows = || async { db.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get::<_, i64>(0) };
    f.store.append(vec![event("h1", "kept", "view", "p1"), event("h2", "gone", "view", "p1")]).await.unwrap();
    assert_eq!((deletions().await, rows().await), (0, 2));
    db.execute("DELETE FROM users WHERE id = 'nobody'", &[]).await.unwrap();
    let h1 = f.store.page(0, 10).await.unwrap()[0].seq;
    f.store.delete_events(&vitrina_core::UserId::parse("kept").unwrap(), &[h1]).await.unwrap();
    assert_eq!(deletions().await, 0, "no users row went");
    db.execute("DELETE FROM users WHERE id = 'gone'", &[]).await.unwrap();
    assert_eq!(deletions().await, 1);
    f.store.append(vec![event("h3", "gone", "view", "p2")]).await.unwrap();
    assert_eq!(rows().await, 2, "the visitor deleted by hand is registered again");
    db.execute("TRUNCATE users", &[]).await.unwrap();
    assert_eq!(deletions().await, 2);
    f.store.append(vec![event("h4", "kept", "view", "p2"), event("h5", "gone", "view", "p3")]).await.unwrap();
    assert_eq!(rows().await, 2, "both registered again after the truncation");
}
