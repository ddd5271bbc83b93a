"""Read receipts: each side marks the other side's messages read, and the other side sees it live."""

from __future__ import annotations

import httpx

from tests.channels.chat import agent_says, bearer, customer_says, start_session, widget_history
from tests.factories import TenantFixture


async def test_agent_and_customer_read_receipts(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    token = session["visitor_token"]
    first = await customer_says(http, token, "我的订单还没发货")
    second = await customer_says(http, token, "能帮忙查一下吗？")
    conversation_id = first["conversation_id"]
    reply = await agent_says(http, tenant.agent.headers, conversation_id, "马上为您查询")
    note = await agent_says(http, tenant.agent.headers, conversation_id, "internal: check warehouse", private=True)
    caught_up = (await http.get("/api/v1/widget/events", headers=bearer(token))).json()["last_event_id"]

    read = await http.post(f"/api/v1/conversations/{conversation_id}/read", headers=tenant.agent.headers,
                           json={"up_to_message_id": second["id"]})
    assert read.status_code == 200 and read.json()["message_ids"] == [first["id"], second["id"]]
    history = {m["id"]: m for m in await widget_history(http, token)}
    assert all(m["sender_id"] is None for m in history.values())  # agents' ids stay internal
    assert history[first["id"]]["delivery_status"] == history[second["id"]]["delivery_status"] == "read"
    assert history[reply["id"]]["delivery_status"] == "sent"
    events = (await http.get("/api/v1/widget/events", headers=bearer(token), params={"after": caught_up})).json()
    receipts = [e["data"]["read"] for e in events["events"] if e["type"] == "message.updated"]
    assert receipts == [{"message_ids": [first["id"], second["id"]], "by": "agent",
                         "up_to_message_id": second["id"]}]

    seen = await http.post("/api/v1/widget/read", headers=bearer(token), json={"up_to_message_id": note["id"]})
    assert seen.status_code == 404  # an internal note is not the customer's to see, or to name
    seen = await http.post("/api/v1/widget/read", headers=bearer(token), json={"up_to_message_id": reply["id"]})
    assert seen.status_code == 200 and seen.json()["message_ids"] == [reply["id"]]
    again = await http.post("/api/v1/widget/read", headers=bearer(token), json={"up_to_message_id": reply["id"]})
    assert again.json()["message_ids"] == []
    timeline = (await http.get(f"/api/v1/conversations/{conversation_id}/messages",
                               headers=tenant.agent.headers)).json()["data"]
    status = {m["id"]: m["delivery_status"] for m in timeline}
    assert status[reply["id"]] == "read" and status[note["id"]] == "sent"


async def test_receipts_only_for_ones_own_conversation(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    mine = await start_session(http, tenant.inbox_id)
    theirs = await start_session(http, tenant.inbox_id)
    my_message = await customer_says(http, mine["visitor_token"], "hello")
    their_message = await customer_says(http, theirs["visitor_token"], "hi")
    reply = await agent_says(http, tenant.agent.headers, their_message["conversation_id"], "hi there")
    foreign = await http.post("/api/v1/widget/read", headers=bearer(mine["visitor_token"]),
                              json={"up_to_message_id": reply["id"]})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "message_not_found"
    crossed = await http.post(f"/api/v1/conversations/{my_message['conversation_id']}/read",
                              headers=tenant.agent.headers, json={"up_to_message_id": their_message["id"]})
    assert crossed.status_code == 404 and crossed.json()["error"]["code"] == "message_not_found"
