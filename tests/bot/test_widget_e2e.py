"""End to end over the widget API against a live server: the bot worker answers a demo-shop customer with the
carrier's timeline of their order, and "转人工" turns the conversation into a routing task with a summary."""

from __future__ import annotations

import re

import httpx

from kefu.commerce import service as commerce_service
from kefu.runtime import Runtime
from tests.bot.helpers import wait_for_bot
from tests.channels.chat import customer_says, identity_token, start_session
from tests.factories import TenantFixture


async def test_customer_tracks_a_parcel_then_asks_for_a_person(http: httpx.AsyncClient, runtime: Runtime,
                                                               tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    enabled = await http.put(f"/api/v1/bot/inboxes/{tenant.inbox_id}/settings", headers=admin,
                             json={"enabled": True, "default_language": "zh"})
    assert enabled.status_code == 200, enabled.text
    session = await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, "c1001"))
    token = session["visitor_token"]

    asked = await customer_says(http, token, "我的快递到哪了")
    said = await wait_for_bot(http, token, 1)
    assert said and said[0]["sender_kind"] == "bot"
    listed = re.findall(r"DS\d{6}", said[0]["body"])
    if listed:  # several parcels on the way: pick the first one listed
        await customer_says(http, token, "第一个")
        said = await wait_for_bot(http, token, 2)
        number = listed[0]
    else:
        number = re.findall(r"DS\d{6}", said[0]["body"])[0]
    timeline = said[-1]["body"]
    # The bot's answer is the real carrier timeline of that order, as the order system has it.
    import kefu.integrations.commerce as commerce_integrations

    commerce_integrations.install()
    found = await commerce_service.find_orders(runtime=runtime, tenant_id=tenant.id, order_number=number)
    shipment = found.orders[0].order.shipments[-1]
    assert shipment.tracking_number in timeline
    for event in sorted(shipment.events, key=lambda e: e.at, reverse=True)[:3]:
        assert event.node.split()[0] in timeline

    await customer_says(http, token, "转人工")
    said = await wait_for_bot(http, token, len(said) + 1)
    assert "人工" in said[-1]["body"]
    conversation_id = asked["conversation_id"]
    conversation = (await http.get(f"/api/v1/conversations/{conversation_id}", headers=admin)).json()
    assert conversation["owner_kind"] == "queue"
    handoff = await http.get(f"/api/v1/bot/conversations/{conversation_id}/handoff", headers=tenant.agent.headers)
    assert handoff.status_code == 200, handoff.text
    body = handoff.json()
    assert body["reason"] == "explicit_request" and body["task_id"]
    assert body["attributes"]["language"] == "zh" and body["attributes"]["intent"]
    assert body["summary"]["order"]["number"] == number
    # What the bot did earlier in the conversation counts too, not only in the turn that handed over.
    assert any(a["skill"] == "track_order" for a in body["summary"]["bot_did"]), body["summary"]
    # The agent reads the summary in words, not codes: the intent and emotion by name, the order number once.
    text, intent = body["summary"]["text"], body["summary"]["intent"]
    [intent_line] = [line for line in text.splitlines() if line.startswith("意图")]
    assert "转人工" in intent_line and intent not in text and "neutral" not in text, text
    assert text.count(number) == 1, text
    [did] = [line for line in text.splitlines() if line.startswith("机器人已执行")]  # "机器人已执行：查物流（完成）"
    assert "查物流（完成）" in did and "_" not in did, text
    # The bot's turns name their intents in the reader's language (the workspace shows them beside the composer).
    for language, name in (("zh-CN", "转人工"), ("en", "Ask for a person")):
        view = await http.get(f"/api/v1/bot/conversations/{conversation_id}",
                              headers={**tenant.agent.headers, "Accept-Language": language})
        assert view.status_code == 200, view.text
        titled = [(turn["intent"], turn["intent_title"]) for turn in view.json()["turns"] if turn.get("intent")]
        assert ("contact_human_agent", name) in titled, titled
    task = await http.get(f"/api/v1/routing/tasks/{body['task_id']}", headers=admin)
    assert task.status_code == 200, task.text
    assert task.json()["conversation_id"] == conversation_id
    # The agent also finds the summary as an internal note in the timeline; the customer never sees it.
    messages = (await http.get(f"/api/v1/conversations/{conversation_id}/messages", headers=admin)).json()["data"]
    assert any(m["private"] and number in m["body"] for m in messages)
    assert all(number not in m["body"] or not m["private"] for m in said)


async def test_a_knowledge_answer_that_did_not_help_reaches_a_person_and_the_admins_gap_list(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    entry = await http.post("/api/v1/kb-entries", headers=admin, json={
        "language": "zh", "question": "礼品包装怎么收费？", "paraphrases": ["有礼盒包装吗"], "publish": True,
        "answer": "<p>礼品包装每件 5 元，下单时勾选即可。</p>"})
    assert entry.status_code == 201, entry.text
    enabled = await http.put(f"/api/v1/bot/inboxes/{tenant.inbox_id}/settings", headers=admin,
                             json={"enabled": True, "default_language": "zh"})
    assert enabled.status_code == 200, enabled.text
    session = await start_session(http, tenant.inbox_id)
    token = session["visitor_token"]

    asked = await customer_says(http, token, "礼品包装怎么收费？")
    said = await wait_for_bot(http, token, 1)
    assert "每件 5 元" in said[0]["body"] and "<p>" not in said[0]["body"]
    await customer_says(http, token, "没用")
    said = await wait_for_bot(http, token, 3)  # "sorry", then the handoff announcement
    assert "人工" in said[-1]["body"], said
    handoff = (await http.get(f"/api/v1/bot/conversations/{asked['conversation_id']}/handoff",
                              headers=tenant.agent.headers)).json()
    assert handoff["reason"] == "knowledge_not_helpful"

    stats = (await http.get(f"/api/v1/kb-entries/{entry.json()['id']}", headers=admin)).json()["analytics"]
    assert stats == {"views": 1, "answers_given": 1, "helpful": 0, "not_helpful": 1, "handoffs": 1}
    gaps = (await http.get("/api/v1/kb-gaps", headers=admin)).json()["data"]
    assert [(g["examples"], g["not_helpful_entry_ids"]) for g in gaps] == [(["礼品包装怎么收费？"],
                                                                            [entry.json()["id"]])]
