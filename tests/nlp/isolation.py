"""Teaches the tenant-isolation walker the language-understanding path parameters."""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    admin = tenant.admin.headers
    intent = await http.post("/api/v1/nlu/intents", headers=admin, json={
        "name": "tenant_a_secret", "description": "A's private intent", "examples": ["A's first example"]})
    assert intent.status_code == 201, intent.text
    examples = await http.post("/api/v1/nlu/examples", headers=admin,
                               json={"intent": "track_order", "texts": ["A's own way to ask for a parcel"]})
    assert examples.status_code == 201, examples.text
    pattern = await http.post("/api/v1/nlu/order-patterns", headers=admin,
                              json={"name": "a_shop", "regex": r"AS-\d{6}", "marketplace": "a_shop"})
    assert pattern.status_code == 201, pattern.text
    return {"nlu_intent_id": intent.json()["id"], "nlu_example_id": examples.json()["data"][0]["id"],
            "nlu_pattern_id": pattern.json()["id"]}


def snapshot_paths(ids: dict[str, str]) -> list[str]:
    return [f"/api/v1/nlu/intents/{ids['nlu_intent_id']}", f"/api/v1/nlu/intents/{ids['nlu_intent_id']}/examples",
            f"/api/v1/nlu/order-patterns/{ids['nlu_pattern_id']}", "/api/v1/nlu/examples"]
