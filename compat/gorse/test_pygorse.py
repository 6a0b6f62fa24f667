"""The official Gorse Python SDK (pygorse 0.5.1, unchanged) against a live Vitrina.

run.sh starts the server and sets GORSE_ENDPOINT and GORSE_API_KEY. Every test uses ids of
its own, so the tests share one server.
"""

import asyncio
import os
import uuid

import pytest
from gorse import AsyncGorse, Gorse, GorseException, Score

ENDPOINT = os.environ["GORSE_ENDPOINT"]
KEY = os.environ["GORSE_API_KEY"]
client = Gorse(ENDPOINT, KEY)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_users_insert_get_list_update_and_delete():
    user = fresh("py-user")
    assert client.insert_user({"UserId": user, "Labels": ["a", "b"], "Comment": "first"}) == {"RowAffected": 1}
    assert client.get_user(user) == {"UserId": user, "Labels": ["a", "b"], "Subscribe": None, "Comment": "first"}
    assert client.insert_users([{"UserId": user + "-2"}, {"UserId": user + "-3"}]) == {"RowAffected": 2}
    seen, cursor = [], ""
    while True:
        users, cursor = client.get_users(2, cursor)
        assert len(users) <= 2
        seen += [u["UserId"] for u in users]
        if cursor == "":
            break
    assert {user, user + "-2", user + "-3"} <= set(seen)
    assert client.delete_user(user) == {"RowAffected": 1}
    with pytest.raises(GorseException) as missing:
        client.get_user(user)
    assert missing.value.status_code == 404


def test_items_insert_get_list_search_update_and_delete():
    item = fresh("py-item")
    written = {
        "ItemId": item,
        "IsHidden": False,
        "Categories": ["phones"],
        "Timestamp": "2022-08-07T00:26:46Z",
        "Labels": ["red"],
        "Comment": "A phone",
    }
    assert client.insert_item(written) == {"RowAffected": 1}
    assert client.get_item(item) == written
    assert client.insert_item({"ItemId": item + "-2", "IsHidden": False, "Timestamp": ""}) == {"RowAffected": 1}
    items, cursor = client.get_items(1)
    assert len(items) == 1 and cursor != ""
    more, _ = client.get_items(1, cursor)
    assert more[0]["ItemId"] != items[0]["ItemId"], "the cursor moves on"
    assert [i["ItemId"] for i in client.search_items(item, n=5)] == [item, item + "-2"]
    assert [i["ItemId"] for i in client.search_items("A PHONE", n=50) if i["ItemId"].startswith(item)] == [item]
    assert client.update_item(item, is_hidden=True, comment="renamed") == {"RowAffected": 1}
    changed = client.get_item(item)
    assert changed["IsHidden"] is True and changed["Comment"] == "renamed"
    assert changed["Categories"] == ["phones"], "fields sent as null are left as they were"
    assert client.delete_item(item) == {"RowAffected": 1}
    with pytest.raises(GorseException) as missing:
        client.get_item(item)
    assert missing.value.status_code == 404


def tastes(prefix: str) -> tuple[str, str, str]:
    """Five shoppers who like a also like b; c is liked by more, others."""
    a, b, c = (f"{prefix}-{x}" for x in "abc")
    rows = []
    for u in range(12):
        liked = [a, b] if u < 5 else [c]
        rows += [{"FeedbackType": "like", "UserId": f"{prefix}-fan{u}", "ItemId": i, "Timestamp": ""} for i in liked]
    assert client.insert_feedbacks(rows) == {"RowAffected": len(rows)}
    return a, b, c


def test_feedback_insert_list_page_and_the_next_recommendation_changes():
    prefix = fresh("py-shop")
    a, b, _ = tastes(prefix)
    user = prefix + "-newcomer"
    before = client.get_recommend(user, n=5)
    assert before and all(isinstance(s, Score) for s in before)
    assert client.insert_feedback("like", user, a, "2026-01-01T00:00:00Z") == {"RowAffected": 1}
    after = client.get_recommend(user, n=5)
    assert [s.id for s in after] != [s.id for s in before], "the feedback changes the next list"
    assert after[0].id == b, "those who like a like b"
    assert after[0].score >= after[-1].score
    assert [f["ItemId"] for f in client.list_feedbacks("like", user)] == [a]
    page, cursor = client.get_feedbacks(3)
    assert len(page) == 3 and cursor != ""
    assert {"FeedbackType", "UserId", "ItemId", "Timestamp"} <= set(page[0])
    assert client.delete_feedback(user, a) == {"RowAffected": 1}
    assert client.list_feedbacks("like", user) == []
    assert [s.id for s in client.get_recommend(user, n=5)] != [s.id for s in after], "the like no longer counts"


def test_recommend_in_a_category_neighbors_and_session():
    prefix = fresh("py-cat")
    a, b, c = tastes(prefix)
    for item, category in [(a, "x"), (b, "x"), (c, "y")]:
        client.insert_item({"ItemId": item, "IsHidden": False, "Categories": [category], "Timestamp": "2026-01-01"})
    user = prefix + "-fan7"
    in_x = client.get_recommend(user, category="x", n=10)
    assert in_x, "a and b are in x and fan7 has liked neither"
    assert all(client.get_item(s.id)["Categories"] == ["x"] for s in in_x)
    neighbors = client.get_neighbors(a, n=1)
    assert neighbors == [{"Id": b, "Score": neighbors[0]["Score"]}]
    session = client.session_recommend(
        [{"FeedbackType": "like", "UserId": "", "ItemId": a, "Timestamp": "2026-01-01T00:00:00Z"}], n=3
    )
    assert session[0]["Id"] == b and all(s["Id"] != a for s in session)


def test_the_async_client():
    async def run():
        aclient = AsyncGorse(ENDPOINT, KEY)
        prefix = fresh("py-async")
        user = prefix + "-user"
        assert await aclient.insert_user({"UserId": user}) == {"RowAffected": 1}
        assert (await aclient.get_user(user))["UserId"] == user
        assert await aclient.insert_feedback("read", user, prefix + "-item", "2026-01-01T00:00:00Z") == {"RowAffected": 1}
        assert [f["ItemId"] for f in await aclient.list_feedbacks("read", user)] == [prefix + "-item"]
        assert isinstance(await aclient.get_recommend(user, n=3), list)
        assert (await aclient.get_item(prefix + "-item"))["ItemId"] == prefix + "-item", "feedback created the item"
        assert await aclient.delete_user(user) == {"RowAffected": 1}
        with pytest.raises(GorseException):
            await aclient.get_user(user)

    asyncio.run(run())
