//! `vitrina import` on small files the test writes itself.

use std::process::Command;

use vitrina_core::ports::{CatalogStore, EventLog, ProductQuery};
use vitrina_store::SqliteStore;

fn import(
    data_dir: &std::path::Path,
    format: &str,
    file: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["import", "--format", format, "--data-dir"])
        .arg(data_dir)
        .arg(file)
        .args(extra)
        .env_remove("VITRINA_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn movielens_ratings_become_idempotent_events_and_products() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("u.data");
    std::fs::write(&data, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n")
        .unwrap();
    let items = dir.path().join("u.item");
    std::fs::write(&items, "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
        .unwrap();
    let store_dir = dir.path().join("store");

    let out = import(&store_dir, "movielens", &data, &["--items", items.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("imported 3 events (0 duplicates skipped) and 2 products"));
    let again = import(&store_dir, "movielens", &data, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("imported 0 events (3 duplicates skipped)"));

    let store = SqliteStore::open(&store_dir).unwrap();
    assert_eq!(store.stats().await.unwrap().events, 3);
    let (products, _) = store.products(ProductQuery { limit: 10, ..Default::default() }).await.unwrap();
    let kolya = products.iter().find(|p| p.id.as_str() == "242").unwrap();
    assert_eq!((kolya.name.as_str(), kolya.category.as_str()), ("Kolya (1996)", "Comedy"));
    // A product is as old as its earliest rating, wherever that row is in the file.
    assert_eq!(kolya.created_at.timestamp(), 881_250_949);
    let untitled = products.iter().find(|p| p.id.as_str() == "302").unwrap();
    assert_eq!(untitled.created_at.timestamp(), 881_250_950, "rows: 891717742, then 881250950");
    let events = store.page(0, 10).await.unwrap();
    assert_eq!(events[0].event.event_id.as_str(), "ml-196-242");
    assert_eq!(events[0].event.rating_value(), Some(3.0));
    assert_eq!(events[0].event.timestamp.timestamp(), 881_250_949);
}

#[tokio::test]
async fn jsonl_events_and_csv_products_import_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let products = dir.path().join("p.csv");
    std::fs::write(&products, "id,name,category,price,inStock\nsku-1,\"Лампа, настольная\",Дом,1999.90,true\nsku-2,Стол,Дом,15000,false\n").unwrap();
    let out = import(&store_dir, "products-csv", &products, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let events = dir.path().join("e.jsonl");
    std::fs::write(
        &events,
        "{\"userId\":\"a\",\"activityType\":\"view\",\"productId\":\"sku-1\",\"eventId\":\"x1\"}\n\n{\"userId\":\"a\",\"activityType\":\"teleport\",\"productId\":\"sku-1\"}\n",
    )
    .unwrap();
    let out = import(&store_dir, "events-jsonl", &events, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3") && stderr.contains("teleport"), "{stderr}");

    let store = SqliteStore::open(&store_dir).unwrap();
    let lamp = store.product(&vitrina_core::ProductId::parse("sku-1").unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (lamp.name.as_str(), lamp.price.as_str(), lamp.in_stock),
        ("Лампа, настольная", "1999.90", true)
    );
    let desk = store.product(&vitrina_core::ProductId::parse("sku-2").unwrap()).await.unwrap().unwrap();
    assert!(!desk.in_stock);
    assert_eq!(store.stats().await.unwrap().events, 1, "lines before the bad one are stored");
}

#[tokio::test]
async fn events_csv_carries_metadata_and_quoted_fields_and_a_busy_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let events = dir.path().join("e.csv");
    std::fs::write(
        &events,
        "userId,activityType,productId,timestamp,eventId,metadata\n\
         u1,rating,p1,1700000000000,r1,\"{\"\"value\"\": 4.5}\"\n\
         u1,search,,1700000001000,s1,\"{\"\"query\"\": \"\"лампа, синяя\"\"}\"\n\
         u2,view,p2,,v1,\n",
    )
    .unwrap();
    let out = import(&store_dir, "events-csv", &events, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    {
        let store = SqliteStore::open(&store_dir).unwrap();
        let stored = store.page(0, 10).await.unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[0].event.rating_value(), Some(4.5));
        assert_eq!(stored[1].event.metadata["query"], "лампа, синяя");

        // While this store holds the directory, an import into it is refused clearly.
        let busy = import(&store_dir, "events-csv", &events, &[]);
        assert!(!busy.status.success());
        let stderr = String::from_utf8_lossy(&busy.stderr);
        assert!(stderr.contains("in use by another vitrina process"), "{stderr}");
    }
}

/// A Gorse deployment's export, as `GET /api/bulk/{users,items,feedback}` writes it.
fn gorse_export(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("users.jsonl"),
        "{\"UserId\":\"u1\",\"Labels\":[\"vip\"],\"Subscribe\":null,\"Comment\":\"first\"}\n{\"UserId\":\"u2\",\"Labels\":null,\"Subscribe\":null,\"Comment\":\"\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("items.jsonl"),
        "{\"ItemId\":\"i1\",\"IsHidden\":false,\"Categories\":[\"books\",\"new\"],\"Timestamp\":\"2022-08-07T00:26:46Z\",\"Labels\":[\"x\"],\"Comment\":\"A book\"}\n\
         {\"ItemId\":\"i2\",\"IsHidden\":true,\"Categories\":[],\"Timestamp\":\"0001-01-01T00:00:00Z\",\"Labels\":null,\"Comment\":\"\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("feedback.jsonl"),
        "{\"FeedbackType\":\"star\",\"UserId\":\"u1\",\"ItemId\":\"i1\",\"Value\":4,\"Timestamp\":\"2022-09-01T10:00:00Z\",\"Comment\":\"\"}\n\
         {\"FeedbackType\":\"read\",\"UserId\":\"u2\",\"ItemId\":\"i3\",\"Value\":0,\"Timestamp\":\"2022-09-02T10:00:00Z\",\"Comment\":\"gone\"}\n\
         {\"FeedbackType\":\"like\",\"UserId\":\"u2\",\"ItemId\":\"i2\",\"Value\":0,\"Timestamp\":\"0001-01-01T00:00:00Z\",\"Comment\":\"\"}\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_gorse_export_imports_users_items_and_feedback_once() {
    use vitrina_core::ports::UserStore;
    use vitrina_server::gorse::model::{feedback_of, item_of, user_of};

    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("gorse");
    gorse_export(&export);
    let store_dir = dir.path().join("store");
    let before = vitrina_server::gorse::model::format_time(chrono::Utc::now() - chrono::Duration::seconds(1));
    let out = import(&store_dir, "gorse", &export, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // i3 is only named by feedback: created bare, as Gorse's auto_insert_item does.
    assert!(stdout.contains("imported 3 events (0 duplicates skipped) and 3 products, 2 users"), "{stdout}");
    // Undated feedback (Gorse's zero time) too: importing again stores nothing twice.
    let again = import(&store_dir, "gorse", &export.join("feedback.jsonl"), &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("imported 0 events (3 duplicates skipped)"));

    let store = SqliteStore::open(&store_dir).unwrap();
    let product = |id: &str| {
        let store = &store;
        let id = vitrina_core::ProductId::parse(id).unwrap();
        async move { store.product(&id).await.unwrap().unwrap() }
    };
    // What the Gorse-compatible API answers for them is what Gorse exported.
    let book = item_of(&product("i1").await);
    assert_eq!(
        serde_json::to_value(&book).unwrap(),
        serde_json::json!({"ItemId":"i1","IsHidden":false,"Categories":["books","new"],
            "Timestamp":"2022-08-07T00:26:46Z","Labels":["x"],"Comment":"A book"})
    );
    assert!(product("i2").await.hidden);
    assert_eq!(product("i3").await.name, "i3");
    let u1 = store.user(&vitrina_core::UserId::parse("u1").unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (user_of(&u1).labels, user_of(&u1).comment),
        (Some(serde_json::json!(["vip"])), "first".into())
    );
    let mut feedback: Vec<_> = store.page(0, 10).await.unwrap().iter().filter_map(feedback_of).collect();
    let undated = feedback.pop().unwrap();
    assert_eq!((undated.item_id.as_str(), undated.feedback_type.as_str()), ("i2", "like"));
    assert!(undated.timestamp >= before, "dated at the import: {} (started {before})", undated.timestamp);
    assert_eq!(
        serde_json::to_value(&feedback).unwrap(),
        serde_json::json!([
            {"FeedbackType":"star","UserId":"u1","ItemId":"i1","Value":4.0,"Timestamp":"2022-09-01T10:00:00Z","Comment":""},
            {"FeedbackType":"read","UserId":"u2","ItemId":"i3","Value":0.0,"Timestamp":"2022-09-02T10:00:00Z","Comment":"gone"}
        ])
    );
}

#[tokio::test]
async fn gorse_table_dumps_import_and_a_bad_row_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let tables = dir.path().join("tables");
    std::fs::create_dir_all(&tables).unwrap();
    // As `psql -c "\copy items to 'items.csv' csv header"` prints them.
    std::fs::write(
        tables.join("items.csv"),
        "item_id,is_hidden,categories,time_stamp,labels,comment\ni1,f,\"[\"\"books\"\"]\",2022-08-07 00:26:46+00,[],\"A book, new\nin two lines\"\n",
    )
    .unwrap();
    std::fs::write(
        tables.join("feedback.csv"),
        "feedback_type,user_id,item_id,time_stamp,comment\nlike,u1,i1,2022-09-01 10:00:00+00,\nlike,u1,i1,when?,\n",
    )
    .unwrap();
    let store_dir = dir.path().join("store");
    let out = import(&store_dir, "gorse", &tables, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("feedback.csv") && stderr.contains("line 3") && stderr.contains("Timestamp"),
        "{stderr}"
    );

    let store = SqliteStore::open(&store_dir).unwrap();
    let book = store.product(&vitrina_core::ProductId::parse("i1").unwrap()).await.unwrap().unwrap();
    assert_eq!((book.name.as_str(), book.category.as_str()), ("A book, new\nin two lines", "books"));
    let events = store.page(0, 10).await.unwrap();
    assert_eq!(events.len(), 1, "rows before the bad one are stored");
    assert_eq!(events[0].event.activity_type.as_str(), "like");

    let unnamed = dir.path().join("export.jsonl");
    std::fs::write(&unnamed, "{}\n").unwrap();
    let out = import(&dir.path().join("other"), "gorse", &unnamed, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the file after its table"));

    // Refused with a reason, nothing stored: a directory without Gorse's files, an empty
    // dump, a cut-off row.
    let empty_dir = dir.path().join("nothing");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(cut.join("users.csv"), "").unwrap();
    std::fs::write(dir.path().join("items.csv"), "item_id,is_hidden,comment\ni9,f\n").unwrap();
    for (path, says) in [
        (empty_dir, "holds none of users.jsonl"),
        (cut, "the file is empty"),
        (dir.path().join("items.csv"), "found record with 2 fields"),
    ] {
        let out = import(&dir.path().join("refused"), "gorse", &path, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{}: {stderr}", path.display());
    }
    let refused = SqliteStore::open(&dir.path().join("refused")).unwrap();
    assert_eq!(refused.products(ProductQuery { limit: 10, ..Default::default() }).await.unwrap().1, 0);
}
