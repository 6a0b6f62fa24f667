//! The `EventLog` contract, run against every backend (see `common::conformance!`).

mod common;

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use common::{event, seqs, Fixture};
use serde_json::json;
use vitrina_core::{
    ports::{AppendOutcome, LogStats, StoreError},
    ActivityInput, ActivityType, NewActivity, User, UserId,
};

conformance!(
    appends_in_order_and_recognises_duplicates_by_event_id,
    reusing_an_event_id_for_a_different_event_is_a_conflict_and_stores_nothing,
    a_large_batch_meeting_a_stored_event_id_keeps_the_same_rules,
    a_refused_batch_in_a_group_of_concurrent_appends_fails_alone,
    concurrent_appends_of_one_event_id_store_it_once,
    scan_returns_compact_events_with_rating_values,
    user_history_follows_event_time_not_arrival,
    a_follower_sees_every_event_of_concurrent_writers_once_in_commit_order,
    a_commit_feed_tells_each_commit_once_chained_by_the_head_it_follows,
    deleting_some_events_of_a_user_leaves_the_rest_and_frees_their_ids,
);

fn at(mut e: NewActivity, t: DateTime<Utc>) -> NewActivity {
    e.timestamp = t;
    e
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn appends_in_order_and_recognises_duplicates_by_event_id(f: Fixture) {
    let s = &f.store;
    let out = s
        .append(vec![
            event("e1", "u1", "view", "p1"),
            event("e2", "u1", "purchase", "p2"),
            event("e1", "u1", "view", "p1"),
        ])
        .await
        .unwrap();
    assert_eq!(seqs(&out), [(true, 1), (true, 2), (false, 1)]);
    let again =
        s.append(vec![event("e2", "u1", "purchase", "p2"), event("e3", "u2", "view", "p1")]).await.unwrap();
    assert_eq!(seqs(&again), [(false, 2), (true, 3)]);

    let recent = s.recent_for_user(&user("u1"), 10).await.unwrap();
    assert_eq!(recent.iter().map(|e| e.event.event_id.as_str()).collect::<Vec<_>>(), ["e2", "e1"]);
    assert_eq!(recent[0].event, at(event("e2", "u1", "purchase", "p2"), recent[0].event.timestamp));
    assert_eq!(s.stats().await.unwrap(), LogStats { events: 3, max_seq: 3 });
    let page = s.page(1, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(s.page(1, 1).await.unwrap().len(), 1, "the limit holds");
    assert!(s.page(3, 10).await.unwrap().is_empty());
}

async fn reusing_an_event_id_for_a_different_event_is_a_conflict_and_stores_nothing(f: Fixture) {
    let s = &f.store;
    s.append(vec![event("same-id", "u1", "view", "p1")]).await.unwrap();
    let err = s
        .append(vec![event("fresh", "u1", "view", "p2"), event("same-id", "u2", "view", "p1")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err =
        s.append(vec![event("x", "u1", "view", "p1"), event("x", "u1", "purchase", "p1")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "within one batch too: {err}");
    assert_eq!(s.stats().await.unwrap().events, 1, "the rejected batches stored nothing");
    // An identical retry is a duplicate, not a conflict, even with another timestamp.
    let retry = at(event("same-id", "u1", "view", "p1"), Utc::now() - Duration::minutes(5));
    assert_eq!(seqs(&s.append(vec![retry]).await.unwrap()), [(false, 1)]);
    assert_eq!(seqs(&s.append(vec![event("fresh", "u1", "view", "p2")]).await.unwrap()), [(true, 2)]);
}

/// The rules above for a batch large enough for a backend's bulk path (PostgreSQL copies
/// groups of 100 events and more), where a stored `eventId` is found only when the copy fails.
async fn a_large_batch_meeting_a_stored_event_id_keeps_the_same_rules(f: Fixture) {
    let s = &f.store;
    s.append(vec![event("kept", "u1", "view", "p1")]).await.unwrap();
    let batch = |prefix: &str, last: NewActivity| -> Vec<NewActivity> {
        (0..500)
            .map(|i| event(&format!("{prefix}{i}"), &format!("u{}", i % 40), "view", "p1"))
            .chain([last])
            .collect()
    };
    let out = s.append(batch("a", event("kept", "u1", "view", "p1"))).await.unwrap();
    let expected: Vec<(bool, u64)> = (2..=501).map(|seq| (true, seq)).chain([(false, 1)]).collect();
    assert_eq!(seqs(&out), expected, "the repeat is a duplicate, the rest stored in order");
    let err = s.append(batch("b", event("kept", "u2", "like", "p2"))).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        s.stats().await.unwrap(),
        LogStats { events: 501, max_seq: 501 },
        "the refused batch stored nothing"
    );
    let retry = s.append(batch("b", event("b0", "u0", "view", "p1"))).await.unwrap();
    assert_eq!(retry.len(), 501);
    assert_eq!(seqs(&retry)[..2], [(true, 502), (true, 503)], "no number was spent on the refused batch");
    assert_eq!(seqs(&retry)[500], (false, 502), "a repeat within the batch is a duplicate of its first");
    // Queued together, these may be written as one group; the refused one fails alone.
    let (good, bad, also_good) = tokio::join!(
        s.append(batch("c", event("c-last", "u1", "view", "p1"))),
        s.append(batch("d", event("kept", "u3", "like", "p3"))),
        s.append(batch("e", event("e-last", "u1", "view", "p1"))),
    );
    assert_eq!((good.unwrap().len(), also_good.unwrap().len()), (501, 501));
    assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");
    assert_eq!(s.stats().await.unwrap().events, 501 + 500 + 2 * 501);
}

async fn a_refused_batch_in_a_group_of_concurrent_appends_fails_alone(f: Fixture) {
    let s = &f.store;
    s.append(vec![event("taken", "u1", "view", "p1")]).await.unwrap();
    // Queued together, these may be committed as one group; the conflict must not sink the rest.
    let (good, bad, also_good) = tokio::join!(
        s.append(vec![event("g1", "u1", "view", "p1"), event("g2", "u2", "view", "p2")]),
        s.append(vec![event("g3", "u3", "view", "p1"), event("taken", "u9", "like", "p9")]),
        s.append(vec![event("g4", "u4", "add_to_cart", "p4")]),
    );
    assert_eq!(good.unwrap().len(), 2);
    assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");
    assert_eq!(also_good.unwrap().len(), 1);
    let ids: HashSet<String> =
        s.page(0, 100).await.unwrap().into_iter().map(|e| e.event.event_id.to_string()).collect();
    assert_eq!(ids, ["taken", "g1", "g2", "g4"].map(String::from).into());
    let stats = s.stats().await.unwrap();
    assert_eq!(stats, LogStats { events: 4, max_seq: 4 }, "no number was spent on the refused batch");
}

async fn concurrent_appends_of_one_event_id_store_it_once(f: Fixture) {
    let writers = f.writers(4).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = writers[i % writers.len()].clone();
            tokio::spawn(async move { s.append(vec![event("same", "u1", "view", "p1")]).await })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        stored += usize::from(matches!(out[0], AppendOutcome::Stored(_)));
    }
    assert_eq!(stored, 1);
    assert_eq!(f.store.stats().await.unwrap().events, 1);
}

async fn scan_returns_compact_events_with_rating_values(f: Fixture) {
    let s = &f.store;
    let input = ActivityInput {
        event_id: Some("r".into()),
        user_id: Some("u1".into()),
        activity_type: Some("rating".into()),
        product_id: Some("p1".into()),
        metadata: Some(serde_json::from_value(json!({"value": 4.5, "note": "ok"})).unwrap()),
        ..Default::default()
    };
    let rating = NewActivity::validate(input, Utc::now()).unwrap();
    s.append(vec![event("v", "u1", "view", "p2"), rating.clone()]).await.unwrap();
    let all = s.scan(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].value, all[1].value), (None, Some(4.5)));
    assert_eq!(all[1].activity_type, ActivityType::Rating);
    assert_eq!(all[1].ts_ms, rating.timestamp.timestamp_millis());
    assert_eq!(s.scan(1, 10).await.unwrap().len(), 1);
    let page = s.page(0, 10).await.unwrap();
    assert_eq!(page[1].event.metadata, rating.metadata, "metadata comes back as it went in");
}

async fn user_history_follows_event_time_not_arrival(f: Fixture) {
    let s = &f.store;
    let now = Utc::now();
    s.append(vec![
        at(event("late", "u1", "view", "p1"), now - Duration::minutes(1)),
        at(event("early", "u1", "view", "p2"), now - Duration::hours(2)),
        at(event("other", "u2", "view", "p3"), now),
        at(event("mid", "u1", "add_to_cart", "p3"), now - Duration::minutes(30)),
    ])
    .await
    .unwrap();
    let ids = |events: Vec<vitrina_core::StoredActivity>| {
        events.into_iter().map(|e| e.event.event_id.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(s.recent_for_user(&user("u1"), 10).await.unwrap()), ["late", "mid", "early"]);
    assert_eq!(ids(s.recent_for_user(&user("u1"), 2).await.unwrap()), ["late", "mid"]);
    let since = s.user_events_since(&user("u1"), now - Duration::minutes(45)).await.unwrap();
    assert_eq!(ids(since), ["mid", "late"], "oldest first, from the given time on");
    assert!(s.recent_for_user(&user("nobody"), 10).await.unwrap().is_empty());
}

/// Four writers (on PostgreSQL, four separate stores, as four processes would be) append
/// 200,000 events in batches while a follower reads "everything after the last sequence I
/// saw". It must see every event exactly once, with rising sequence numbers, and each
/// writer's events in the order that writer had them acknowledged.
async fn a_follower_sees_every_event_of_concurrent_writers_once_in_commit_order(f: Fixture) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 50_000;
    const BATCH: usize = 100;
    let writers = f.writers(WRITERS).await;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (w, log) in writers.into_iter().enumerate() {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..PER_WRITER / BATCH {
                let batch = (0..BATCH)
                    .map(|i| {
                        event(&format!("w{w}-{:06}", b * BATCH + i), &format!("u{w}-{}", i % 7), "view", "p1")
                    })
                    .collect();
                let out = log.append(batch).await.unwrap();
                assert!(out.iter().all(|o| matches!(o, AppendOutcome::Stored(_))));
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let follower = f.store.clone();
    let follow = tokio::spawn(async move {
        let (mut last, mut seen) = (0u64, Vec::with_capacity(WRITERS * PER_WRITER));
        loop {
            // Read whether the writers had finished before the page, so that an empty page
            // after that means the follower has everything it will ever get.
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
            let page = follower.page(last, 1_000).await.unwrap();
            if page.is_empty() {
                if finished {
                    return seen;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                continue;
            }
            for e in page {
                assert!(e.seq > last, "sequence numbers rise: {} after {last}", e.seq);
                last = e.seq;
                seen.push(e.event.event_id.to_string());
            }
        }
    });
    for t in tasks {
        t.await.unwrap();
    }
    let seen = follow.await.unwrap();
    assert_eq!(seen.len(), WRITERS * PER_WRITER, "every event seen, none twice");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event seen twice");
    for w in 0..WRITERS {
        let mine: Vec<&String> = seen.iter().filter(|id| id.starts_with(&format!("w{w}-"))).collect();
        assert_eq!(mine.len(), PER_WRITER);
        assert!(mine.windows(2).all(|p| p[0] < p[1]), "writer {w}'s events in the order it wrote them");
    }
    assert_eq!(f.store.stats().await.unwrap().events, (WRITERS * PER_WRITER) as u64);
}

/// A backend that offers a commit feed ([`EventLog::on_commit`]) tells each commit that
/// added events once, in commit order, each following the head the previous one left, even
/// when the latest events were erased meanwhile (the head never goes back). A backend without
/// one says so, and its followers read the log instead.
async fn a_commit_feed_tells_each_commit_once_chained_by_the_head_it_follows(f: Fixture) {
    let s = &f.store;
    s.append(vec![event("before", "u0", "view", "p1")]).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    if !s.on_commit(Box::new(move |c| tx.lock().unwrap().send(c).unwrap())) {
        return assert!(f.is_postgres(), "only the PostgreSQL store reads instead of telling");
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let log = s.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..25 {
                let batch = (0..10)
                    .map(|i| event(&format!("w{w}-{b}-{i}"), &format!("u{w}"), "view", "p1"))
                    .collect();
                log.append(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.append(vec![event("w0-0-0", "u0", "view", "p1")]).await.unwrap(); // a repeat adds nothing
    let last = s.append(vec![event("erased", "gone", "view", "p1")]).await.unwrap();
    s.delete_user(&user("gone")).await.unwrap();
    s.append(vec![event("after", "u0", "view", "p1")]).await.unwrap();
    let heard: Vec<_> = rx.try_iter().collect();
    let mut head = 1;
    for c in &heard {
        assert_eq!(c.after, head, "each commit follows the head the previous one left");
        assert!(!c.events.is_empty());
        assert!(c.events.windows(2).all(|p| p[0].seq < p[1].seq) && c.events[0].seq > c.after);
        head = c.events.last().unwrap().seq;
    }
    let told: Vec<u64> = heard.iter().flat_map(|c| c.events.iter().map(|e| e.seq)).collect();
    let mut logged: Vec<u64> = s.scan(1, 10_000).await.unwrap().iter().map(|e| e.seq).collect();
    logged.insert(logged.len() - 1, seqs(&last)[0].1);
    assert_eq!(told, logged, "every event added told once, the erased one included");
    assert_eq!(told.len(), 4 * 25 * 10 + 2);
}

/// The group case made certain on PostgreSQL: while another connection holds the log head,
/// the appender waits with its first batch and the next ones queue up; they are then written
/// as one group, in which the conflicting batch fails alone and a batch reusing an id of the
/// refused one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_batch_fails_alone_in_a_group_held_together() {
    let Some(f) = Fixture::postgres().await else { return };
    f.store.append(vec![event("taken", "u1", "view", "p1")]).await.unwrap();
    let holder = f.client().await;
    holder.batch_execute("BEGIN; SELECT seq FROM log_head FOR UPDATE").await.unwrap();
    let spawn = |batch: Vec<NewActivity>| {
        let s = f.store.clone();
        tokio::spawn(async move { s.append(batch).await })
    };
    let first = spawn(vec![event("first", "u1", "view", "p1")]);
    // Wait until the first is inside its transaction, then queue the rest behind it.
    f.lock_waiter().await;
    // `join!` polls its branches in order: both appends are queued before the COMMIT is sent.
    let (refused, stored, committed) = tokio::join!(
        f.store.append(vec![event("r1", "u2", "view", "p1"), event("taken", "u9", "like", "p9")]),
        f.store.append(vec![event("r1", "u2", "view", "p1"), event("s1", "u3", "view", "p2")]),
        holder.batch_execute("COMMIT"),
    );
    committed.unwrap();
    assert_eq!(seqs(&first.await.unwrap().unwrap()), [(true, 2)]);
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(seqs(&stored.unwrap()), [(true, 3), (true, 4)], "r1 is free: its batch was refused");
    assert_eq!(f.store.stats().await.unwrap(), LogStats { events: 4, max_seq: 4 });
}

async fn deleting_some_events_of_a_user_leaves_the_rest_and_frees_their_ids(f: Fixture) {
    let s = &f.store;
    let stored = s
        .append(vec![
            event("d1", "u1", "view", "p1"),
            event("d2", "u1", "like", "p2"),
            event("d3", "u2", "view", "p2"),
            event("d4", "u1", "view", "p3"),
        ])
        .await
        .unwrap();
    assert_eq!(seqs(&stored), [(true, 1), (true, 2), (true, 3), (true, 4)]);
    // Only the user's own events go: seq 3 is u2's, seq 99 is nobody's.
    assert_eq!(s.delete_events(&user("u1"), &[2, 3, 99]).await.unwrap(), 1);
    let ids = |events: Vec<vitrina_core::StoredActivity>| {
        let mut ids: Vec<String> = events.into_iter().map(|e| e.event.event_id.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(s.recent_for_user(&user("u1"), 10).await.unwrap()), ["d1", "d4"]);
    assert_eq!(
        ids(s.user_events_since(&user("u1"), DateTime::<Utc>::UNIX_EPOCH).await.unwrap()),
        ["d1", "d4"]
    );
    assert_eq!(ids(s.recent_for_user(&user("u2"), 10).await.unwrap()), ["d3"]);
    assert_eq!(s.page(0, 10).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(s.stats().await.unwrap(), LogStats { events: 3, max_seq: 4 });
    assert_eq!(s.delete_events(&user("u1"), &[2]).await.unwrap(), 0, "deleted once");
    assert_eq!(s.delete_events(&user("u1"), &[]).await.unwrap(), 0);
    // Its eventId is new again, and numbering goes on after the head.
    let again =
        s.append(vec![event("d2", "u1", "like", "p2"), event("d4", "u1", "view", "p3")]).await.unwrap();
    assert_eq!(seqs(&again), [(true, 5), (false, 4)]);
}

mod retention {
    use super::*;

    conformance!(events_past_the_retention_leave_the_log_and_their_ids_are_new_again);

    async fn events_past_the_retention_leave_the_log_and_their_ids_are_new_again(f: Fixture) {
        let s = &f.store;
        // More old events than one retention step deletes (10,000), then new ones.
        let old = 10_050;
        let batch: Vec<NewActivity> =
            (0..old).map(|i| event(&format!("old-{i:05}"), &format!("u{}", i % 3), "view", "p1")).collect();
        s.append(batch).await.unwrap();
        s.append(vec![event("new-1", "u0", "click", "p2"), event("new-2", "u9", "view", "p3")])
            .await
            .unwrap();
        f.age_events("old-", Duration::days(40)).await;
        let named = User {
            id: user("u2"),
            name: Some("Ada".into()),
            attributes: Default::default(),
            created_at: Utc::now(),
        };
        s.upsert_user(named).await.unwrap();

        assert_eq!(f.prune_events(Utc::now() - Duration::days(30)).await, old as u64, "over two steps");
        let held = |id| async move { s.user(&user(id)).await.unwrap().map(|u| u.name) };
        assert_eq!(held("u1").await, None, "a visitor known only by id goes with their last event");
        assert_eq!(held("u0").await, Some(None), "one with an event left stays");
        assert_eq!(held("u2").await, Some(Some("Ada".into())), "one with a name stays");
        assert_eq!(s.stats().await.unwrap(), LogStats { events: 2, max_seq: old as u64 + 2 });
        let u0 = s.recent_for_user(&user("u0"), 100).await.unwrap();
        assert_eq!(u0.iter().map(|e| e.event.event_id.as_str()).collect::<Vec<_>>(), ["new-1"]);
        assert!(s.recent_for_user(&user("u1"), 100).await.unwrap().is_empty());
        // A pruned eventId is new again; a kept one is still a repeat.
        let again = s
            .append(vec![event("old-00001", "u1", "view", "p1"), event("new-2", "u9", "view", "p3")])
            .await
            .unwrap();
        assert_eq!(seqs(&again), [(true, old as u64 + 3), (false, old as u64 + 2)]);
        assert_eq!(held("u1").await, Some(None), "registered again by their next event");
        assert_eq!(f.prune_events(Utc::now() - Duration::days(30)).await, 0, "nothing left to prune");
        assert_eq!(s.stats().await.unwrap().events, 3);
    }
}
