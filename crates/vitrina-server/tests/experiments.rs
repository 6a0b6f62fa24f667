//! A/B experiments through the API: variants applied in the serving path, exact
//! attribution, results with intervals, stickiness across a restart, the bandit step.

mod common;

use common::Backing;

vitrina_store::on_every_backend!(
    variants_are_served_sticky_and_every_outcome_is_attributed_exactly_once,
    the_bandit_step_moves_traffic_to_the_winner_and_revert_undoes_it,
    the_bandit_does_not_judge_lists_younger_than_judge_after_minutes,
    bad_experiments_get_clear_errors_and_one_runs_at_a_time,
    concurrent_starts_leave_exactly_one_experiment_running,
);

use std::collections::HashMap;

use serde_json::{json, Value};

async fn create(app: &common::TestApp, body: Value) -> String {
    let (s, created) = app.post("/api/v1/experiments", &body).await;
    assert_eq!(s.as_u16(), 201, "{created}");
    assert_eq!(created["experiment"]["status"], "draft");
    let id = created["experiment"]["id"].as_str().unwrap().to_string();
    let (s, started) = app.post(&format!("/api/v1/experiments/{id}/start"), &json!({})).await;
    assert_eq!((s.as_u16(), started["experiment"]["status"].as_str()), (200, Some("running")), "{started}");
    id
}

/// Serves `limit` items to each visitor; returns per visitor the variant and the list.
async fn serve(
    app: &common::TestApp,
    visitors: std::ops::Range<usize>,
    limit: usize,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for v in visitors {
        let (s, list) =
            app.get(&format!("/api/v1/recommendations/recommendations/visitor-{v}?limit={limit}")).await;
        assert_eq!(s.as_u16(), 200, "{list}");
        out.push((format!("visitor-{v}"), list["variant"].as_str().unwrap().to_string(), list));
    }
    out
}

async fn track(app: &common::TestApp, event: Value) {
    let (s, body) = app.post("/api/v1/activity/track", &event).await;
    assert!(s.is_success(), "{body}");
}

/// Polls the results until `done` holds (attribution runs right after the acknowledgement).
async fn results_when(app: &common::TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::eventually("the results to settle", || async {
        let (s, body) = app.get(&format!("/api/v1/experiments/{id}/results")).await;
        assert_eq!(s.as_u16(), 200, "{body}");
        let results = body["results"].clone();
        done(&results).then_some(results)
    })
    .await
}

fn variant<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["variants"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap()
}

fn total_clicks(results: &Value) -> u64 {
    results["variants"].as_array().unwrap().iter().map(|v| v["metrics"]["clicks"].as_u64().unwrap()).sum()
}

async fn variants_are_served_sticky_and_every_outcome_is_attributed_exactly_once(backing: Backing) {
    let app = backing.start().await;
    let id = create(
        &app,
        json!({"name": "trending-heavy", "goal": "ctr",
               "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 5.0}}}]}),
    )
    .await;
    let lists = serve(&app, 0..200, 4).await;
    let label = |name: &str| format!("{id}/{name}");
    let n_b = lists.iter().filter(|l| l.1 == label("B")).count();
    let n_a = lists.iter().filter(|l| l.1 == label("A")).count();
    assert_eq!(n_a + n_b, 200, "every visitor is in A or B");
    assert!((70..=130).contains(&n_b), "a 50/50 split, got {n_b} of 200 in B");
    // Sticky: the same visitors again get the same variants (a second impression each).
    let again = serve(&app, 0..200, 4).await;
    for (first, second) in lists.iter().zip(&again) {
        assert_eq!(first.1, second.1, "{} moved between variants", first.0);
    }

    // B: a click with the recommendationId on the first item of every list.
    // A: a click with the id on the second item of every other list.
    let (mut expect_b, mut expect_a) = (0u64, 0u64);
    for (i, (visitor, v, list)) in lists.iter().enumerate() {
        let items = list["recommendations"].as_array().unwrap();
        let rid = list["recommendationId"].as_str().unwrap();
        let (position, wanted) = if *v == label("B") { (0, true) } else { (1, i % 2 == 0) };
        if !wanted || items.len() <= position {
            continue;
        }
        let product = items[position]["productId"].as_str().unwrap();
        let event_id = format!("click-{visitor}");
        let click = json!({"userId": visitor, "activityType": "click", "productId": product,
                           "eventId": event_id, "metadata": {"recommendationId": rid}});
        track(&app, click.clone()).await;
        track(&app, click).await; // re-sent: a duplicate, counted once
        if *v == label("B") {
            expect_b += 1;
        } else {
            expect_a += 1;
        }
    }
    // Not attributed: a product never shown to this visitor, and a recommendationId of
    // another visitor's list for a product this visitor was not shown.
    track(&app, json!({"userId": "visitor-0", "activityType": "click", "productId": "never-shown"})).await;
    track(
        &app,
        json!({"userId": "nobody-else", "activityType": "click", "productId": "product-1",
                       "metadata": {"recommendationId": lists[1].2["recommendationId"]}}),
    )
    .await;
    // Attributed by the window: a purchase without an id of an item the visitor was shown.
    let (buyer, buyer_variant, buyer_list) = &lists[3];
    let bought = buyer_list["recommendations"][2]["productId"].as_str().unwrap();
    track(
        &app,
        json!({"userId": buyer, "activityType": "purchase", "productId": bought,
                       "metadata": {"price": 19.5, "quantity": 2}}),
    )
    .await;

    let results = results_when(&app, &id, |r| {
        total_clicks(r) == expect_a + expect_b
            && r["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["metrics"]["purchases"].as_u64().unwrap())
                .sum::<u64>()
                == 1
    })
    .await;
    let (a, b) = (variant(&results, "A"), variant(&results, "B"));
    assert_eq!(
        (a["metrics"]["clicks"].as_u64(), b["metrics"]["clicks"].as_u64()),
        (Some(expect_a), Some(expect_b))
    );
    assert_eq!(a["lists"].as_u64().unwrap() + b["lists"].as_u64().unwrap(), 400, "two lists per visitor");
    let shown: u64 =
        lists.iter().chain(&again).map(|l| l.2["recommendations"].as_array().unwrap().len() as u64).sum();
    assert_eq!(
        a["metrics"]["impressions"].as_u64().unwrap() + b["metrics"]["impressions"].as_u64().unwrap(),
        shown
    );
    // Every B click was on position 0; every A click on position 1.
    let clicks_at = |v: &Value, pos: &str| {
        v["byPosition"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == pos)
            .map_or(0, |s| s["metrics"]["clicks"].as_u64().unwrap())
    };
    assert_eq!((clicks_at(b, "0"), clicks_at(a, "1"), clicks_at(a, "0")), (expect_b, expect_a, 0));
    let by_source: u64 =
        b["bySource"].as_array().unwrap().iter().map(|s| s["metrics"]["clicks"].as_u64().unwrap()).sum();
    assert_eq!(by_source, expect_b, "sources account for every click");
    // The purchase went to the buyer's variant with its revenue.
    let buyer_results = variant(&results, buyer_variant.rsplit('/').next().unwrap());
    assert_eq!(buyer_results["metrics"]["purchases"], 1);
    assert_eq!(buyer_results["metrics"]["revenue"], 39.0);
    // B (a click on every list) beats A (every other list) and the interval excludes zero.
    let vs = &b["vsControl"];
    assert!(vs["difference"]["low"].as_f64().unwrap() > 0.0, "{vs}");
    assert_eq!(vs["significant"], true);
    assert!(a["vsControl"].is_null(), "the control is not compared with itself");
    assert!(results["method"].as_str().unwrap().contains("z-test"));

    // Sticky across a restart, and the experiment is still running.
    let app = app.restart().await;
    let after = serve(&app, 0..200, 4).await;
    for (first, later) in lists.iter().zip(&after) {
        assert_eq!(first.1, later.1, "{} moved after the restart", first.0);
    }
    let (_, got) = app.get(&format!("/api/v1/experiments/{id}")).await;
    assert_eq!(got["experiment"]["status"], "running");

    // Stopping ends the variants: visitors get the default again.
    let (s, _) = app.post(&format!("/api/v1/experiments/{id}/stop"), &json!({})).await;
    assert_eq!(s.as_u16(), 200);
    assert_eq!(serve(&app, 0..1, 4).await[0].1, "default");
}

async fn the_bandit_step_moves_traffic_to_the_winner_and_revert_undoes_it(backing: Backing) {
    let app = backing.start().await;
    let id = create(
        &app,
        json!({"name": "bandit", "mode": "bandit", "explorationFloor": 0.05, "judgeAfterMinutes": 0,
               "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 3.0}}}]}),
    )
    .await;
    let lists = serve(&app, 0..120, 5).await;
    let n_b = click_lists_of(&app, &lists, "/B").await;
    results_when(&app, &id, |r| variant(r, "B")["metrics"]["clicks"].as_u64() == Some(3 * n_b)).await;
    let (s, stepped) = app.post(&format!("/api/v1/experiments/{id}/step"), &json!({})).await;
    assert_eq!(s.as_u16(), 200, "{stepped}");
    let traffic: Vec<f64> =
        stepped["experiment"]["traffic"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    assert!(traffic[1] >= 0.8 && traffic[0] >= 0.05 - 1e-9, "{traffic:?}");
    let log = stepped["experiment"]["allocationLog"].as_array().unwrap();
    assert!(log.last().unwrap()["reason"].as_str().unwrap().contains("thompson"), "{log:?}");
    // New visitors now mostly land in B.
    let fresh = serve(&app, 1000..1200, 3).await;
    let in_b = fresh.iter().filter(|l| l.1.ends_with("/B")).count();
    assert!(in_b >= 140, "{in_b} of 200 new visitors in B");

    let (_, reverted) = app.post(&format!("/api/v1/experiments/{id}/revert"), &json!({})).await;
    assert_eq!(reverted["experiment"]["traffic"], json!([0.5, 0.5]));
}

/// Clicks the first three items of every list served under a variant ending in `suffix`;
/// returns how many lists that was.
async fn click_lists_of(app: &common::TestApp, lists: &[(String, String, Value)], suffix: &str) -> u64 {
    let mut n = 0;
    for (visitor, _, list) in lists.iter().filter(|l| l.1.ends_with(suffix)) {
        n += 1;
        for (k, item) in list["recommendations"].as_array().unwrap().iter().enumerate().take(3) {
            track(
                app,
                json!({"userId": visitor, "activityType": "click", "productId": item["productId"],
                       "eventId": format!("c-{visitor}-{k}"),
                       "metadata": {"recommendationId": list["recommendationId"]}}),
            )
            .await;
        }
    }
    n
}

async fn the_bandit_does_not_judge_lists_younger_than_judge_after_minutes(backing: Backing) {
    let app = backing.start().await;
    let id = create(
        &app,
        json!({"name": "patient bandit", "mode": "bandit",
               "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 3.0}}}]}),
    )
    .await;
    let (_, got) = app.get(&format!("/api/v1/experiments/{id}")).await;
    assert_eq!(got["experiment"]["judgeAfterMinutes"], 10, "{got}");
    let lists = serve(&app, 0..120, 5).await;
    let n_b = click_lists_of(&app, &lists, "/B").await;
    // The clicks are attributed and show in the results…
    results_when(&app, &id, |r| variant(r, "B")["metrics"]["clicks"].as_u64() == Some(3 * n_b)).await;
    // …but every list is minutes younger than judgeAfterMinutes, so the bandit has nothing
    // to judge yet and leaves the traffic where it is.
    let (s, stepped) = app.post(&format!("/api/v1/experiments/{id}/step"), &json!({})).await;
    assert_eq!(s.as_u16(), 200, "{stepped}");
    assert_eq!(stepped["experiment"]["traffic"], json!([0.5, 0.5]), "{stepped}");
    assert_eq!(stepped["experiment"]["allocationLog"].as_array().unwrap().len(), 1, "{stepped}");
}

async fn bad_experiments_get_clear_errors_and_one_runs_at_a_time(backing: Backing) {
    let app = backing.start().await;
    let cases = [
        (json!({"name": "x", "variants": [{"name": "A"}, {"name": "A"}]}), "variants"),
        (json!({"name": "x", "variants": [{"name": "A"}]}), "variants"),
        (json!({"name": "x", "goal": "happiness", "variants": [{"name": "A"}, {"name": "B"}]}), "goal"),
        (
            json!({"name": "x", "variants": [{"name": "A"}, {"name": "B", "modelVersion": 99}]}),
            "variants[1].modelVersion",
        ),
        (
            json!({"name": "x", "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"magic": 1.0}}}]}),
            "variants[1].ranking",
        ),
        (
            json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}], "autoTuneWeights": "yes"}),
            "autoTuneWeights",
        ),
        (json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}], "colour": 1}), "colour"),
        (
            json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}], "attributionWindowHours": 1,
                   "judgeAfterMinutes": 90}),
            "judgeAfterMinutes",
        ),
    ];
    for (body, field) in cases {
        let res = app.post("/api/v1/experiments", &body).await;
        common::assert_error(&res, 400, "validation_failed");
        let text = res.1["details"].to_string();
        assert!(text.contains(field), "{field} not named in {text}");
    }
    assert_eq!(app.get("/api/v1/experiments").await.1["experiments"], json!([]), "nothing stored");
    common::assert_error(&app.get("/api/v1/experiments/nope").await, 404, "not_found");
    common::assert_error(&app.post("/api/v1/experiments/nope/start", &json!({})).await, 404, "not_found");

    let two = json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}]});
    let first = create(&app, two.clone()).await;
    common::assert_error(
        &app.post(&format!("/api/v1/experiments/{first}/start"), &json!({})).await,
        409,
        "conflict",
    );
    let (_, second) = app.post("/api/v1/experiments", &two).await;
    let second = second["experiment"]["id"].as_str().unwrap().to_string();
    common::assert_error(
        &app.post(&format!("/api/v1/experiments/{second}/start"), &json!({})).await,
        409,
        "conflict",
    );
    common::assert_error(
        &app.post(&format!("/api/v1/experiments/{second}/stop"), &json!({})).await,
        409,
        "conflict",
    );
    let counts: HashMap<String, usize> = app.get("/api/v1/experiments").await.1["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .fold(HashMap::new(), |mut m, e| {
            *m.entry(e["status"].as_str().unwrap().to_string()).or_default() += 1;
            m
        });
    assert_eq!(counts, HashMap::from([("running".to_string(), 1), ("draft".to_string(), 1)]));
}

async fn concurrent_starts_leave_exactly_one_experiment_running(backing: Backing) {
    let app = backing.start().await;
    let two = json!({"name": "x", "variants": [{"name": "A"}, {"name": "B"}]});
    for round in 0..5 {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let (s, created) = app.post("/api/v1/experiments", &two).await;
            assert_eq!(s.as_u16(), 201, "{created}");
            ids.push(created["experiment"]["id"].as_str().unwrap().to_string());
        }
        let (first, second) = (
            format!("/api/v1/experiments/{}/start", ids[0]),
            format!("/api/v1/experiments/{}/start", ids[1]),
        );
        let empty = json!({});
        let (a, b) = tokio::join!(app.post(&first, &empty), app.post(&second, &empty));
        let mut statuses = [a.0.as_u16(), b.0.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {} / {}", a.1, b.1);
        let running: Vec<String> = app.get("/api/v1/experiments").await.1["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "running")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(running.len(), 1, "round {round}: {running:?}");
        let (s, stopped) = app.post(&format!("/api/v1/experiments/{}/stop", running[0]), &json!({})).await;
        assert_eq!(s.as_u16(), 200, "{stopped}");
    }
}
