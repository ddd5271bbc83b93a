"""A user of tenant B gets exactly the answer for a missing id on every object of tenant A."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.channels.chat import customer_says, start_session
from tests.factories import TenantFixture

MISSING = {"inb": "inb_01jd0000000000000000000000", "ct": "ct_01jd0000000000000000000000",
           "cid": "cid_01jd0000000000000000000000", "conv": "conv_01jd0000000000000000000000",
           "cmg": "cmg_01jd0000000000000000000000"}

# (method, path template, JSON body); {inb}, {ct}, {cid}, {conv}, {cmg} are tenant A's ids.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/inboxes/{inb}", None),
    ("PATCH", "/api/v1/inboxes/{inb}", {"name": "stolen"}),
    ("POST", "/api/v1/inboxes/{inb}/rotate-secret", None),
    ("GET", "/api/v1/contacts/{ct}", None),
    ("PATCH", "/api/v1/contacts/{ct}", {"name": "stolen"}),
    ("POST", "/api/v1/contacts/{ct}/identities", {"kind": "email", "value": "thief@example.com"}),
    ("DELETE", "/api/v1/contacts/{ct}/identities/{cid}", None),
    ("GET", "/api/v1/contacts/{ct}/conversations", None),
    ("GET", "/api/v1/contacts/{ct}/export", None),
    ("POST", "/api/v1/contacts/{ct}/merges", {"source_contact_id": "{ct}"}),
    ("POST", "/api/v1/contacts/{own_ct}/merges", {"source_contact_id": "{ct}"}),
    ("GET", "/api/v1/contact-merges/{cmg}", None),
    ("POST", "/api/v1/contact-merges/{cmg}/revert", None),
    ("GET", "/api/v1/conversations/{conv}", None),
    ("PATCH", "/api/v1/conversations/{conv}", {"status": "closed"}),
    ("POST", "/api/v1/conversations/{conv}/resolve", None),
    ("POST", "/api/v1/conversations/{conv}/reopen", None),
    ("GET", "/api/v1/conversations/{conv}/messages", None),
    ("POST", "/api/v1/conversations/{conv}/messages", {"body": "hello from B"}),
    ("PUT", "/api/v1/conversations/{conv}/tags/stolen", None),
    ("DELETE", "/api/v1/conversations/{conv}/tags/vip", None),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.fixture
async def tenant_a_objects(http: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, str]:
    first = await start_session(http, tenant.inbox_id)
    message = await customer_says(http, first["visitor_token"], "tenant A's secret order")
    second = await start_session(http, tenant.inbox_id)
    await customer_says(http, second["visitor_token"], "another")
    merge = await http.post(f"/api/v1/contacts/{first['contact_id']}/merges", headers=tenant.agent.headers,
                            json={"source_contact_id": second["contact_id"]})
    contact = (await http.get(f"/api/v1/contacts/{first['contact_id']}", headers=tenant.agent.headers)).json()
    await http.put(f"/api/v1/conversations/{message['conversation_id']}/tags/vip", headers=tenant.agent.headers)
    return {"inb": tenant.inbox_id, "ct": first["contact_id"], "cid": contact["identities"][0]["id"],
            "conv": message["conversation_id"], "cmg": merge.json()["id"]}


async def test_other_tenants_objects_look_missing(http: httpx.AsyncClient, tenant: TenantFixture,
                                                  other_tenant: TenantFixture,
                                                  tenant_a_objects: dict[str, str]) -> None:
    # One tenant pair walks every endpoint: creating tenants (argon2 hashes) dominates the cost.
    own = await http.post("/api/v1/contacts", headers=other_tenant.admin.headers, json={"name": "B's own"})
    before = await http.get(f"/api/v1/conversations/{tenant_a_objects['conv']}", headers=tenant.admin.headers)
    inbox_before = await http.get(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers)
    leaks = []
    for method, template, body in ENDPOINTS:
        answers = []
        for ids in (tenant_a_objects, MISSING):
            ids = {**ids, "own_ct": own.json()["id"]}
            response = await http.request(method, _fill(template, ids), headers=other_tenant.admin.headers,
                                          json=_fill(body, ids))
            error = response.json().get("error", {})
            answers.append((response.status_code, {k: v for k, v in error.items() if k != "request_id"}))
        if answers[0] != answers[1] or answers[0][0] != 404:
            leaks.append((method, template, answers))
    assert leaks == []
    after = await http.get(f"/api/v1/conversations/{tenant_a_objects['conv']}", headers=tenant.admin.headers)
    assert after.json() == before.json()
    inbox_after = await http.get(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers)
    assert inbox_after.json() == inbox_before.json()
