"""Agents work conversations over REST: lists and filters, edits guarded by If-Match, status, tags."""

from __future__ import annotations

import uuid

import httpx

from kefu.core.i18n import translate
from kefu.runtime import Runtime
from tests.channels.chat import bearer, customer_says, start_session, widget_history
from tests.factories import TenantFixture, create_user


async def _conversation(http: httpx.AsyncClient, tenant: TenantFixture, *, lang: str = "en") -> tuple[dict, dict]:
    """A new visitor's conversation with one customer message; returns (widget session, conversation)."""
    session = await start_session(http, tenant.inbox_id)
    response = await http.post("/api/v1/widget/messages", headers={**bearer(session["visitor_token"]),
                                                                    "Accept-Language": lang},
                               json={"body": "hello", "client_message_id": uuid.uuid4().hex})
    assert response.status_code == 201
    conversation = (await http.get(f"/api/v1/conversations/{response.json()['conversation_id']}",
                                   headers=tenant.agent.headers)).json()
    return session, conversation


async def test_list_filters_and_cursor_pages(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    _, first = await _conversation(http, tenant)
    second_session, second = await _conversation(http, tenant)
    _, third = await _conversation(http, tenant)
    headers = tenant.agent.headers
    await http.patch(f"/api/v1/conversations/{first['id']}", headers=headers, json={"assignee_id": tenant.agent.id})
    await http.patch(f"/api/v1/conversations/{third['id']}", headers=headers, json={"status": "pending"})

    async def ids(**params: object) -> list[str]:
        response = await http.get("/api/v1/conversations", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["data"]]

    assert await ids() == [first["id"], second["id"], third["id"]]
    assert await ids(order="desc") == [third["id"], second["id"], first["id"]]
    assert await ids(assignee_id="me") == [first["id"]]
    assert await ids(assignee_id=tenant.agent.id) == [first["id"]]
    assert await ids(assignee_id="none") == [second["id"], third["id"]]
    assert await ids(status="pending") == [third["id"]]
    assert await ids(contact_id=second_session["contact_id"]) == [second["id"]]
    assert await ids(inbox_id=tenant.inbox_id, status="open", assignee_id="none") == [second["id"]]
    assert await ids(inbox_id="inb_01jd0000000000000000000000") == []

    page = (await http.get("/api/v1/conversations", headers=headers, params={"limit": 2})).json()
    assert [c["id"] for c in page["data"]] == [first["id"], second["id"]] and page["next_cursor"]
    rest = (await http.get("/api/v1/conversations", headers=headers,
                           params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [c["id"] for c in rest["data"]] == [third["id"]] and rest["next_cursor"] is None
    bad = await http.get("/api/v1/conversations", headers=headers, params={"cursor": "!!"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    assert (await http.get("/api/v1/conversations", params={"status": "open"})).status_code == 401


async def test_stale_if_match_is_refused_with_the_current_version(http: httpx.AsyncClient,
                                                                  tenant: TenantFixture) -> None:
    _, conversation = await _conversation(http, tenant)
    url = f"/api/v1/conversations/{conversation['id']}"
    got = await http.get(url, headers=tenant.agent.headers)
    version = got.json()["version"]
    assert got.headers["etag"] == f'"{version}"'

    first = await http.patch(url, headers={**tenant.agent.headers, "If-Match": f'"{version}"'},
                             json={"priority": 5, "subject": "退款"})
    assert first.status_code == 200 and first.json()["version"] > version
    assert first.headers["etag"] == f'"{first.json()["version"]}"'
    stale = await http.patch(url, headers={**tenant.supervisor.headers, "If-Match": f'"{version}"'},
                             json={"priority": 1})
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "version_conflict" and error["details"] == {"current_version": first.json()["version"]}
    assert (await http.get(url, headers=tenant.agent.headers)).json()["priority"] == 5
    garbage = await http.patch(url, headers={**tenant.agent.headers, "If-Match": "yesterday"}, json={"priority": 1})
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_if_match"
    stale_resolve = await http.post(f"{url}/resolve", headers={**tenant.agent.headers, "If-Match": str(version)})
    assert stale_resolve.status_code == 409


async def test_status_rules_and_system_messages_in_the_customers_language(http: httpx.AsyncClient,
                                                                         tenant: TenantFixture) -> None:
    session, conversation = await _conversation(http, tenant, lang="zh-CN")
    url = f"/api/v1/conversations/{conversation['id']}"
    caught_up = (await http.get("/api/v1/widget/events", headers=bearer(session["visitor_token"]))).json()

    resolved = await http.post(f"{url}/resolve", headers=tenant.agent.headers)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    again = await http.post(f"{url}/resolve", headers=tenant.agent.headers)
    assert again.json()["version"] == resolved.json()["version"]  # no-op, no second system message
    reopened = await http.post(f"{url}/reopen", headers=tenant.agent.headers)
    assert reopened.json()["status"] == "open" and reopened.json()["resolved_at"] is None

    history = await widget_history(http, session["visitor_token"])
    assert [(m["sender_kind"], m["body"]) for m in history] == [
        ("customer", "hello"),
        ("system", translate("system.conversation_resolved", "zh")),
        ("system", translate("system.conversation_reopened", "zh")),
    ]
    events = (await http.get("/api/v1/widget/events", headers=bearer(session["visitor_token"]),
                             params={"after": caught_up["last_event_id"]})).json()["events"]
    statuses = [e["data"]["conversation"]["status"] for e in events if e["type"] == "conversation.updated"]
    assert statuses == ["resolved", "open"]

    closed = await http.patch(url, headers=tenant.agent.headers, json={"status": "closed"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    for attempt in (http.post(f"{url}/reopen", headers=tenant.agent.headers),
                    http.patch(url, headers=tenant.agent.headers, json={"status": "open"})):
        refused = await attempt
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "invalid_status_transition"
        assert refused.json()["error"]["details"] == {"from_status": "closed", "to_status": "open"}
    late = await http.post(f"{url}/messages", headers=tenant.agent.headers, json={"body": "anyone?"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "conversation_closed"
    # A customer writing after the close starts a new conversation instead.
    followup = await customer_says(http, session["visitor_token"], "one more thing")
    assert followup["conversation_id"] != conversation["id"]


async def test_assignee_must_be_an_active_user_of_the_tenant(http: httpx.AsyncClient, tenant: TenantFixture,
                                                             other_tenant: TenantFixture, runtime: Runtime) -> None:
    _, conversation = await _conversation(http, tenant)
    url = f"/api/v1/conversations/{conversation['id']}"
    for assignee in (other_tenant.agent.id, "usr_01jd0000000000000000000000", "nobody"):
        refused = await http.patch(url, headers=tenant.supervisor.headers, json={"assignee_id": assignee})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_assignee", assignee
    colleague = await create_user(runtime, tenant.id, "agent")
    assigned = await http.patch(url, headers=tenant.supervisor.headers, json={"assignee_id": colleague.id})
    assert assigned.status_code == 200
    assert (assigned.json()["assignee_id"], assigned.json()["owner_kind"]) == (colleague.id, "agent")
    released = await http.patch(url, headers=tenant.supervisor.headers, json={"assignee_id": None})
    assert (released.json()["assignee_id"], released.json()["owner_kind"]) == (None, "queue")


async def test_agent_messages_are_idempotent_by_client_message_id(http: httpx.AsyncClient,
                                                                  tenant: TenantFixture) -> None:
    session, conversation = await _conversation(http, tenant)
    url = f"/api/v1/conversations/{conversation['id']}/messages"
    body = {"body": "已为您登记退款", "client_message_id": "agent-reply-1"}
    first = await http.post(url, headers=tenant.agent.headers, json=body)
    replay = await http.post(url, headers=tenant.agent.headers, json=body)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json() == replay.json()
    assert [m["body"] for m in await widget_history(http, session["visitor_token"])] == ["hello", "已为您登记退款"]
    empty = await http.post(url, headers=tenant.agent.headers, json={"body": "   "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_message"


async def test_tags(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    _, conversation = await _conversation(http, tenant)
    url = f"/api/v1/conversations/{conversation['id']}"
    tagged = await http.put(f"{url}/tags/VIP", headers=tenant.agent.headers)
    assert tagged.status_code == 200 and tagged.json()["tags"] == ["vip"]
    same = await http.put(f"{url}/tags/vip", headers=tenant.agent.headers)
    assert same.json()["tags"] == ["vip"] and same.json()["version"] == tagged.json()["version"]
    both = await http.put(f"{url}/tags/退款", headers=tenant.agent.headers)
    assert both.json()["tags"] == sorted(["vip", "退款"])
    assert (await http.get(url, headers=tenant.agent.headers)).json()["tags"] == sorted(["vip", "退款"])
    listed = (await http.get("/api/v1/conversations", headers=tenant.agent.headers)).json()["data"]
    assert listed[0]["tags"] == sorted(["vip", "退款"])
    removed = await http.delete(f"{url}/tags/Vip", headers=tenant.agent.headers)
    assert removed.status_code == 200 and removed.json()["tags"] == ["退款"]
    assert (await http.delete(f"{url}/tags/vip", headers=tenant.agent.headers)).json()["tags"] == ["退款"]
    too_long = await http.put(f"{url}/tags/{'x' * 65}", headers=tenant.agent.headers)
    assert too_long.status_code == 422
