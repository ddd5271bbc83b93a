"""A visitor token follows its visitor through a merge and back out of it when the merge is reverted."""

from __future__ import annotations

import httpx

from tests.channels.chat import bearer, customer_says, start_session, widget_history
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import visitor_client


async def test_a_reverted_merge_takes_the_visitors_access_back(server: LiveServer, http: httpx.AsyncClient,
                                                              tenant: TenantFixture) -> None:
    a = await start_session(http, tenant.inbox_id)
    await customer_says(http, a["visitor_token"], "A's question")
    c = await start_session(http, tenant.inbox_id)
    await customer_says(http, c["visitor_token"], "C's private order details")
    socket, _, _ = await visitor_client(server.ws_url, a["visitor_token"])

    merge = await http.post(f"/api/v1/contacts/{c['contact_id']}/merges", headers=tenant.agent.headers,
                            json={"source_contact_id": a["contact_id"]})
    assert merge.status_code == 201
    code, _ = await socket.closed()
    assert code == 4409  # re-filed: it reconnects and listens on the merged contact
    merged = await start_session(http, tenant.inbox_id, visitor_token=a["visitor_token"])
    assert merged["contact_id"] == c["contact_id"]
    assert "C's private order details" in str(await widget_history(http, merged["visitor_token"]))

    reverted = await http.post(f"/api/v1/contact-merges/{merge.json()['id']}/revert", headers=tenant.agent.headers)
    assert reverted.status_code == 200
    # The token issued while merged names C, but the visitor is A again: C's chat is out of reach.
    history = str(await widget_history(http, merged["visitor_token"]))
    assert "C's private order details" not in history and "A's question" in history
    sent = await customer_says(http, merged["visitor_token"], "still me, A")
    conversations = await http.get(f"/api/v1/contacts/{a['contact_id']}/conversations",
                                   headers=tenant.agent.headers)
    assert sent["conversation_id"] in [conv["id"] for conv in conversations.json()["data"]]
    events = (await http.get("/api/v1/widget/events", headers=bearer(merged["visitor_token"]))).json()
    assert "C's private order details" not in str(events)
