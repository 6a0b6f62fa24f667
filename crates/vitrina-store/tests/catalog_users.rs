//! The `CatalogStore` and `UserStore` contracts, run against every backend.

mod common;

use chrono::{Duration, Utc};
use common::{event, seqs, Fixture};
use serde_json::json;
use vitrina_core::{
    demo,
    ports::{ProductQuery, StoreError},
    User, UserId,
};

conformance!(
    catalogue_insert_conflicts_upsert_keeps_creation_time_and_lists_filter,
    an_upsert_naming_one_product_twice_keeps_the_last,
    the_catalogue_revision_changes_with_every_write,
    users_are_upserted_listed_by_id_and_counted,
    deleting_a_user_removes_their_record_and_events_only,
    an_event_id_is_free_again_once_its_user_is_deleted,
    a_visitor_erased_by_another_writer_and_tracked_again_is_a_user_again,
);

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn catalogue_insert_conflicts_upsert_keeps_creation_time_and_lists_filter(f: Fixture) {
    let s = &f.store;
    let earlier = Utc::now() - Duration::days(3);
    let mut products = demo::products(earlier);
    s.upsert_products(products.clone()).await.unwrap();
    let err = s.insert_product(products[0].clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    products[0].hidden = true;
    products[0].created_at = Utc::now();
    s.upsert_products(vec![products[0].clone()]).await.unwrap();
    let stored = s.product(&products[0].id).await.unwrap().unwrap();
    assert!(stored.hidden);
    assert_eq!(stored.created_at.timestamp_millis(), earlier.timestamp_millis());
    assert_eq!((stored.name.as_str(), &stored.price), (products[0].name.as_str(), &products[0].price));
    assert_eq!(stored.attributes, products[0].attributes);

    let (acc, total) =
        s.products(ProductQuery { category: Some("Аксессуары".into()), offset: 1, limit: 1 }).await.unwrap();
    assert_eq!((acc.len(), total), (1, 3));
    let (all, total) = s.products(ProductQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(total, 10);
    assert!(all.windows(2).all(|p| p[0].id.as_str() < p[1].id.as_str()), "ordered by id");
    assert!(s.delete_product(&products[0].id).await.unwrap());
    assert!(!s.delete_product(&products[0].id).await.unwrap());
    assert!(s.product(&products[0].id).await.unwrap().is_none());
    s.insert_product(products[0].clone()).await.expect("the id is free again");
}

async fn an_upsert_naming_one_product_twice_keeps_the_last(f: Fixture) {
    let s = &f.store;
    let mut products = demo::products(Utc::now());
    let mut second = products[0].clone();
    second.name = "the second".into();
    products.push(second);
    s.upsert_products(products.clone()).await.unwrap();
    assert_eq!(s.product(&products[0].id).await.unwrap().unwrap().name, "the second");
}

async fn the_catalogue_revision_changes_with_every_write(f: Fixture) {
    let s = &f.store;
    let revision = || async { s.catalogue_revision().await.unwrap() };
    if !f.is_postgres() {
        // One process holds the catalogue in full; it never needs to ask.
        assert_eq!(revision().await, None);
        return;
    }
    let mut products = demo::products(Utc::now());
    let mut seen = vec![revision().await.expect("PostgreSQL counts catalogue writes")];
    s.upsert_products(products.clone()).await.unwrap();
    seen.push(revision().await.unwrap());
    assert_eq!(revision().await, seen.last().copied(), "reading does not change it");
    products[0].hidden = true;
    s.upsert_products(vec![products[0].clone()]).await.unwrap();
    seen.push(revision().await.unwrap());
    s.delete_product(&products[1].id).await.unwrap();
    seen.push(revision().await.unwrap());
    s.insert_product(products[1].clone()).await.unwrap();
    seen.push(revision().await.unwrap());
    // An operator's own SQL counts too.
    f.client()
        .await
        .execute("UPDATE products SET name = 'renamed' WHERE id = $1", &[&products[2].id.as_str()])
        .await
        .unwrap();
    seen.push(revision().await.unwrap());
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

async fn users_are_upserted_listed_by_id_and_counted(f: Fixture) {
    let s = &f.store;
    let attributes = |v| json!({"segment": v}).as_object().cloned().unwrap();
    let created = Utc::now() - Duration::days(1);
    for id in ["b", "a", "c"] {
        s.upsert_user(User {
            id: user(id),
            name: Some(format!("name {id}")),
            attributes: attributes(1),
            created_at: created,
        })
        .await
        .unwrap();
    }
    s.upsert_user(User { id: user("a"), name: None, attributes: attributes(2), created_at: Utc::now() })
        .await
        .unwrap();
    let a = s.user(&user("a")).await.unwrap().unwrap();
    assert_eq!((a.name, a.attributes), (None, attributes(2)), "an upsert replaces name and attributes");
    assert_eq!(a.created_at.timestamp_millis(), created.timestamp_millis(), "and keeps the creation time");
    let (page, total) = s.users(1, 5).await.unwrap();
    assert_eq!(page.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(total, 3);
    assert!(s.user(&user("nobody")).await.unwrap().is_none());
    // Tracking registers the visitor, without touching a known one.
    s.append(vec![event("e1", "d", "view", "p1"), event("e2", "a", "view", "p1")]).await.unwrap();
    assert!(s.user(&user("d")).await.unwrap().is_some());
    assert_eq!(s.user(&user("a")).await.unwrap().unwrap().attributes, attributes(2));
}

async fn deleting_a_user_removes_their_record_and_events_only(f: Fixture) {
    let s = &f.store;
    s.append(vec![
        event("e1", "u1", "view", "p1"),
        event("e2", "u1", "view", "p2"),
        event("e3", "u2", "view", "p1"),
    ])
    .await
    .unwrap();
    let deleted = s.delete_user(&user("u1")).await.unwrap().unwrap();
    assert_eq!(deleted.events, 2);
    assert!(s.recent_for_user(&user("u1"), 10).await.unwrap().is_empty());
    assert!(s.user(&user("u1")).await.unwrap().is_none());
    assert_eq!(s.stats().await.unwrap().events, 1);
    assert_eq!(s.page(0, 10).await.unwrap().len(), 1);
    assert!(s.user(&user("u2")).await.unwrap().is_some());
    assert!(s.delete_user(&user("u1")).await.unwrap().is_none(), "nothing left to delete");
}

async fn an_event_id_is_free_again_once_its_user_is_deleted(f: Fixture) {
    let s = &f.store;
    s.append(vec![event("d1", "gone", "view", "p1"), event("d2", "stays", "view", "p1")]).await.unwrap();
    s.delete_user(&user("gone")).await.unwrap();
    let out =
        s.append(vec![event("d1", "gone", "view", "p1"), event("d2", "stays", "view", "p1")]).await.unwrap();
    assert_eq!(seqs(&out), [(true, 3), (false, 2)]);
    let since = Utc::now() - Duration::hours(1);
    let events = s.user_events_since(&user("gone"), since).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
}

/// A writer that saw a visitor's row (and, on PostgreSQL, remembers it to skip registering
/// them again) must register them anew once another writer — another process — erased them.
async fn a_visitor_erased_by_another_writer_and_tracked_again_is_a_user_again(f: Fixture) {
    let writers = f.writers(2).await;
    let (tracker, eraser) = (&writers[0], &writers[1]);
    tracker.append(vec![event("r1", "back", "view", "p1")]).await.unwrap();
    tracker.append(vec![event("r2", "back", "view", "p2")]).await.unwrap();
    assert!(eraser.delete_user(&user("back")).await.unwrap().is_some());
    assert!(f.store.user(&user("back")).await.unwrap().is_none());
    tracker.append(vec![event("r3", "back", "view", "p1")]).await.unwrap();
    assert!(f.store.user(&user("back")).await.unwrap().is_some(), "the visitor has a row again");
    let (users, total) = f.store.users(0, 10).await.unwrap();
    assert_eq!((users.len(), total), (1, 1));
}
