"""The Gorse-compatible API through Vitrina's own client: the same server, Gorse's paths and
fields (the unchanged Gorse SDKs are tested in compat/gorse)."""

from __future__ import annotations

import pytest

import vitrina

T = "2026-01-01T00:00:00Z"


def test_gorse_items_users_and_feedback(client):
    assert client.gorse_items_insert({"ItemId": "g-1", "Categories": ["books"], "Timestamp": T})["RowAffected"] == 1
    many = [{"ItemId": f"g-{i}", "Categories": ["books", "paper"], "Labels": ["x"], "Timestamp": T} for i in (2, 3, 4)]
    assert client.gorse_items_insert_many(many)["RowAffected"] == 3
    assert client.gorse_items_get("g-2")["Labels"] == ["x"]
    client.gorse_items_patch("g-2", {"Comment": "second"})
    assert client.gorse_items_get("g-2")["Comment"] == "second"
    client.gorse_items_add_category("g-1", "gifts")
    assert client.gorse_items_get("g-1")["Categories"] == ["books", "gifts"]
    client.gorse_items_remove_category("g-1", "gifts")
    assert client.gorse_items_get("g-1")["Categories"] == ["books"]
    first = client.gorse_items_page(n=2)
    assert len(first["Items"]) == 2 and first["Cursor"]
    assert [i["ItemId"] for i in client.gorse_items_page(n=10, q="second")["Items"]] == ["g-2"]

    assert client.gorse_users_insert({"UserId": "gu-1", "Labels": ["new"]})["RowAffected"] == 1
    assert client.gorse_users_insert_many([{"UserId": "gu-2"}, {"UserId": "gu-3"}])["RowAffected"] == 2
    client.gorse_users_patch("gu-1", {"Comment": "first"})
    assert client.gorse_users_get("gu-1")["Comment"] == "first"
    assert len(client.gorse_users_page(n=3)["Users"]) == 3

    feedback = [
        {"FeedbackType": "like", "UserId": "gu-1", "ItemId": "g-1", "Timestamp": T},
        {"FeedbackType": "read", "UserId": "gu-1", "ItemId": "g-2", "Timestamp": T},
    ]
    assert client.gorse_feedback_insert(feedback)["RowAffected"] == 2
    assert client.gorse_feedback_upsert([{"FeedbackType": "like", "UserId": "gu-2", "ItemId": "g-3", "Timestamp": T}])["RowAffected"] == 1
    assert {f["ItemId"] for f in client.gorse_feedback_of_user("gu-1")} == {"g-1", "g-2"}
    assert [f["ItemId"] for f in client.gorse_feedback_of_user_typed("gu-1", "like")] == ["g-1"]
    assert [f["FeedbackType"] for f in client.gorse_feedback_between("gu-1", "g-2")] == ["read"]
    assert client.gorse_feedback_one("like", "gu-1", "g-1")["ItemId"] == "g-1"
    page = client.gorse_feedback_page(n=1000)
    assert {"g-1", "g-2", "g-3"} <= {f["ItemId"] for f in page["Feedback"]}
    assert {f["UserId"] for f in client.gorse_feedback_page_typed("like", n=1000)["Feedback"]} >= {"gu-1", "gu-2"}
    assert client.gorse_feedback_delete_one("like", "gu-2", "g-3")["RowAffected"] == 1
    assert client.gorse_feedback_of_user("gu-2") == []
    assert client.gorse_feedback_delete_between("gu-1", "g-2")["RowAffected"] == 1
    assert [f["ItemId"] for f in client.gorse_feedback_of_user("gu-1")] == ["g-1"]
    assert client.gorse_feedback_insert([{"FeedbackType": "like", "UserId": "gu-2", "ItemId": "g-1", "Timestamp": T}])["RowAffected"] == 1
    assert [f["UserId"] for f in client.gorse_feedback_of_item("g-1")] == ["gu-1", "gu-2"]
    assert [f["FeedbackType"] for f in client.gorse_feedback_of_item_typed("g-1", "like")] == ["like", "like"]
    assert client.gorse_users_neighbors("gu-1", n=5) == [{"Id": "gu-2", "Score": 1.0}]

    assert client.gorse_items_delete("g-4")["RowAffected"] == 1
    with pytest.raises(vitrina.VitrinaError) as gone:
        client.gorse_items_get("g-4")
    assert gone.value.status == 404
    assert client.gorse_users_delete("gu-3")["RowAffected"] == 1


def test_gorse_lists(client):
    plain = client.gorse_lists_recommend("user-1", n=3)
    assert 1 <= len(plain) <= 3 and all(isinstance(i, str) for i in plain)
    scored = client.gorse_lists_recommend("user-1", n=3, x_api_version="2")
    assert [s["Id"] for s in scored] == plain
    phones = {"product-1", "product-2"}  # the demo's "Смартфоны"
    assert set(client.gorse_lists_recommend_in("user-1", "Смартфоны", n=5)) <= phones
    neighbors = client.gorse_lists_neighbors("product-1", n=3)
    assert neighbors and "product-1" not in [n["Id"] for n in neighbors]
    assert [n["Id"] for n in client.gorse_lists_neighbors_in("product-1", "Смартфоны", n=3)] == ["product-2"]
    assert len(client.gorse_lists_popular(n=3)) == 3
    assert {p["Id"] for p in client.gorse_lists_popular_in("Смартфоны", n=3)} == phones
    latest = client.gorse_lists_latest(n=100)
    assert {"product-1", "g-1"} <= {i["Id"] for i in latest}
    assert {p["Id"] for p in client.gorse_lists_latest_in("Смартфоны", n=3)} == phones
    liked = [{"FeedbackType": "like", "UserId": "", "ItemId": "product-1", "Timestamp": T}]
    session = client.gorse_lists_session(liked, n=3)
    assert session and "product-1" not in [s["Id"] for s in session]
    assert [s["Id"] for s in client.gorse_lists_session_in("Смартфоны", liked, n=3)] == ["product-2"]
    assert client.gorse_lists_live()["Ready"] is True
    assert client.gorse_lists_ready()["Ready"] is True
