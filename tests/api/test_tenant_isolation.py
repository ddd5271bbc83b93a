"""Tenant isolation, walked over every endpoint: a user of tenant B gets, for each of tenant A's objects,
exactly the answer a missing id gets (404, same code, same message), and tenant A's data does not change.

The operations come from the OpenAPI document, so a new endpoint with an id in its path is walked without
editing this test; an id parameter this test does not know fails it until a domain teaches it.

Domains teach it without touching this file: a module ``tests/<domain>/isolation.py`` defines
``async def objects_of_a(http, tenant, ids) -> dict[str, str]`` (creates tenant A's objects of that domain and
returns their ids by path parameter name) and ``def snapshot_paths(ids) -> list[str]`` (GETs whose answers must
not change while tenant B walks the API).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import httpx

from tests.channels.chat import customer_says, start_session
from tests.factories import TenantFixture

DOMAIN_MODULES = sorted(
    f"tests.{path.parent.name}.isolation" for path in Path(__file__).resolve().parents[1].glob("*/isolation.py"))


def _domains() -> list[Any]:
    return [importlib.import_module(name) for name in DOMAIN_MODULES]


def _missing(real_id: str) -> str:
    prefix = real_id.split("_", 1)[0]
    return f"{prefix}_01jd0000000000000000000000"


def _example_body(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not schema:
        return None
    component = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    examples = component.get("examples") or []
    assert examples, f"request model {schema['$ref']} has no example (API style asks for one)"
    return dict(examples[0])


async def _objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, str]:
    admin = tenant.admin.headers
    first = await start_session(http, tenant.inbox_id)
    message = await customer_says(http, first["visitor_token"], "tenant A's private order question")
    second = await start_session(http, tenant.inbox_id)
    await customer_says(http, second["visitor_token"], "another customer")
    merge = await http.post(f"/api/v1/contacts/{first['contact_id']}/merges", headers=admin,
                            json={"source_contact_id": second["contact_id"]})
    assert merge.status_code == 201, merge.text
    third = await http.post("/api/v1/contacts", headers=admin, json={"name": "A's third contact"})
    contact = (await http.get(f"/api/v1/contacts/{first['contact_id']}", headers=admin)).json()
    assert (await http.put(f"/api/v1/conversations/{message['conversation_id']}/tags/vip", headers=admin)).is_success
    key = await http.post("/api/v1/api-keys", headers=admin, json={"name": "A's key", "scopes": ["users:read"]})
    assert key.status_code == 201, key.text
    ids = {"user_id": tenant.agent.id, "key_id": key.json()["id"], "inbox_id": tenant.inbox_id,
           "contact_id": first["contact_id"], "identity_id": contact["identities"][0]["id"],
           "merge_id": merge.json()["id"], "conversation_id": message["conversation_id"], "tag": "vip",
           "other_contact_id": third.json()["id"]}
    for domain in _domains():
        ids.update(await domain.objects_of_a(http, tenant, dict(ids)))
    return ids


async def _snapshot(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, Any]:
    admin = tenant.admin.headers
    paths = [f"/api/v1/users/{ids['user_id']}", f"/api/v1/api-keys/{ids['key_id']}",
             f"/api/v1/inboxes/{ids['inbox_id']}", f"/api/v1/contacts/{ids['contact_id']}",
             f"/api/v1/contacts/{ids['other_contact_id']}", f"/api/v1/contact-merges/{ids['merge_id']}",
             f"/api/v1/conversations/{ids['conversation_id']}",
             f"/api/v1/conversations/{ids['conversation_id']}/messages"]
    for domain in _domains():
        paths += domain.snapshot_paths(ids)
    snapshot = {}
    for path in paths:
        response = await http.get(path, headers=admin)
        assert response.status_code == 200, (path, response.text)
        snapshot[path] = response.json()
    return snapshot


async def test_every_endpoint_treats_other_tenants_ids_as_missing(
    http: httpx.AsyncClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    spec = (await http.get("/openapi.json")).json()
    ids = await _objects_of_a(http, tenant)
    before = await _snapshot(http, tenant, ids)
    walked, leaks = [], []
    for path, operations in spec["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        if not params:
            continue
        for method, op in operations.items():
            unknown = [p for p in params if p not in ids]
            assert not unknown, f"{method.upper()} {path}: teach this test the parameter(s) {unknown}"
            body = _example_body(spec, op)
            if body and "source_contact_id" in body:
                body["source_contact_id"] = ids["other_contact_id"]
            answers = []
            verbatim = {"tag", *(k for d in _domains() for k in getattr(d, "VERBATIM_PARAMS", ()))}
            for fill in (ids, {k: (v if k in verbatim else _missing(v)) for k, v in ids.items()}):
                response = await http.request(method.upper(), path.format(**{p: fill[p] for p in params}),
                                              headers=other_tenant.admin.headers, json=body)
                error = response.json().get("error", {}) if response.content else {}
                answers.append((response.status_code, {k: v for k, v in error.items() if k != "request_id"}))
            walked.append(f"{method.upper()} {path}")
            if answers[0][0] != 404 or answers[0] != answers[1]:
                leaks.append((method.upper(), path, answers))
    assert leaks == []
    assert len(walked) >= 25  # every id-taking operation of this release, at least
    assert await _snapshot(http, tenant, ids) == before


async def test_ids_of_another_tenant_in_bodies_and_filters_find_nothing(
    http: httpx.AsyncClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    ids = await _objects_of_a(http, tenant)
    b = other_tenant.admin.headers
    own_contact = (await http.post("/api/v1/contacts", headers=b, json={"name": "B's contact"})).json()
    merge = await http.post(f"/api/v1/contacts/{own_contact['id']}/merges", headers=b,
                            json={"source_contact_id": ids["contact_id"]})
    assert merge.status_code == 404
    listed = await http.get("/api/v1/conversations", headers=b, params={"contact_id": ids["contact_id"]})
    assert listed.status_code == 200 and listed.json()["data"] == []
    searched = await http.get("/api/v1/contacts", headers=b, params={"q": "tenant A"})
    assert searched.json()["data"] == [] or all(c["id"] != ids["contact_id"] for c in searched.json()["data"])
    visitor = await start_session(http, other_tenant.inbox_id)
    said = await customer_says(http, visitor["visitor_token"], "hello from B's customer")
    assign = await http.patch(f"/api/v1/conversations/{said['conversation_id']}", headers=b,
                              json={"assignee_id": ids["user_id"]})
    assert assign.status_code == 422 and assign.json()["error"]["code"] == "invalid_assignee"
    audit = await http.get("/api/v1/audit-entries", headers=b, params={"target_id": ids["contact_id"]})
    assert audit.status_code == 200 and audit.json()["data"] == []
