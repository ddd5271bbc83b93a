"""Dispositions: an agent resolves with a code of the tenant's list; it shows on the conversation, filters the
list, is cleared by a reopen (the timeline keeps it), and a bad code is refused without changing anything."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.core.errors import ValidationFailed
from kefu.runtime import Runtime
from tests.channels.chat import agent_says, bearer, customer_says, start_session, widget_history
from tests.conftest import runtime_on
from tests.factories import TenantFixture, create_tenant
from tests.realtime.wsclient import start_visitor


async def _chat(http: httpx.AsyncClient, tenant: TenantFixture, text: str = "我的快递到哪了？") -> tuple[str, str]:
    visitor = await start_session(http, tenant.inbox_id)
    said = await customer_says(http, visitor["visitor_token"], text)
    await agent_says(http, tenant.agent.headers, said["conversation_id"], "我来查一下")
    return visitor["visitor_token"], said["conversation_id"]


async def _messages(http: httpx.AsyncClient, headers: dict[str, str], conversation_id: str) -> list[dict]:
    response = await http.get(f"/api/v1/conversations/{conversation_id}/messages", headers=headers,
                              params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_default_list_in_both_languages(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    zh = await http.get("/api/v1/dispositions", headers={**tenant.agent.headers, "Accept-Language": "zh-CN"})
    assert zh.status_code == 200, zh.text
    codes = [d["code"] for d in zh.json()["data"]]
    assert codes[0] == "solved" and {"not_solved", "duplicate", "spam", "follow_up"} <= set(codes)
    solved = zh.json()["data"][0]
    assert (solved["label"], solved["label_zh"], solved["label_en"]) == ("已解决", "已解决", "Solved")
    en = await http.get("/api/v1/dispositions", headers={**tenant.agent.headers, "Accept-Language": "en"})
    assert en.json()["data"][0]["label"] == "Solved"


async def test_resolve_with_disposition_then_reopen_keeps_history(http: httpx.AsyncClient,
                                                                  tenant: TenantFixture) -> None:
    token, conversation_id = await _chat(http, tenant)
    resolved = await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers,
                               json={"disposition": "solved"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["disposition"]) == ("resolved", "solved")
    got = await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers)
    assert got.json()["disposition"] == "solved"
    # Agents see it in the timeline as a note; the customer sees only that the conversation was resolved.
    notes = [m for m in await _messages(http, tenant.agent.headers, conversation_id) if m["private"]]
    assert [n["body"] for n in notes] == ["Disposition: Solved (solved)"]
    assert not any("solved)" in m["body"] for m in await widget_history(http, token))

    # Changing it on the resolved conversation (PATCH) is allowed; the list filters on the current one.
    changed = await http.patch(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers,
                               json={"disposition": "follow_up"})
    assert changed.status_code == 200 and changed.json()["disposition"] == "follow_up"
    listed = await http.get("/api/v1/conversations", headers=tenant.agent.headers,
                            params={"disposition": "follow_up"})
    assert [c["id"] for c in listed.json()["data"]] == [conversation_id]
    assert listed.json()["data"][0]["disposition"] == "follow_up"
    none = await http.get("/api/v1/conversations", headers=tenant.agent.headers, params={"disposition": "solved"})
    assert none.json()["data"] == []

    reopened = await http.post(f"/api/v1/conversations/{conversation_id}/reopen", headers=tenant.agent.headers)
    assert (reopened.json()["status"], reopened.json()["disposition"]) == ("open", None)
    gone = await http.get("/api/v1/conversations", headers=tenant.agent.headers, params={"disposition": "follow_up"})
    assert gone.json()["data"] == []
    notes = [m["body"] for m in await _messages(http, tenant.agent.headers, conversation_id) if m["private"]]
    assert notes == ["Disposition: Solved (solved)", "Disposition: Needs follow-up (follow_up)"]

    # Resolved again without a disposition: none. Then set by resolving again with one; the customer writing
    # later starts a new conversation and the resolved one keeps its disposition.
    again = await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers)
    assert (again.json()["status"], again.json()["disposition"]) == ("resolved", None)
    late = await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers,
                           json={"disposition": "duplicate"})
    assert (late.json()["status"], late.json()["disposition"]) == ("resolved", "duplicate")
    said = await customer_says(http, token, "还有一个问题")
    assert said["conversation_id"] != conversation_id
    after = await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers)
    assert (after.json()["status"], after.json()["disposition"]) == ("resolved", "duplicate")


async def test_bad_disposition_is_refused_and_changes_nothing(http: httpx.AsyncClient,
                                                              tenant: TenantFixture) -> None:
    _, conversation_id = await _chat(http, tenant)
    before = (await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers)).json()
    messages_before = await _messages(http, tenant.agent.headers, conversation_id)

    unknown = await http.post(f"/api/v1/conversations/{conversation_id}/resolve",
                              headers={**tenant.agent.headers, "Accept-Language": "zh"},
                              json={"disposition": "happy_customer"})
    assert unknown.status_code == 422
    error = unknown.json()["error"]
    assert error["code"] == "unknown_disposition" and "solved" in error["details"]["allowed"]
    assert "happy_customer" in error["message"] and "处理结果" in error["message"]
    patched = await http.patch(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers,
                               json={"status": "resolved", "disposition": "nope", "priority": 5})
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "unknown_disposition"
    on_open = await http.patch(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers,
                               json={"disposition": "solved"})
    assert on_open.status_code == 422 and on_open.json()["error"]["code"] == "disposition_not_allowed"
    for body in ({"disposition": ""}, {"disposition": "x" * 41}, {"disposition": 7}):
        bad = await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers,
                              json=body)
        assert bad.status_code == 422, body

    after = (await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers)).json()
    assert (after["status"], after["disposition"], after["priority"], after["version"]) == (
        before["status"], None, before["priority"], before["version"])
    assert await _messages(http, tenant.agent.headers, conversation_id) == messages_before


async def test_tenant_codes_are_its_own(http: httpx.AsyncClient, tenant: TenantFixture,
                                        other_tenant: TenantFixture) -> None:
    added = await http.post("/api/v1/dispositions", headers=tenant.admin.headers, json={
        "code": "ticket_created", "label_zh": "已转工单", "label_en": " Ticket   created ", "position": 5})
    assert added.status_code == 201, added.text
    assert added.json() == {"code": "ticket_created", "label": "Ticket created", "label_zh": "已转工单",
                            "label_en": "Ticket created", "position": 5, "active": True, "builtin": False}
    again = await http.post("/api/v1/dispositions", headers=tenant.admin.headers, json={
        "code": "ticket_created", "label_zh": "x", "label_en": "x"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "disposition_code_taken"
    builtin = await http.post("/api/v1/dispositions", headers=tenant.admin.headers, json={
        "code": "solved", "label_zh": "x", "label_en": "x"})
    assert builtin.status_code == 409
    off = await http.patch("/api/v1/dispositions/spam", headers=tenant.admin.headers, json={"active": False})
    assert off.status_code == 200, off.text
    assert (off.json()["builtin"], off.json()["active"], off.json()["label_en"]) == (True, False, "Spam")
    relabelled = await http.patch("/api/v1/dispositions/solved", headers=tenant.admin.headers,
                                  json={"label_en": "Fixed"})
    assert relabelled.json()["label_en"] == "Fixed" and relabelled.json()["label_zh"] == "已解决"
    codes = [d["code"] for d in (await http.get("/api/v1/dispositions", headers=tenant.agent.headers)).json()["data"]]
    assert codes[0] == "ticket_created" and "spam" not in codes
    every = await http.get("/api/v1/dispositions", headers=tenant.agent.headers, params={"include_inactive": "true"})
    assert "spam" in [d["code"] for d in every.json()["data"]]

    _, mine = await _chat(http, tenant)
    ok = await http.post(f"/api/v1/conversations/{mine}/resolve", headers=tenant.agent.headers,
                         json={"disposition": "ticket_created"})
    assert ok.status_code == 200 and ok.json()["disposition"] == "ticket_created"
    _, mine2 = await _chat(http, tenant)
    switched_off = await http.post(f"/api/v1/conversations/{mine2}/resolve", headers=tenant.agent.headers,
                                   json={"disposition": "spam"})
    assert switched_off.status_code == 422 and switched_off.json()["error"]["code"] == "unknown_disposition"

    # Another tenant neither sees nor may use or edit this tenant's code; its own list is untouched.
    other_codes = {d["code"]: d for d in (await http.get("/api/v1/dispositions",
                                                         headers=other_tenant.agent.headers)).json()["data"]}
    assert "ticket_created" not in other_codes and "spam" in other_codes
    assert other_codes["solved"]["label_en"] == "Solved"
    _, theirs = await _chat(http, other_tenant)
    refused = await http.post(f"/api/v1/conversations/{theirs}/resolve", headers=other_tenant.agent.headers,
                              json={"disposition": "ticket_created"})
    assert refused.status_code == 422
    foreign = await http.patch("/api/v1/dispositions/ticket_created", headers=other_tenant.admin.headers,
                               json={"active": False})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "disposition_not_found"

    # Agents may not change the list; codes must be lower_snake; labels must say something.
    agent_try = await http.post("/api/v1/dispositions", headers=tenant.agent.headers,
                                json={"code": "x", "label_zh": "x", "label_en": "x"})
    assert agent_try.status_code == 403
    for body, code in (({"code": "Bad-Code", "label_zh": "x", "label_en": "x"}, "invalid_disposition_code"),
                       ({"code": "blank", "label_zh": "   ", "label_en": "x"}, "validation_error")):
        bad = await http.post("/api/v1/dispositions", headers=tenant.admin.headers, json=body)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == code
    cleared = await http.patch("/api/v1/dispositions/solved", headers=tenant.admin.headers, json={"label_en": None})
    assert cleared.status_code == 422
    listed = await http.get("/api/v1/dispositions", headers=tenant.admin.headers, params={"include_inactive": "true"})
    assert "blank" not in [d["code"] for d in listed.json()["data"]]


async def test_widget_is_not_told_the_disposition(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    token, conversation_id = await _chat(http, tenant)
    before = (await http.get("/api/v1/widget/events", headers=bearer(token))).json()["last_event_id"]
    await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers,
                    json={"disposition": "spam"})
    events = (await http.get("/api/v1/widget/events", headers=bearer(token), params={"after": before})).json()
    text = str(events)
    assert "resolved" in text and "spam" not in text.lower()


@pytest.fixture
async def db_runtime(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def test_disposition_storage_on_both_databases(db_runtime: Runtime) -> None:
    runtime = db_runtime
    tenant = await create_tenant(runtime)
    ids = []
    for _ in range(3):
        visitor = await start_visitor(runtime, tenant.inbox_id)
        from kefu.channels import actions as channel_actions
        from kefu.channels import visitor_tokens

        claims = visitor_tokens.verify(runtime.settings.secret_key, visitor.visitor_token)
        uow = runtime.unit_of_work()
        try:
            message, _ = await channel_actions.do_post_visitor_message(uow, claims=claims, body="hi",
                                                                       client_message_id=None)
            await uow.commit()
        finally:
            await uow.session.close()
        ids.append(message.conversation_id)
    for conversation_id, code in zip(ids, ("solved", "spam", None), strict=True):
        uow = runtime.unit_of_work()
        try:
            conversation = await conversation_service.access_conversation(
                session=uow.session, tenant_id=tenant.id, conversation_id=conversation_id)
            await conversation_actions.do_change_status(uow, conversation=conversation, status="resolved",
                                                        disposition=code)
            await uow.commit()
        finally:
            await uow.session.close()
    uow = runtime.unit_of_work()
    try:
        conversation = await conversation_service.access_conversation(
            session=uow.session, tenant_id=tenant.id, conversation_id=ids[2])
        with pytest.raises(ValidationFailed):
            await conversation_actions.do_change_status(uow, conversation=conversation, status="resolved",
                                                        disposition="no_such_code")
    finally:
        await uow.session.close()
    async with runtime.sessionmaker() as session:
        spam = await conversation_service.list_conversations(session=session, tenant_id=tenant.id,
                                                             disposition="spam")
        assert [c.id for c in spam] == [ids[1]]
        stored = {c.id: c.disposition for c in await conversation_service.list_conversations(
            session=session, tenant_id=tenant.id)}
        assert stored == {ids[0]: "solved", ids[1]: "spam", ids[2]: None}
