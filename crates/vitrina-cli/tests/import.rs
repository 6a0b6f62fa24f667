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
