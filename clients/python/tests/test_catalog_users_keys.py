"""The catalogue, users, keys and health through `Client` against the live server."""

from __future__ import annotations

import pytest

import vitrina
from conftest import record


def test_a_product_is_created_changed_replaced_listed_and_deleted(client):
    created = client.catalog_create(
        {"id": "sku-py-1", "name": "Desk lamp", "category": "lighting", "price": "29.90", "attributes": {"color": "black"}}
    )
    assert created["product"]["id"] == "sku-py-1"
    with pytest.raises(vitrina.VitrinaError) as twice:
        client.catalog_create({"id": "sku-py-1", "name": "Desk lamp", "category": "lighting", "price": "29.90"})
    assert twice.value.status == 409

    patched = client.catalog_patch("sku-py-1", {"inStock": False})
    assert patched["product"]["inStock"] is False and patched["product"]["name"] == "Desk lamp"
    replaced = client.catalog_put("sku-py-1", {"name": "Desk lamp II", "category": "lighting", "price": "24.90"})
    assert replaced["product"]["name"] == "Desk lamp II" and replaced["product"]["attributes"] == {}
    assert client.catalog_get("sku-py-1")["product"]["price"] == "24.90"
    # A product no list has shown yet: nothing counted, over the days asked for.
    exposure = client.catalog_exposure("sku-py-1", days=7)
    assert (exposure["impressions"], exposure["clicks"], exposure["days"]) == (0, 0, 7)

    bulk = client.catalog_bulk(
        {"products": [{"id": f"sku-py-{i}", "name": f"Shade {i}", "category": "lighting", "price": "9.90"} for i in (2, 3)]}
    )
    assert bulk["upserted"] == 2
    page = client.catalog_list(category="lighting", limit=10)
    assert sorted(p["id"] for p in page["products"]) == ["sku-py-1", "sku-py-2", "sku-py-3"]
    assert page["total"] == 3

    client.catalog_delete("sku-py-3")
    with pytest.raises(vitrina.VitrinaError) as gone:
        client.catalog_get("sku-py-3")
    assert gone.value.status == 404


def test_a_user_is_stored_read_listed_exported_and_erased(client):
    stored = client.users_upsert({"id": "py-user", "name": "Ada", "attributes": {"segment": "returning"}})
    assert stored["user"]["attributes"] == {"segment": "returning"}
    client.activity_track({"userId": "py-user", "productId": "product-1", "activityType": "view"})
    assert client.users_get("py-user")["user"]["name"] == "Ada"
    listed = client.users_list(limit=100)
    assert "py-user" in [u["id"] for u in listed["users"]] and listed["total"] >= 6

    export = client.users_export("py-user")
    assert export["user"]["id"] == "py-user" and [e["productId"] for e in export["events"]] == ["product-1"]

    client.users_delete("py-user")
    with pytest.raises(vitrina.VitrinaError) as erased:
        client.users_export("py-user")
    assert erased.value.status == 404
    assert client.recommendations_history("py-user")["count"] == 0


def test_keys_are_created_with_a_scope_listed_and_revoked(server, client):
    made = client.keys_create({"scope": "read", "name": "storefront"})
    key_id = made["apiKey"]["id"]
    assert made["key"] and key_id in [k["id"] for k in client.keys_list()["keys"]]
    with vitrina.Client(server, api_key=made["key"], on_request=record, retry=vitrina.NO_RETRY) as reader:
        assert reader.recommendations_popular(limit=2)["success"]
        with pytest.raises(vitrina.VitrinaError) as scope:
            reader.activity_track({"userId": "u", "productId": "product-1", "activityType": "view"})
        assert (scope.value.status, scope.value.error) == (403, "forbidden")
        client.keys_revoke(key_id)
        with pytest.raises(vitrina.VitrinaError) as revoked:
            reader.recommendations_popular(limit=2)
        assert revoked.value.status == 401


def test_every_health_endpoint_reports_healthy(client):
    overall = client.health()
    assert overall["status"] == "healthy"
    assert {c["service"] for c in overall["checks"]} >= {"activity", "engine", "recommendations", "training"}
    for service, call in [
        ("activity", client.health_activity),
        ("engine", client.health_engine),
        ("recommendations", client.health_recommendations),
        ("training", client.health_training),
    ]:
        answer = call()
        assert answer["status"] == "healthy" and [c["service"] for c in answer["checks"]] == [service]
    state = client.health_state()
    assert state["appliedSequence"] >= state["events"] > 0 and len(state["digest"]) == 16
