//! `vitrina migrate`'s copy: a data directory into PostgreSQL and back, everything readable
//! alike through every port afterwards, sequence numbers kept (new events continue above the
//! old high-water mark), a second run copying only what is new, and the refusals.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::event;
use serde_json::json;
use vitrina_core::{
    demo,
    keys::{ApiKey, Scope},
    ports::{Artefact, AttributedOutcome, Impression, ImpressionItem, ModelRecord, ModelStatus},
    ActivityType, ProductId, User, UserId,
};
use vitrina_store::{
    migrate::{migrate, MigrateError, TableCheck, Watch, TABLES},
    testing::TestDatabase,
    Location, OpenOptions, Opened, Store,
};

#[derive(Default)]
struct Counted {
    tables: Vec<String>,
    copied: u64,
}

impl Watch for Counted {
    fn table(&mut self, name: &str, _rows: u64, _present: u64) {
        self.tables.push(name.into());
    }
    fn copied(&mut self, n: u64) {
        self.copied += n;
    }
    fn verifying(&mut self, _name: &str) {}
}

async fn open(at: &Location) -> Opened {
    Opened::open(at, OpenOptions { impression_retention: None, ..OpenOptions::default() }).await.unwrap()
}

fn visitor(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// A shop with something in every table; the last events belong to a visitor who is then
/// erased, so the log's high-water mark is above its highest remaining sequence number.
async fn fill(s: &Arc<dyn Store>) {
    let now = Utc::now();
    s.upsert_products(demo::products(now - Duration::days(2))).await.unwrap();
    s.upsert_user(User {
        id: visitor("u1"),
        name: Some("Анна".into()),
        attributes: json!({"tier": "gold"}).as_object().cloned().unwrap(),
        created_at: now,
    })
    .await
    .unwrap();
    let mut batch: Vec<_> = (0..25)
        .map(|i| event(&format!("e{i}"), &format!("u{}", i % 4), "view", &format!("product-{}", 1 + i % 9)))
        .collect();
    batch.push(event("gone-1", "gone", "purchase", "product-2"));
    s.append(batch).await.unwrap();
    s.append(vec![event("gone-2", "gone", "view", "product-3")]).await.unwrap();
    s.put_artefact("models/v1.vtb", (0..=255u8).cycle().take(70_000).collect()).await.unwrap();
    s.save_model(ModelRecord {
        version: "v1".into(),
        algorithm: "covisitation".into(),
        parameters: json!({"timeDecay": 0.5}),
        metrics: json!({"ndcg": 0.25}),
        status: ModelStatus::Validated,
        status_reason: None,
        data_range: (1, 26),
        artefact: Some(Artefact { path: "models/v1.vtb".into(), checksum: "x".into(), size_bytes: 70_000 }),
        created_at: now,
        finished_at: Some(now),
        activated_at: None,
        previous_version: None,
    })
    .await
    .unwrap();
    s.activate_model("v1", now, false).await.unwrap();
    s.save_experiment("exp-1", json!({"id": "exp-1", "status": "running"})).await.unwrap();
    s.insert_key(ApiKey {
        id: "key_1".into(),
        name: Some("ci".into()),
        scope: Scope::Admin,
        hash: "h1".into(),
        prefix: "vk_1".into(),
        created_at: now,
        revoked_at: None,
    })
    .await
    .unwrap();
    for (i, who) in ["u1", "u2", "u1"].into_iter().enumerate() {
        s.record_impression(Impression {
            recommendation_id: format!("r{i}"),
            user_id: visitor(who),
            model_version: "v1".into(),
            variant: "default".into(),
            created_at: now - Duration::minutes(10 - i as i64),
            items: vec![ImpressionItem {
                product_id: ProductId::parse("product-2").unwrap(),
                source: "trending".into(),
                position: 0,
            }],
        });
    }
    s.record_outcome(AttributedOutcome {
        event_id: "e1".into(),
        recommendation_id: "r0".into(),
        user_id: visitor("u1"),
        variant: "default".into(),
        product_id: ProductId::parse("product-2").unwrap(),
        source: "trending".into(),
        position: 0,
        kind: ActivityType::Purchase,
        value: 12.5,
        created_at: now,
    });
    s.flush_impressions().await;
    s.delete_user(&visitor("gone")).await.unwrap();
}

/// Everything the ports answer, as text to compare.
async fn snapshot(s: &Arc<dyn Store>) -> Vec<String> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut out = vec![
        format!("{:?}", s.page(0, 10_000).await.unwrap()),
        format!("{:?}", s.stats().await.unwrap()),
        format!("{:?}", s.products(Default::default()).await.unwrap()),
        format!("{:?}", s.users(0, 1000).await.unwrap()),
        format!("{:?}", s.models().await.unwrap()),
        format!("{:?}", s.experiments().await.unwrap()),
        format!("{:?}", s.keys().await.unwrap()),
        format!("{:?}", s.get_artefact("models/v1.vtb").await.unwrap()),
    ];
    for who in ["u1", "u2", "u3"] {
        out.push(format!("{:?}", s.impressions_for_user(&visitor(who), epoch).await.unwrap()));
        out.push(format!("{:?}", s.outcomes_for_user(&visitor(who)).await.unwrap()));
    }
    for product in ["product-1", "product-2"] {
        out.push(format!("{:?}", s.exposure(&ProductId::parse(product).unwrap(), epoch).await.unwrap()));
    }
    out
}

fn all_match(checks: &[TableCheck]) {
    assert!(checks.iter().all(TableCheck::matches), "{checks:#?}");
    let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "events",
            "users",
            "products",
            "models",
            "experiments",
            "api_keys",
            "impressions",
            "outcomes",
            "product_exposure",
            "artefacts"
        ]
    );
}

fn copied(checks: &[TableCheck], table: &str) -> u64 {
    checks.iter().find(|c| c.name == table).unwrap().copied
}

/// Copies `from` into `to`, then compares the two through the ports.
async fn copy_and_compare(from: &Location, to: &Location) -> Vec<TableCheck> {
    let source = open(from).await;
    let expected = snapshot(&source.store()).await;
    source.close().await;
    drop(source);

    let mut watch = Counted::default();
    let checks = migrate(from, to, &mut watch).await.unwrap();
    all_match(&checks);
    assert_eq!(watch.tables.len(), 9);

    let target = open(to).await;
    assert_eq!(snapshot(&target.store()).await, expected);
    target.close().await;
    checks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_copies_into_postgres_and_back_and_a_second_run_adds_only_what_is_new() {
    let a = tempfile::tempdir().unwrap();
    let from = Location::Dir(a.path().to_path_buf());
    let source = open(&from).await;
    fill(&source.store()).await;
    source.close().await;
    drop(source);

    let Some(db) = TestDatabase::create().await else {
        // Without a PostgreSQL server: directory to directory, the same code path per end.
        let b = tempfile::tempdir().unwrap();
        copy_and_compare(&from, &Location::Dir(b.path().join("copy"))).await;
        return;
    };
    let pg = Location::Postgres(db.url());
    let first = copy_and_compare(&from, &pg).await;
    assert_eq!(
        (copied(&first, "events"), copied(&first, "impressions"), copied(&first, "artefacts")),
        (25, 3, 1)
    );
    let head = db.client().await.query_one("SELECT seq, events FROM log_head", &[]).await.unwrap();
    assert_eq!((head.get::<_, i64>(0), head.get::<_, i64>(1)), (27, 25), "the erased 26 and 27 stay used");

    // Resumed (or repeated) after the source moved on: only the new rows are copied.
    let source = open(&from).await;
    source
        .store()
        .append(vec![event("late-1", "u9", "like", "product-4"), event("late-2", "u9", "view", "product-5")])
        .await
        .unwrap();
    source.close().await;
    drop(source);
    let second = copy_and_compare(&from, &pg).await;
    let only_new: Vec<_> =
        second.iter().map(|c| (c.name.as_str(), c.copied)).filter(|(_, n)| *n > 0).collect();
    assert_eq!(only_new, [("events", 2), ("users", 1)], "u9 is registered by its first event");

    // New events on the copy continue above everything the source ever numbered: 1–25 kept,
    // 26–27 erased, 28–29 copied late.
    let target = open(&pg).await;
    assert_eq!(target.store().stats().await.unwrap().max_seq, 29);
    let out = target.store().append(vec![event("on-pg", "tail", "view", "product-1")]).await.unwrap();
    assert!(matches!(&out[0], vitrina_core::ports::AppendOutcome::Stored(s) if s.seq == 30), "{out:?}");
    target.store().delete_user(&visitor("tail")).await.unwrap();
    target.close().await;
    drop(target);

    // And back into a new data directory, where numbering goes on after the erased 30.
    let back_dir = tempfile::tempdir().unwrap();
    let back = Location::Dir(back_dir.path().join("data"));
    copy_and_compare(&pg, &back).await;
    let copy = open(&back).await;
    let out = copy.store().append(vec![event("on-dir", "u1", "view", "product-1")]).await.unwrap();
    assert!(matches!(&out[0], vitrina_core::ports::AppendOutcome::Stored(s) if s.seq == 31), "{out:?}");
    copy.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_lists_of_its_own_or_the_source_itself_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (from, to) = (Location::Dir(a.path().to_path_buf()), Location::Dir(b.path().to_path_buf()));
    for at in [&from, &to] {
        let opened = open(at).await;
        fill(&opened.store()).await;
        opened.close().await;
    }
    let err = migrate(&from, &to, &mut Counted::default()).await.unwrap_err();
    assert!(matches!(err, MigrateError::SeedConflict), "{err}");
    let err = migrate(&from, &from.clone(), &mut Counted::default()).await.unwrap_err();
    assert!(matches!(err, MigrateError::SameStore), "{err}");
}

/// A name with a NUL character (stored before validation refused it) cannot go to
/// PostgreSQL: the copy stops naming the table, column and row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_postgres_cannot_hold_is_named() {
    let a = tempfile::tempdir().unwrap();
    let from = Location::Dir(a.path().to_path_buf());
    let source = open(&from).await;
    source
        .store()
        .upsert_user(User {
            id: visitor("nul-user"),
            name: Some("a\0b".into()),
            attributes: Default::default(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    source.close().await;
    drop(source);
    let Some(db) = TestDatabase::create().await else { return };
    let err = migrate(&from, &Location::Postgres(db.url()), &mut Counted::default()).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Nul { table: "users", column: "name", .. }), "{err}");
    assert!(err.to_string().contains("\"nul-user\""), "{err}");
}

/// The copy names every column of every table of both backends: a schema change that adds a
/// table or column without teaching `migrate` fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copied_columns_are_every_column_of_both_schemas() {
    let expected: Vec<(String, Vec<String>)> = TABLES
        .iter()
        .map(|t| (t.name.to_string(), t.columns.iter().map(|(c, _)| c.to_string()).collect()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    open(&Location::Dir(dir.path().to_path_buf())).await.close().await;
    let mut sqlite = Vec::new();
    for file in ["vitrina.db", "impressions.db"] {
        let conn = rusqlite::Connection::open(dir.path().join(file)).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('sqlite_sequence', 'meta')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for table in tables {
            let columns: Vec<String> = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            sqlite.push((table, columns));
        }
    }
    let order = |mut v: Vec<(String, Vec<String>)>| {
        v.sort();
        v
    };
    assert_eq!(order(sqlite), order(expected.clone()), "SQLite");

    let Some(db) = TestDatabase::create().await else { return };
    open(&Location::Postgres(db.url())).await.close().await;
    // Not copied: the log head and meta are carried by `migrate` itself, artefacts as files,
    // and `catalogue_revision` follows `products` (a trigger counts the copy's writes).
    let rows = db
        .client()
        .await
        .query(
            "SELECT table_name::text, array_agg(column_name::text ORDER BY ordinal_position)
             FROM information_schema.columns
             WHERE table_schema = current_schema()
               AND table_name NOT IN ('log_head', 'meta', 'artefacts', 'vitrina_schema_history',
                                      'catalogue_revision')
             GROUP BY table_name",
            &[],
        )
        .await
        .unwrap();
    let pg = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, Vec<String>>(1))).collect();
    assert_eq!(order(pg), order(expected), "PostgreSQL");
}
