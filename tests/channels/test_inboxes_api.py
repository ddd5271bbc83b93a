"""Admins manage inboxes; the identity secret is shown to admins only and can be rotated."""

from __future__ import annotations

import httpx

from tests.channels.chat import bearer, customer_says, identity_token, start_session
from tests.factories import TenantFixture


async def test_admin_manages_inboxes_and_only_admins_see_the_secret(http: httpx.AsyncClient,
                                                                     tenant: TenantFixture) -> None:
    created = await http.post("/api/v1/inboxes", headers=tenant.admin.headers,
                              json={"name": "官网在线客服", "settings": {"color": "#e4393c", "greeting_zh": "您好"}})
    assert created.status_code == 201, created.text
    inbox = created.json()
    assert len(inbox["identity_secret"]) == 64 and inbox["settings"]["color"] == "#e4393c"
    assert inbox["id"].startswith("inb_") and inbox["created_at"].endswith("Z")

    listing = await http.get("/api/v1/inboxes", headers=tenant.agent.headers)
    assert [i["id"] for i in listing.json()["data"]] == [tenant.inbox_id, inbox["id"]]
    for headers in (tenant.agent.headers, tenant.supervisor.headers, tenant.admin.headers):
        assert "identity_secret" not in (await http.get("/api/v1/inboxes", headers=headers)).text
    as_agent = await http.get(f"/api/v1/inboxes/{inbox['id']}", headers=tenant.agent.headers)
    assert as_agent.status_code == 200 and "identity_secret" not in as_agent.json()
    assert inbox["identity_secret"] not in as_agent.text
    as_admin = await http.get(f"/api/v1/inboxes/{inbox['id']}", headers=tenant.admin.headers)
    assert as_admin.json()["identity_secret"] == inbox["identity_secret"]

    for method, path in (("POST", "/api/v1/inboxes"), ("PATCH", f"/api/v1/inboxes/{inbox['id']}"),
                         ("POST", f"/api/v1/inboxes/{inbox['id']}/rotate-secret")):
        refused = await http.request(method, path, headers=tenant.agent.headers, json={"name": "x"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert inbox["identity_secret"] not in refused.text


async def test_update_with_if_match(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    url = f"/api/v1/inboxes/{tenant.inbox_id}"
    version = (await http.get(url, headers=tenant.admin.headers)).json()["version"]
    renamed = await http.patch(url, headers={**tenant.admin.headers, "If-Match": f'"{version}"'},
                               json={"name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["version"] == version + 1
    stale = await http.patch(url, headers={**tenant.admin.headers, "If-Match": f'"{version}"'},
                             json={"name": "Lost update"})
    assert stale.status_code == 409
    assert stale.json()["error"] == {**stale.json()["error"], "code": "version_conflict",
                                     "details": {"current_version": version + 1}}
    assert (await http.get(url, headers=tenant.admin.headers)).json()["name"] == "Renamed"


async def test_rotating_the_secret_invalidates_old_identity_tokens(http: httpx.AsyncClient,
                                                                   tenant: TenantFixture) -> None:
    old_secret = tenant.inbox_secret
    rotated = await http.post(f"/api/v1/inboxes/{tenant.inbox_id}/rotate-secret", headers=tenant.admin.headers)
    assert rotated.status_code == 200
    new_secret = rotated.json()["identity_secret"]
    assert new_secret != old_secret
    old = await http.post("/api/v1/widget/sessions",
                          json={"inbox_id": tenant.inbox_id, "identity_token": identity_token(old_secret, "c-1")})
    assert old.status_code == 401 and old.json()["error"]["code"] == "invalid_identity_token"
    await start_session(http, tenant.inbox_id, identity_token=identity_token(new_secret, "c-1"))
    audit = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers,
                            params={"action": "inbox.secret_rotated"})).json()["data"]
    assert [(e["actor_id"], e["target_id"]) for e in audit] == [(tenant.admin.id, tenant.inbox_id)]


async def test_a_disabled_inbox_takes_no_new_sessions_or_messages(http: httpx.AsyncClient,
                                                                  tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    await customer_says(http, session["visitor_token"], "before")
    disabled = await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers,
                                json={"is_active": False})
    assert disabled.json()["is_active"] is False
    refused = await http.post("/api/v1/widget/sessions", json={"inbox_id": tenant.inbox_id})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "inbox_not_found"
    late = await http.post("/api/v1/widget/messages", headers=bearer(session["visitor_token"]),
                           json={"body": "after", "client_message_id": "late-1"})
    assert late.status_code == 404 and late.json()["error"]["code"] == "inbox_not_found"
