"""Teaches the tenant-isolation walker (tests/api/test_tenant_isolation.py) this folder's ids."""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture
from tests.workspace.files import png


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    admin = tenant.admin.headers
    upload = await http.post("/api/v1/attachments", params={"filename": "a.png"}, content=png(),
                             headers={**admin, "Content-Type": "application/octet-stream"})
    assert upload.status_code == 201, upload.text
    canned = await http.post("/api/v1/canned-responses", headers=admin, json={
        "scope": "shared", "shortcut": "a-secret", "title": "A's text", "body_en": "tenant A only"})
    assert canned.status_code == 201, canned.text
    code = await http.post("/api/v1/dispositions", headers=admin, json={
        "code": "a_secret_outcome", "label_zh": "甲店专用", "label_en": "Tenant A only"})
    assert code.status_code == 201, code.text
    return {"attachment_id": upload.json()["id"], "canned_response_id": canned.json()["id"],
            "disposition_code": code.json()["code"]}


def snapshot_paths(ids: dict[str, str]) -> list[str]:
    # Attachment metadata carries a freshly signed URL, so it is compared by its content instead.
    return [f"/api/v1/canned-responses/{ids['canned_response_id']}",
            f"/api/v1/contacts/{ids['contact_id']}/timeline",
            f"/api/v1/conversations/{ids['conversation_id']}/csat-ratings",
            "/api/v1/dispositions?include_inactive=true"]
