"""`AsyncClient` and `AsyncTracker` against the live server, and the retry rules against a
scripted transport (no server: the answers are made up to be exactly the ones to retry)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import vitrina
from conftest import record


def test_the_async_client_tracks_in_batches_and_reads_lists(server, admin_key):
    async def scenario():
        async with vitrina.AsyncClient(server, api_key=admin_key, on_request=record) as client:
            async with vitrina.AsyncTracker(client, batch_size=2) as tracker:
                for i in (5, 6, 7):
                    await tracker.track({"userId": "async-user", "productId": f"product-{i}", "activityType": "click"})
                assert [r["stored"] for r in tracker.results] == [2]
            assert [r["stored"] for r in tracker.results] == [2, 1]

            # Tasks that track at once: one batch in flight at a time, every event sent once.
            crowd = vitrina.AsyncTracker(client, batch_size=3)
            ids = await asyncio.gather(
                *(crowd.track({"userId": "async-crowd", "productId": f"product-{i % 10 + 1}", "activityType": "view"})
                  for i in range(20))
            )
            await crowd.flush()
            assert sum(r["stored"] for r in crowd.results) == 20 and not crowd.pending
            stored = await client.recommendations_history("async-crowd", limit=50)
            assert sorted(a["eventId"] for a in stored["activities"]) == sorted(ids)
            history, listed = await asyncio.gather(
                client.recommendations_history("async-user"), client.recommendations("async-user", limit=5)
            )
            assert {a["productId"] for a in history["activities"]} == {"product-5", "product-6", "product-7"}
            assert listed["userId"] == "async-user" and listed["recommendations"]
            with pytest.raises(vitrina.VitrinaError) as missing:
                await client.users_get("async-nobody")
            assert missing.value.status == 404

    asyncio.run(scenario())


def scripted(answers: list, seen: list):
    """A transport that answers each request with the next of `answers` (a response, or an
    exception to raise) and records what it was sent."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle)


FAST = vitrina.Retry(attempts=4, backoff=0.001, max_wait=0.01)
BUSY = {"success": False, "error": "rate_limited", "message": "slow down", "code": 429, "details": {}}


def client_over(answers, seen, retry=FAST) -> vitrina.Client:
    http = httpx.Client(base_url="http://vitrina.test", transport=scripted(answers, seen))
    return vitrina.Client(retry=retry, http=http)


def test_429_and_503_are_retried_and_retry_after_is_honoured():
    seen: list = []
    waits: list = []
    retry = vitrina.Retry(attempts=4, backoff=0.001, max_wait=0.02)
    assert retry.delay(0, -5.0) == 0.0, "a negative Retry-After waits not at all"
    original = retry.delay
    object.__setattr__(retry, "delay", lambda attempt, after: waits.append(after) or original(attempt, after))
    answers = [
        httpx.Response(429, json=BUSY, headers={"retry-after": "0.01"}),
        httpx.Response(503, json={**BUSY, "error": "unavailable", "code": 503}),
        httpx.Response(200, json={"success": True, "recommendations": []}),
    ]
    with client_over(answers, seen, retry) as client:
        assert client.recommendations_popular(limit=2)["success"]
    assert len(seen) == 3 and waits == [0.01, None]
    assert seen[0].url.params["limit"] == "2"


def test_retries_stop_after_the_last_attempt_with_the_servers_error():
    seen: list = []
    answers = [httpx.Response(429, json=BUSY) for _ in range(4)]
    with client_over(answers, seen) as client:
        with pytest.raises(vitrina.VitrinaError) as busy:
            client.recommendations_popular()
    assert busy.value.status == 429 and busy.value.error == "rate_limited" and len(seen) == 4


def test_a_lost_answer_is_retried_only_where_a_repeat_cannot_double():
    broken = httpx.ReadError("connection reset")
    seen: list = []
    with client_over([broken, httpx.Response(201, json={"success": True})], seen) as client:
        client.activity_track({"userId": "u", "productId": "p", "activityType": "view"})
    ids = [httpx.Request("POST", "/", content=r.content).read() for r in seen]
    assert len(seen) == 2 and ids[0] == ids[1] and b'"eventId"' in ids[0], "the repeat carries the same eventId"

    seen = []
    with client_over([broken, httpx.Response(201, json={"success": True})], seen) as client:
        with pytest.raises(httpx.ReadError):
            client.experiments_create({"name": "x", "variants": [{"name": "A"}]})
    assert len(seen) == 1, "a create whose answer was lost is not sent again"

    seen = []
    refused = httpx.ConnectError("connection refused")
    with client_over([refused, httpx.Response(201, json={"success": True})], seen) as client:
        client.experiments_create({"name": "x", "variants": [{"name": "A"}]})
    assert len(seen) == 2, "a request that never left is sent again"


def test_a_503_is_retried_only_where_a_second_try_cannot_double():
    down = {**BUSY, "error": "unavailable", "code": 503}
    cases = [
        # (what, call, tries): a 503 may come after the store wrote part of the request.
        ("a read", lambda c: c.recommendations_popular(), 2),
        ("tracking", lambda c: c.activity_track({"userId": "u", "productId": "p", "activityType": "view"}), 2),
        ("a create", lambda c: c.experiments_create({"name": "x", "variants": [{"name": "A"}]}), 1),
        ("Gorse feedback with its time", lambda c: c.gorse_feedback_upsert(
            [{"FeedbackType": "like", "UserId": "u", "ItemId": "i", "Timestamp": "2024-01-01T00:00:00Z"}]), 2),
        ("Gorse feedback without a time", lambda c: c.gorse_feedback_upsert(
            [{"FeedbackType": "like", "UserId": "u", "ItemId": "i"}]), 1),
        ("Gorse feedback at Gorse's zero time", lambda c: c.gorse_feedback_insert(
            [{"FeedbackType": "like", "UserId": "u", "ItemId": "i", "Timestamp": "0001-01-01T00:00:00Z"}]), 1),
        ("a Gorse list that writes back", lambda c: c.gorse_lists_recommend("u", write_back_type="read"), 1),
        ("a health check (its 503 is the answer)", lambda c: c.health_engine(), 1),
    ]
    for what, call, tries in cases:
        seen: list = []
        answers = [httpx.Response(503, json=down), httpx.Response(200, json={"success": True})]
        with client_over(answers, seen) as client:
            try:
                call(client)
            except vitrina.VitrinaError as e:
                assert e.status == 503, what
        assert len(seen) == tries, what

    seen = []
    answers = [httpx.Response(429, json=BUSY), httpx.Response(201, json={"success": True})]
    with client_over(answers, seen) as client:
        client.experiments_create({"name": "x", "variants": [{"name": "A"}]})
    assert len(seen) == 2, "a 429 was refused before anything was done: any request is sent again"


def test_the_key_goes_in_the_bearer_header_and_path_parameters_are_escaped():
    seen: list = []
    http = httpx.Client(base_url="http://vitrina.test", transport=scripted([httpx.Response(200, json={})], seen))
    client = vitrina.Client(api_key="vk_secret", http=http)
    client.users_get("a/b c")
    assert seen[0].url.raw_path == b"/api/v1/users/a%2Fb%20c"
    assert seen[0].headers["authorization"] == "Bearer vk_secret"
    assert seen[0].headers["user-agent"] == f"vitrina-python/{vitrina.__version__}"
