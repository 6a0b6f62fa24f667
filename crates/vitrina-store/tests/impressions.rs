//! The `ImpressionStore` contract, run against every backend.

mod common;

use chrono::{Duration, Utc};
use common::Fixture;
use vitrina_core::{
    ports::{AttributedOutcome, Exposure, Impression, ImpressionItem},
    ActivityType, ProductId, UserId,
};

conformance!(
    lists_are_found_by_recommendation_id_and_by_visitor_from_any_process,
    experiment_logs_match_the_variant_prefix_and_name_visitors_by_pseudonym,
    an_outcome_counts_once_per_event,
    erasure_removes_the_visitors_lists_and_outcomes_only,
    a_read_sees_what_was_recorded_before_it_without_a_flush,
    a_products_exposure_counts_each_list_and_outcome_once_by_day,
    every_products_exposure_is_summed_over_whole_utc_days,
);

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn list(id: &str, visitor: &str, variant: &str, minutes_ago: i64) -> Impression {
    Impression {
        recommendation_id: id.into(),
        user_id: user(visitor),
        model_version: "v1".into(),
        variant: variant.into(),
        created_at: Utc::now() - Duration::minutes(minutes_ago),
        items: ["p1", "p2"]
            .iter()
            .enumerate()
            .map(|(k, p)| ImpressionItem {
                product_id: ProductId::parse(p).unwrap(),
                source: if k == 0 { "trending".into() } else { "item_knn".into() },
                position: k as u32,
            })
            .collect(),
    }
}

fn outcome(
    event: &str,
    list: &str,
    visitor: &str,
    variant: &str,
    kind: ActivityType,
    value: f64,
) -> AttributedOutcome {
    AttributedOutcome {
        event_id: event.into(),
        recommendation_id: list.into(),
        user_id: user(visitor),
        variant: variant.into(),
        product_id: ProductId::parse("p2").unwrap(),
        source: "item_knn".into(),
        position: 1,
        kind,
        value,
        created_at: Utc::now(),
    }
}

async fn a_read_sees_what_was_recorded_before_it_without_a_flush(f: Fixture) {
    let s = &f.store;
    let since = Utc::now() - chrono::Duration::hours(1);
    for round in 0..20 {
        let id = format!("r-{round}");
        s.record_impression(list(&id, "u1", "exp/b", 1));
        assert!(s.impression(&user("u1"), &id).await.unwrap().is_some(), "round {round}: by id");
        s.record_impression(list(&format!("{id}-2"), "u1", "exp/b", 1));
        assert_eq!(s.impressions_for_user(&user("u1"), since).await.unwrap().len(), 2 * round + 2);
        s.record_impression(list(&format!("{id}-3"), "u2", "exp/b", 1));
        let both = s.impressions_for_users(vec![(user("u1"), since), (user("u2"), since)]).await.unwrap();
        assert_eq!((both[0].len(), both[1].len()), (2 * round + 2, round + 1));
        s.record_outcome(outcome(&format!("e-{round}"), &id, "u1", "exp/b", ActivityType::Purchase, 1.0));
        assert_eq!(s.outcomes_for_user(&user("u1")).await.unwrap().len(), round + 1);
        assert_eq!(s.experiment_log("exp/").await.unwrap().1.len(), round + 1);
    }
}

async fn lists_are_found_by_recommendation_id_and_by_visitor_from_any_process(f: Fixture) {
    let s = &f.store;
    s.record_impression(list("r-old", "u1", "b", 120));
    s.record_impression(list("r-new", "u1", "b", 1));
    s.record_impression(list("r-other", "u2", "b", 1));
    s.flush_impressions().await;
    // Another process (on SQLite, the same store: one process per data directory).
    let other = f.writers(1).await.remove(0);
    let found = other.impression(&user("u1"), "r-new").await.unwrap().unwrap();
    assert_eq!(found, list("r-new", "u1", "b", 1).with_time(found.created_at));
    assert!(other.impression(&user("u1"), "r-missing").await.unwrap().is_none());
    assert!(
        other.impression(&user("u2"), "r-new").await.unwrap().is_none(),
        "another visitor's list is not theirs"
    );
    let recent = other.impressions_for_user(&user("u1"), Utc::now() - Duration::minutes(60)).await.unwrap();
    assert_eq!(recent.iter().map(|i| i.recommendation_id.as_str()).collect::<Vec<_>>(), ["r-new"]);
    let all = other.impressions_for_user(&user("u1"), Utc::now() - Duration::days(1)).await.unwrap();
    assert_eq!(
        all.iter().map(|i| i.recommendation_id.as_str()).collect::<Vec<_>>(),
        ["r-old", "r-new"],
        "oldest first"
    );
    let batch = other
        .impressions_for_users(vec![
            (user("u1"), Utc::now() - Duration::minutes(60)),
            (user("u3"), Utc::now() - Duration::days(1)),
            (user("u1"), Utc::now() - Duration::days(1)),
            (user("u2"), Utc::now() - Duration::days(1)),
        ])
        .await
        .unwrap();
    let ids: Vec<Vec<&str>> =
        batch.iter().map(|l| l.iter().map(|i| i.recommendation_id.as_str()).collect()).collect();
    assert_eq!(
        ids,
        [vec!["r-new"], vec![], vec!["r-old", "r-new"], vec!["r-other"]],
        "one answer per query, in order"
    );
    assert_eq!(batch[2], all);
}

trait WithTime {
    fn with_time(self, t: chrono::DateTime<Utc>) -> Self;
}

impl WithTime for Impression {
    fn with_time(mut self, t: chrono::DateTime<Utc>) -> Self {
        self.created_at = t;
        self
    }
}

async fn experiment_logs_match_the_variant_prefix_and_name_visitors_by_pseudonym(f: Fixture) {
    let s = &f.store;
    s.record_impression(list("r1", "alice", "exp1/a", 3));
    s.record_impression(list("r2", "bob", "exp1/b", 2));
    s.record_impression(list("r3", "alice", "exp10/a", 1));
    s.record_impression(list("r4", "alice", "default", 1));
    s.record_outcome(outcome("e1", "r1", "alice", "exp1/a", ActivityType::Purchase, 12.5));
    s.record_outcome(outcome("e2", "r3", "alice", "exp10/a", ActivityType::Click, 0.0));
    s.flush_impressions().await;
    let (lists, outcomes) = s.experiment_log("exp1/").await.unwrap();
    assert_eq!(lists.iter().map(|i| i.recommendation_id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
    assert_eq!(outcomes.iter().map(|o| (o.event_id.as_str(), o.value)).collect::<Vec<_>>(), [("e1", 12.5)]);
    assert!(lists.iter().all(|i| i.user_id.as_str().starts_with("p:")), "visitors by pseudonym");
    assert!(!lists.iter().any(|i| ["alice", "bob"].contains(&i.user_id.as_str())));
    assert_ne!(lists[0].user_id, lists[1].user_id, "one pseudonym per visitor");
    assert_eq!(outcomes[0].user_id, lists[0].user_id, "the same visitor, the same pseudonym");
    assert_eq!(lists[0].items[1].source, "item_knn");
}

async fn an_outcome_counts_once_per_event(f: Fixture) {
    let s = &f.store;
    s.record_impression(list("r1", "u1", "x/a", 1));
    s.record_outcome(outcome("e1", "r1", "u1", "x/a", ActivityType::Click, 0.0));
    s.record_outcome(outcome("e1", "r1", "u1", "x/a", ActivityType::Click, 0.0));
    s.flush_impressions().await;
    s.record_outcome(outcome("e1", "r1", "u1", "x/a", ActivityType::Click, 0.0));
    s.flush_impressions().await;
    let mine = s.outcomes_for_user(&user("u1")).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].user_id.as_str(), mine[0].kind, mine[0].position), ("u1", ActivityType::Click, 1));
}

async fn erasure_removes_the_visitors_lists_and_outcomes_only(f: Fixture) {
    let s = &f.store;
    s.record_impression(list("r1", "gone", "x/a", 2));
    s.record_impression(list("r2", "stays", "x/a", 1));
    s.record_outcome(outcome("e1", "r1", "gone", "x/a", ActivityType::Click, 0.0));
    s.record_outcome(outcome("e2", "r2", "stays", "x/a", ActivityType::Click, 0.0));
    // Queued right before the erasure: erased with the rest.
    s.record_impression(list("r3", "gone", "x/a", 0));
    let deleted = s.delete_user(&user("gone")).await.unwrap().unwrap();
    assert_eq!((deleted.events, deleted.impressions), (0, 2));
    assert!(s.impressions_for_user(&user("gone"), Utc::now() - Duration::days(1)).await.unwrap().is_empty());
    assert!(s.outcomes_for_user(&user("gone")).await.unwrap().is_empty());
    let (lists, outcomes) = s.experiment_log("x/").await.unwrap();
    assert_eq!((lists.len(), outcomes.len()), (1, 1));
    assert!(s.impression(&user("stays"), "r2").await.unwrap().is_some());
}

async fn a_products_exposure_counts_each_list_and_outcome_once_by_day(f: Fixture) {
    let s = &f.store;
    let [p1, p2, p3] = ["p1", "p2", "p3"].map(|p| ProductId::parse(p).unwrap());
    let today = Utc::now() - Duration::hours(1);
    let week = Utc::now() - Duration::days(7);
    s.record_impression(list("r1", "u1", "default", 1));
    s.record_impression(list("r1", "u1", "default", 1)); // the same list again: once
    s.record_impression(list("r2", "u2", "x/a", 1));
    s.record_impression(list("r3", "u2", "default", 3 * 24 * 60)); // three days ago
    s.flush_impressions().await;
    s.record_impression(list("r2", "u2", "x/a", 1)); // again, in a later batch: once
    s.record_outcome(outcome("e1", "r1", "u1", "default", ActivityType::Click, 0.0));
    s.record_outcome(outcome("e2", "r1", "u1", "default", ActivityType::Purchase, 10.0));
    s.record_outcome(outcome("e2", "r1", "u1", "default", ActivityType::Purchase, 10.0));
    s.record_outcome(outcome("e3", "r2", "u2", "x/a", ActivityType::AddToCart, 0.0));
    s.flush_impressions().await;
    s.record_outcome(outcome("e3", "r2", "u2", "x/a", ActivityType::AddToCart, 0.0));
    let first = s.exposure(&p1, week).await.unwrap();
    assert_eq!(first, Exposure { impressions: 3, ..Exposure::default() });
    let second = s.exposure(&p2, week).await.unwrap();
    let expected = Exposure { impressions: 3, clicks: 1, add_to_carts: 1, purchases: 1, revenue: 10.0 };
    assert_eq!(second, expected);
    // From today on, the list of three days ago is left out.
    assert_eq!(s.exposure(&p1, today).await.unwrap().impressions, 2);
    assert_eq!(s.exposure(&p3, week).await.unwrap(), Exposure::default());
    // The totals name no visitor: an erasure leaves them.
    s.delete_user(&user("u1")).await.unwrap().unwrap();
    assert_eq!(s.exposure(&p2, week).await.unwrap(), expected);
}

async fn every_products_exposure_is_summed_over_whole_utc_days(f: Fixture) {
    let s = &f.store;
    let [p1, p2] = ["p1", "p2"].map(|p| ProductId::parse(p).unwrap());
    // One clock for every record and every range, so that midnight cannot pass between them.
    let now = Utc::now();
    let today = now.timestamp_millis().div_euclid(86_400_000);
    let at = |id: &str, visitor: &str, days_ago: i64| Impression {
        created_at: now - Duration::days(days_ago),
        ..list(id, visitor, "default", 0)
    };
    s.record_impression(at("r1", "u1", 0));
    s.record_impression(at("r2", "u2", 2));
    s.record_impression(at("r3", "u2", 5));
    let mut click = outcome("e1", "r1", "u1", "default", ActivityType::Click, 0.0);
    click.created_at = now;
    s.record_outcome(click);
    let mut old = outcome("e2", "r2", "u2", "default", ActivityType::Purchase, 4.0);
    old.created_at = now - Duration::days(2);
    s.record_outcome(old);
    s.flush_impressions().await;
    let shown = |n| Exposure { impressions: n, ..Exposure::default() };
    let got = |days| async move {
        let e = s.exposures(days).await.unwrap();
        (e.days, e.products)
    };
    // Every day up to today: three lists on three days, both products, in id order.
    let bought = Exposure { impressions: 3, clicks: 1, purchases: 1, revenue: 4.0, ..Exposure::default() };
    assert_eq!(got((today - 10, today + 1)).await, (3, vec![(p1.clone(), shown(3)), (p2.clone(), bought)]));
    // The days before today leave today's list and click out; the end is exclusive.
    let bought = Exposure { impressions: 2, purchases: 1, revenue: 4.0, ..Exposure::default() };
    assert_eq!(got((today - 10, today)).await, (2, vec![(p1.clone(), shown(2)), (p2.clone(), bought)]));
    // Only the day five days ago.
    assert_eq!(got((today - 5, today - 4)).await, (1, vec![(p1, shown(1)), (p2, shown(1))]));
    assert_eq!(got((today - 4, today - 2)).await, (0, Vec::new()));
}
