"""Teaches the tenant-isolation walker the knowledge base's path parameters."""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    admin = tenant.admin.headers
    entry = await http.post("/api/v1/kb-entries", headers=admin, json={
        "language": "en", "question": "Tenant A's private return policy", "answer": "Only A knows this.",
        "publish": True})
    assert entry.status_code == 201, entry.text
    answer = await http.post("/api/v1/kb-answers", headers=admin, json={"question": "Tenant A's return policy"})
    assert answer.status_code == 201, answer.text
    return {"kb_entry_id": entry.json()["id"], "kb_answer_id": answer.json()["id"]}


def snapshot_paths(ids: dict[str, str]) -> list[str]:
    return [f"/api/v1/kb-entries/{ids['kb_entry_id']}", f"/api/v1/kb-entries/{ids['kb_entry_id']}/versions"]
