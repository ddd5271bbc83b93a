"""Contacts over REST: create, search, identities, If-Match, merge and revert, timeline and export."""

from __future__ import annotations

import uuid

import httpx

from tests.channels.chat import agent_says, all_contacts, customer_says, identity_token, start_session
from tests.factories import TenantFixture


async def _create(http: httpx.AsyncClient, tenant: TenantFixture, **fields: object) -> dict:
    response = await http.post("/api/v1/contacts", headers=tenant.agent.headers, json=fields)
    assert response.status_code == 201, response.text
    return response.json()


async def _visitor_contact(http: httpx.AsyncClient, tenant: TenantFixture, text: str) -> tuple[dict, dict]:
    """A widget visitor who wrote ``text``; returns (session, conversation)."""
    session = await start_session(http, tenant.inbox_id)
    message = await customer_says(http, session["visitor_token"], text)
    conversation = (await http.get(f"/api/v1/conversations/{message['conversation_id']}",
                                   headers=tenant.agent.headers)).json()
    return session, conversation


async def test_create_search_and_filter(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    wang = await _create(http, tenant, name="王小明", phone="+8613800138000", vip_level=3,
                         identities=[{"kind": "external", "value": "shop-1001", "verified": True},
                                     {"kind": "email", "value": "XiaoMing@Example.com"}])
    li = await _create(http, tenant, name="Li Lei", email="lilei@example.com")
    assert sorted((i["kind"], i["value"]) for i in wang["identities"]) == [
        ("email", "xiaoming@example.com"), ("external", "shop-1001")]
    assert wang["version"] == 1 and wang["merged_into_id"] is None

    async def found(**params: object) -> list[str]:
        return [c["id"] for c in await all_contacts(http, tenant.agent.headers, **params)]

    assert await found() == [wang["id"], li["id"]]
    assert await found(q="小明") == [wang["id"]]
    assert await found(q="13800138000") == [wang["id"]]
    assert await found(q="shop-10") == [wang["id"]]  # identity value
    assert await found(q="LILEI@") == [li["id"]]  # email, case-insensitive
    assert await found(q="%") == []  # wildcards are literal
    assert await found(vip_level=3) == [wang["id"]]
    page = (await http.get("/api/v1/contacts", headers=tenant.agent.headers, params={"limit": 1})).json()
    assert [c["id"] for c in page["data"]] == [wang["id"]]
    rest = (await http.get("/api/v1/contacts", headers=tenant.agent.headers,
                           params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert [c["id"] for c in rest["data"]] == [li["id"]] and rest["next_cursor"] is None


async def test_identities_belong_to_one_contact(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    owner = await _create(http, tenant, name="Owner", identities=[{"kind": "phone", "value": "+8613900000001"}])
    other = await _create(http, tenant, name="Other")
    taken = await http.post(f"/api/v1/contacts/{other['id']}/identities", headers=tenant.agent.headers,
                            json={"kind": "phone", "value": "+8613900000001"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "identity_taken"
    dup = await http.post("/api/v1/contacts", headers=tenant.agent.headers,
                          json={"name": "Dup", "identities": [{"kind": "phone", "value": "+8613900000001"}]})
    assert dup.status_code == 409 and [c["name"] for c in await all_contacts(http, tenant.agent.headers)] == [
        "Owner", "Other"]
    again = await http.post(f"/api/v1/contacts/{owner['id']}/identities", headers=tenant.agent.headers,
                            json={"kind": "phone", "value": " +8613900000001 "})
    assert again.status_code == 200 and again.json()["id"] == owner["identities"][0]["id"]

    added = await http.post(f"/api/v1/contacts/{other['id']}/identities", headers=tenant.agent.headers,
                            json={"kind": "wechat_openid", "value": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"})
    assert added.status_code == 201
    gone = await http.delete(f"/api/v1/contacts/{other['id']}/identities/{added.json()['id']}",
                             headers=tenant.agent.headers)
    assert gone.status_code == 204
    assert (await http.get(f"/api/v1/contacts/{other['id']}", headers=tenant.agent.headers)).json()["identities"] == []
    missing = await http.delete(f"/api/v1/contacts/{other['id']}/identities/{added.json()['id']}",
                                headers=tenant.agent.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "identity_not_found"
    foreign = await http.delete(f"/api/v1/contacts/{other['id']}/identities/{owner['identities'][0]['id']}",
                                headers=tenant.agent.headers)
    assert foreign.status_code == 404


async def test_messages_from_a_known_identity_join_that_contact(http: httpx.AsyncClient,
                                                                tenant: TenantFixture) -> None:
    crm = await _create(http, tenant, name="张三",
                        identities=[{"kind": "external", "value": "crm-42", "verified": True}])
    session = await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, "crm-42"))
    assert session["contact_id"] == crm["id"]
    await customer_says(http, session["visitor_token"], "我是张三")
    timeline = (await http.get(f"/api/v1/contacts/{crm['id']}/conversations", headers=tenant.agent.headers)).json()
    assert len(timeline["data"]) == 1 and timeline["data"][0]["last_message_preview"] == "我是张三"


async def test_update_with_if_match(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    contact = await _create(http, tenant, name="Before")
    url = f"/api/v1/contacts/{contact['id']}"
    updated = await http.patch(url, headers={**tenant.agent.headers, "If-Match": '"1"'},
                               json={"name": "After", "vip_level": 2, "attributes": {"city": "杭州"}})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert updated.json()["attributes"] == {"city": "杭州"} and updated.headers["etag"] == '"2"'
    stale = await http.patch(url, headers={**tenant.agent.headers, "If-Match": '"1"'}, json={"name": "Lost"})
    assert stale.status_code == 409 and stale.json()["error"]["details"] == {"current_version": 2}
    assert (await http.get(url, headers=tenant.agent.headers)).json()["name"] == "After"
    unchanged = await http.patch(url, headers=tenant.agent.headers, json={"name": "After"})
    assert unchanged.json()["version"] == 2


async def test_merge_then_revert_restores_the_previous_state(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    source_session, source_conversation = await _visitor_contact(http, tenant, "anonymous question")
    target_session, target_conversation = await _visitor_contact(http, tenant, "known customer")
    source_id, target_id = source_session["contact_id"], target_session["contact_id"]
    await http.post(f"/api/v1/contacts/{source_id}/identities", headers=tenant.agent.headers,
                    json={"kind": "email", "value": "same.person@example.com"})
    headers = tenant.agent.headers

    async def state() -> dict:
        out = {}
        for cid in (source_id, target_id):
            contact = (await http.get(f"/api/v1/contacts/{cid}", headers=headers)).json()
            timeline = (await http.get(f"/api/v1/contacts/{cid}/conversations", headers=headers)).json()["data"]
            out[cid] = (contact["merged_into_id"], sorted(i["id"] for i in contact["identities"]),
                        sorted(c["id"] for c in timeline))
        return out

    before = await state()
    merged = await http.post(f"/api/v1/contacts/{target_id}/merges", headers=headers,
                             json={"source_contact_id": source_id})
    assert merged.status_code == 201, merged.text
    merge = merged.json()
    assert merge["moved_conversation_ids"] == [source_conversation["id"]]
    assert sorted(merge["moved_identity_ids"]) == before[source_id][1]
    during = await state()
    assert during[source_id] == (target_id, [], [])
    assert during[target_id][2] == sorted([source_conversation["id"], target_conversation["id"]])
    # Customer-side: the source visitor's later message joins the target's timeline.
    await customer_says(http, source_session["visitor_token"], "after merge")
    assert (await http.get(f"/api/v1/conversations/{source_conversation['id']}", headers=headers)).json()[
        "contact_id"] == target_id

    again = await http.post(f"/api/v1/contacts/{target_id}/merges", headers=headers,
                            json={"source_contact_id": source_id})
    assert again.status_code == 409 and again.json()["error"]["code"] == "contact_merged"
    itself = await http.post(f"/api/v1/contacts/{target_id}/merges", headers=headers,
                             json={"source_contact_id": target_id})
    assert itself.status_code == 422 and itself.json()["error"]["code"] == "merge_same_contact"
    frozen = await http.patch(f"/api/v1/contacts/{source_id}", headers=headers, json={"name": "x"})
    assert frozen.status_code == 409 and frozen.json()["error"]["code"] == "contact_merged"

    reverted = await http.post(f"/api/v1/contact-merges/{merge['id']}/revert", headers=headers)
    assert reverted.status_code == 200 and reverted.json()["reverted_by"] == tenant.agent.id
    assert await state() == before
    twice = await http.post(f"/api/v1/contact-merges/{merge['id']}/revert", headers=headers)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "merge_already_reverted"

    audit = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers)).json()["data"]
    mine = [(e["action"], e["actor_id"], e["target_id"]) for e in audit if e["action"].startswith("contact.")]
    assert mine == [("contact.merged", tenant.agent.id, target_id),
                    ("contact.merge_reverted", tenant.agent.id, target_id)]


async def test_merges_are_undone_newest_first(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    a = (await _visitor_contact(http, tenant, "a"))[0]["contact_id"]
    b = (await _visitor_contact(http, tenant, "b"))[0]["contact_id"]
    c = (await _visitor_contact(http, tenant, "c"))[0]["contact_id"]
    headers = tenant.agent.headers
    first = (await http.post(f"/api/v1/contacts/{b}/merges", headers=headers, json={"source_contact_id": a})).json()
    second = (await http.post(f"/api/v1/contacts/{c}/merges", headers=headers, json={"source_contact_id": b})).json()
    assert len(second["moved_conversation_ids"]) == 2
    blocked = await http.post(f"/api/v1/contact-merges/{first['id']}/revert", headers=headers)
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "contact_merged"
    assert (await http.post(f"/api/v1/contact-merges/{second['id']}/revert", headers=headers)).status_code == 200
    assert (await http.post(f"/api/v1/contact-merges/{first['id']}/revert", headers=headers)).status_code == 200
    for cid in (a, b, c):
        timeline = (await http.get(f"/api/v1/contacts/{cid}/conversations", headers=headers)).json()["data"]
        assert [conv["last_message_preview"] for conv in timeline] == [
            {a: "a", b: "b", c: "c"}[cid]]


async def test_export_holds_everything_and_is_audited(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    session, conversation = await _visitor_contact(http, tenant, "请帮我查一下订单")
    await agent_says(http, tenant.agent.headers, conversation["id"], "note: 老客户", private=True)
    await agent_says(http, tenant.agent.headers, conversation["id"], "好的，马上查")
    await http.put(f"/api/v1/conversations/{conversation['id']}/tags/order", headers=tenant.agent.headers)
    response = await http.get(f"/api/v1/contacts/{session['contact_id']}/export", headers=tenant.supervisor.headers)
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["contact"]["id"] == session["contact_id"]
    assert [i["kind"] for i in export["contact"]["identities"]] == ["visitor"]
    [conv] = export["conversations"]
    assert conv["tags"] == ["order"]
    assert [(m["sender_kind"], m["body"], m["private"]) for m in conv["messages"]] == [
        ("customer", "请帮我查一下订单", False), ("agent", "note: 老客户", True), ("agent", "好的，马上查", False)]
    audit = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers,
                            params={"action": "contact.exported"})).json()["data"]
    assert [(e["actor_id"], e["target_id"]) for e in audit] == [(tenant.supervisor.id, session["contact_id"])]


async def test_unknown_ids_answer_not_found(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    fake = "ct_01jd0000000000000000000000"
    for method, path, body in (
        ("GET", f"/api/v1/contacts/{fake}", None),
        ("POST", f"/api/v1/contacts/{fake}/merges", {"source_contact_id": fake}),
        ("GET", f"/api/v1/contacts/{fake}/export", None),
    ):
        response = await http.request(method, path, headers=tenant.agent.headers, json=body)
        assert response.status_code == 404 and response.json()["error"]["code"] == "contact_not_found"
    merge = await http.post(f"/api/v1/contact-merges/cmg_{uuid.uuid4().hex}/revert", headers=tenant.agent.headers)
    assert merge.status_code == 404 and merge.json()["error"]["code"] == "merge_not_found"


async def test_export_needs_conversation_access_too(http, tenant) -> None:  # type: ignore[no-untyped-def]
    contact = (await http.post("/api/v1/contacts", headers=tenant.admin.headers, json={"name": "王小明"})).json()
    key = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                          json={"name": "crm", "scopes": ["contacts:read"]})
    narrow = {"Authorization": f"Bearer {key.json()['token']}"}
    assert (await http.get(f"/api/v1/contacts/{contact['id']}", headers=narrow)).status_code == 200
    export = await http.get(f"/api/v1/contacts/{contact['id']}/export", headers=narrow)
    assert export.status_code == 403 and export.json()["error"]["code"] == "insufficient_scope"
    assert (await http.get(f"/api/v1/contacts/{contact['id']}/export", headers=tenant.agent.headers)).status_code == 200
