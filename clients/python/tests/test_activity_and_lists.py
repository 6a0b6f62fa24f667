"""Tracking and the lists it changes, through `Client` against the live server."""

from __future__ import annotations

from pathlib import Path

import pytest

import vitrina
from conftest import record


def test_a_tracked_view_is_in_the_history_and_leaves_the_next_list(client):
    before = client.recommendations("user-2", limit=10)
    assert before["success"] and before["userId"] == "user-2"
    shown = [r["productId"] for r in before["recommendations"]]
    assert shown, before
    target = shown[0]

    stored = client.activity_track({"userId": "user-2", "productId": target, "activityType": "purchase"})
    assert stored["success"] and not stored["duplicate"] and stored["event"] == "UserPurchasedProduct"
    assert stored["eventId"], "the client gives every event an id, so a retry is a duplicate"

    again = client.activity_track(
        {"userId": "user-2", "productId": target, "activityType": "purchase", "eventId": stored["eventId"]}
    )
    assert again["duplicate"] and again["sequence"] == stored["sequence"]

    history = client.recommendations_history("user-2", limit=5)
    assert history["activities"][0]["eventId"] == stored["eventId"]
    after = client.recommendations("user-2", limit=10)
    assert after["fromCache"] is False, "the visitor's event drops the cached list"
    assert target not in [r["productId"] for r in after["recommendations"]], "a purchased item is not offered again"

    refreshed = client.recommendations_refresh("user-2", {"limit": 3})
    assert refreshed["fromCache"] is False and len(refreshed["recommendations"]) <= 3

    stats = client.recommendations_stats("user-2", days=30)
    assert stats["success"] and stats["userId"] == "user-2"


def test_a_batch_is_all_or_nothing_and_says_what_was_wrong(client):
    good = {"userId": "batch-user", "productId": "product-1", "activityType": "view"}
    bad = {"userId": "batch-user", "productId": "product-2", "activityType": "teleport"}
    with pytest.raises(vitrina.VitrinaError) as refused:
        client.activity_track_batch({"events": [good, bad]})
    e = refused.value
    assert (e.status, e.error, e.operation) == (400, "validation_failed", "activity_track_batch")
    assert [x["index"] for x in e.details["errors"]] == [1]
    assert client.recommendations_history("batch-user")["count"] == 0, "nothing of the refused batch was stored"

    answer = client.activity_track_batch({"events": [good, {**bad, "activityType": "like"}]})
    assert (answer["stored"], answer["duplicates"]) == (2, 0)


def test_the_tracker_sends_full_batches_and_the_rest_on_leaving(client):
    with vitrina.Tracker(client, batch_size=3) as tracker:
        ids = [
            tracker.track({"userId": "tracked", "productId": f"product-{i}", "activityType": "view"})
            for i in range(1, 8)
        ]
        assert len(tracker.results) == 2 and len(tracker.pending) == 1
    assert [r["stored"] for r in tracker.results] == [3, 3, 1] and not tracker.pending
    history = client.recommendations_history("tracked", limit=10)
    assert sorted(a["eventId"] for a in history["activities"]) == sorted(ids)

    with pytest.raises(ValueError):
        vitrina.Tracker(client, batch_size=vitrina.MAX_BATCH + 1)


def test_refused_events_are_set_aside_and_the_rest_is_sent(client):
    tracker = vitrina.Tracker(client, batch_size=10)
    tracker.track({"userId": "queued", "productId": "product-1", "activityType": "view"})
    tracker.track({"userId": "queued", "activityType": "search"})  # a search needs metadata.query
    tracker.track({"userId": "queued", "productId": "product-2", "activityType": "view"})
    tracker.flush()
    assert [r["event"]["activityType"] for r in tracker.rejected] == ["search"]
    assert "query" in tracker.rejected[0]["errors"][0]["field"]
    assert [r["stored"] for r in tracker.results] == [2] and not tracker.pending
    history = client.recommendations_history("queued")["activities"]
    assert sorted(a["productId"] for a in history) == ["product-1", "product-2"]

    # An event the server cannot even parse is named by its field (`events[1].userId`).
    tracker.track({"userId": "queued", "productId": "product-3", "activityType": "view"})
    tracker.track({"userId": 42, "productId": "product-4", "activityType": "view"})
    tracker.flush()
    assert [r["event"]["userId"] for r in tracker.rejected] == ["queued", 42], "oldest refusal first"
    assert tracker.rejected[-1]["errors"][0]["field"].startswith("events[1]")
    assert [r["stored"] for r in tracker.results] == [2, 1] and not tracker.pending


def test_similar_popular_and_session_lists(client):
    similar = client.recommendations_similar("product-1", limit=5, exclude=["product-2"])
    ids = [r["productId"] for r in similar["recommendations"]]
    assert ids and "product-1" not in ids and "product-2" not in ids
    popular = client.recommendations_popular(limit=3, window="week")
    assert 1 <= len(popular["recommendations"]) <= 3
    session = client.recommendations_session(
        {"sessionId": "s-1", "events": [{"activityType": "view", "productId": "product-4"}], "limit": 4}
    )
    assert session["recommendations"] and "product-4" not in [r["productId"] for r in session["recommendations"]]


def test_errors_carry_the_error_shape(server, client):
    with pytest.raises(vitrina.VitrinaError) as missing:
        client.catalog_get("no-such-product")
    assert (missing.value.status, missing.value.error) == (404, "not_found")
    with vitrina.Client(server, on_request=record, retry=vitrina.NO_RETRY) as anonymous:
        with pytest.raises(vitrina.VitrinaError) as closed:
            anonymous.recommendations("user-1")
    assert (closed.value.status, closed.value.error) == (401, "unauthorized")
    with pytest.raises(vitrina.VitrinaError) as invalid:
        client.recommendations("user-1", limit=1000)
    assert invalid.value.status == 400 and "limit" in invalid.value.message


def test_the_readme_example_runs(server, admin_key):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace('"http://127.0.0.1:8080"', repr(server)).replace('"vk_…"', repr(admin_key))
    exec(compile(example, "README.md", "exec"), {})
