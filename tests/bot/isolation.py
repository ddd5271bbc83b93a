"""Tenant A's bot objects for the isolation walker: a flow of its own, a bot-enabled inbox, a handed-off
conversation. The bot runs in a separate inbox so other domains' conversations in A's web chat stay queue-owned."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.channels.chat import customer_says, start_session
from tests.factories import TenantFixture

VERBATIM_PARAMS = ("flow_name",)

FLOW = """name: {name}
intents: [warranty_repair]
title: {{zh: 保修, en: Warranty}}
replies:
  default: {{zh: 保修请联系品牌售后。, en: Please contact the brand's service centre for repairs.}}
"""


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    admin = tenant.admin.headers
    name = f"a_flow_{uuid.uuid4().hex[:8]}"
    created = await http.post("/api/v1/bot/flows", headers=admin, json={"source": FLOW.format(name=name)})
    assert created.status_code == 201, created.text
    inbox = await http.post("/api/v1/inboxes", headers=admin, json={"name": "A's bot inbox"})
    assert inbox.status_code == 201, inbox.text
    inbox_id = inbox.json()["id"]
    enabled = await http.put(f"/api/v1/bot/inboxes/{inbox_id}/settings", headers=admin, json={"enabled": True})
    assert enabled.status_code == 200, enabled.text
    visitor = await start_session(http, inbox_id)
    said = await customer_says(http, visitor["visitor_token"], "转人工")
    conversation_id = said["conversation_id"]
    for _ in range(200):  # the bot worker hands it over within moments
        handoff = await http.get(f"/api/v1/bot/conversations/{conversation_id}/handoff", headers=admin)
        if handoff.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert handoff.status_code == 200, handoff.text
    return {"flow_name": name, "bot_inbox_id": inbox_id, "bot_conversation_id": conversation_id}


def snapshot_paths(ids: dict[str, str]) -> list[str]:
    return [f"/api/v1/bot/flows/{ids['flow_name']}", f"/api/v1/bot/inboxes/{ids['bot_inbox_id']}/settings",
            f"/api/v1/bot/conversations/{ids['bot_conversation_id']}",
            f"/api/v1/bot/conversations/{ids['bot_conversation_id']}/handoff"]
