"""The bot answers questions without a flow from the knowledge base, and the knowledge base learns from it.

Real components throughout: the bot runner with the nlp pipeline, the knowledge domain (search, recorded
answers, analytics counters, gap mining) on this folder's own SQLite database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kefu.bot.runner import BotRunner
from kefu.knowledge import actions as knowledge_actions
from kefu.knowledge import service as knowledge_service
from kefu.knowledge.models import KbQuery
from kefu.knowledge.schemas import EntryCreate
from kefu.runtime import Runtime
from tests.bot.helpers import conversation_owner, shopper
from tests.factories import TenantFixture

WRAP_ZH = {"language": "zh", "category": "services", "question": "礼品包装怎么收费？",
           "paraphrases": ["可以帮我包装成礼物吗", "有礼盒包装吗"],
           "answer": "<p>礼品包装每件 5 元，下单时勾选<b>礼品包装</b>即可。</p><script>steal()</script>"}
WRAP_EN = {"language": "en", "category": "services", "question": "Do you offer gift wrapping?",
           "paraphrases": ["Can you wrap it as a present?"], "answer": "Gift wrapping costs ¥5 per item."}
POINTS = [{"language": "zh", "category": "membership", "question": "会员积分怎么兑换礼品？",
           "answer": "在“会员中心 → 积分商城”里兑换。"},
          {"language": "zh", "category": "membership", "question": "会员积分怎么查询？",
           "answer": "在“我的 → 积分”查看积分明细。"},
          {"language": "zh", "category": "membership", "question": "会员积分会过期吗？",
           "answer": "积分在获得后的第二年年底清零。"}]


async def _kb(runtime: Runtime, tenant_id: str, *entries: dict[str, Any]) -> dict[str, str]:
    """Publish entries; returns their ids by question."""
    uow = runtime.unit_of_work()
    try:
        ids = {}
        for fields in entries:
            entry = await knowledge_actions.do_create_entry(uow, tenant_id=tenant_id, actor_id=None,
                                                            data=EntryCreate(publish=True, **fields))
            ids[fields["question"]] = entry.id
        await uow.commit()
        return ids
    finally:
        await uow.session.close()


async def _entry(runtime: Runtime, tenant_id: str, entry_id: str) -> dict[str, int]:
    async with runtime.sessionmaker() as session:
        entry = await knowledge_service.access_entry(session=session, tenant_id=tenant_id, entry_id=entry_id)
        return knowledge_service.entry_read(entry).analytics.model_dump()


async def _questions(runtime: Runtime, conversation_id: str | None) -> list[KbQuery]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(select(KbQuery).where(KbQuery.conversation_id == conversation_id)
                                           .order_by(KbQuery.id))).all())


async def _gaps(runtime: Runtime, tenant_id: str) -> list[Any]:
    async with runtime.sessionmaker() as session:  # what GET /api/v1/kb-gaps serves
        return await knowledge_service.gaps(session=session, tenant_id=tenant_id)


async def test_a_confident_match_is_answered_and_did_not_help_hands_off_and_is_mined(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    ids = await _kb(bot_runtime, shop.id, WRAP_ZH, *POINTS)
    wrap = ids[WRAP_ZH["question"]]
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)

    report, replies = await customer.says("礼品包装怎么收费？")
    assert report.outcome == "answered" and report.resolved, report
    assert "每件 5 元" in replies[-1] and "<" not in replies[-1] and "steal" not in replies[-1]
    assert "没用" in replies[-1]  # the customer is told how to say it did not help
    assert await _entry(bot_runtime, shop.id, wrap) == {"views": 1, "answers_given": 1, "helpful": 0,
                                                        "not_helpful": 0, "handoffs": 0}

    report, replies = await customer.says("没用")
    assert (report.outcome, report.handoff_reason) == ("handoff", "knowledge_not_helpful"), report
    assert any("人工" in r for r in replies)
    assert await conversation_owner(bot_runtime, shop.id, customer.conversation_id) == "queue"
    assert await _entry(bot_runtime, shop.id, wrap) == {"views": 1, "answers_given": 1, "helpful": 0,
                                                        "not_helpful": 1, "handoffs": 1}
    [asked] = await _questions(bot_runtime, customer.conversation_id)
    assert (asked.decision, asked.entry_id, asked.feedback, asked.handed_off) == ("answer", wrap, "not_helpful", True)
    assert asked.channel == "webchat"

    gaps = await _gaps(bot_runtime, shop.id)
    gap = next(g for g in gaps if "礼品包装怎么收费" in " ".join(g.examples))
    assert gap.not_helpful_entry_ids == [wrap]


async def test_middling_matches_are_offered_and_the_pick_gets_its_answer(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    ids = await _kb(bot_runtime, shop.id, WRAP_ZH, *POINTS)
    by_question = {q.rstrip("？"): entry_id for q, entry_id in ids.items()}
    answers = {ids[p["question"]]: p["answer"] for p in POINTS}

    for pick in ("2", "第二个", "second one", "{question}"):
        customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
        report, replies = await customer.says("会员积分")
        assert report.outcome == "answered" and not report.resolved, report
        offered = [line.split(". ", 1)[1].rstrip("？") for line in replies[-1].splitlines() if line[:2] in
                   ("1.", "2.", "3.")]
        assert len(offered) == 3 and set(offered) <= set(by_question), replies
        second = by_question[offered[1]]
        said = pick.format(question=offered[1]) if pick == "{question}" else pick
        report, replies = await customer.says(said)
        assert report.outcome == "answered" and report.resolved, (pick, report)
        assert answers[second] in replies[-1], (pick, replies)
        [asked] = await _questions(bot_runtime, customer.conversation_id)
        assert (asked.decision, asked.entry_id) == ("choices", second), pick

    # Four picks of the same entry: each counts as an answer given; the others were only shown.
    second_stats = await _entry(bot_runtime, shop.id, second)
    assert second_stats["answers_given"] == 4 and second_stats["views"] == 4
    others = [e for e in answers if e != second]
    assert [(await _entry(bot_runtime, shop.id, e))["answers_given"] for e in others] == [0, 0]

    # "Thanks" after the picked answer counts as helpful for that entry.
    report, replies = await customer.says("谢谢，有用")
    assert report.outcome == "answered" and report.resolved
    assert (await _entry(bot_runtime, shop.id, second))["helpful"] == 1
    [asked] = await _questions(bot_runtime, customer.conversation_id)
    assert asked.feedback == "helpful"


async def test_none_of_the_choices_hands_off_and_the_question_is_mined(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    await _kb(bot_runtime, shop.id, WRAP_ZH, *POINTS)
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    report, _ = await customer.says("会员积分")
    assert report.outcome == "answered"
    report, _ = await customer.says("都不是")
    assert (report.outcome, report.handoff_reason) == ("handoff", "knowledge_not_helpful"), report
    [asked] = await _questions(bot_runtime, customer.conversation_id)
    assert (asked.decision, asked.feedback, asked.handed_off) == ("choices", "not_helpful", True)
    assert any("会员积分" in g.examples for g in await _gaps(bot_runtime, shop.id))


async def test_a_question_nobody_answered_hands_off_and_becomes_a_proposal(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    await _kb(bot_runtime, shop.id, WRAP_ZH, *POINTS)
    asked = ["怎么注销账号", "请问怎么注销账号"]
    for text in asked:
        customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
        report, replies = await customer.says(text)
        assert (report.outcome, report.handoff_reason) == ("handoff", "unsupported_intent"), (text, report)
        [question] = await _questions(bot_runtime, customer.conversation_id)
        assert (question.decision, question.handed_off) == ("handoff", True)
    gaps = await _gaps(bot_runtime, shop.id)
    assert any(set(asked) <= set(g.examples) and g.count == 2 for g in gaps), gaps


async def test_a_question_the_intent_model_does_not_know_is_still_answered_from_the_kb(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    ids = await _kb(bot_runtime, shop.id, WRAP_ZH, WRAP_EN)
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    report, replies = await customer.says("有礼盒包装吗")  # out of scope for the intent model
    assert report.outcome == "answered" and "每件 5 元" in replies[-1], (report, replies)
    # In English, and "thanks" counts as helpful.
    report, replies = await customer.says("Can you wrap it as a present?")
    assert report.outcome == "answered" and "¥5 per item" in replies[-1], replies
    assert "not helpful" in replies[-1]
    report, _ = await customer.says("thanks, that helps")
    assert report.outcome == "answered"
    assert (await _entry(bot_runtime, shop.id, ids[WRAP_EN["question"]]))["helpful"] == 1


async def test_asking_for_a_person_after_an_answer_counts_as_a_handoff_after_it(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    ids = await _kb(bot_runtime, shop.id, WRAP_ZH)
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    await customer.says("礼品包装怎么收费？")
    report, _ = await customer.says("转人工")
    assert report.handoff_reason == "explicit_request"
    stats = await _entry(bot_runtime, shop.id, ids[WRAP_ZH["question"]])
    assert (stats["handoffs"], stats["not_helpful"]) == (1, 0)


async def test_entries_for_another_channel_are_not_used_by_the_bot(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    await _kb(bot_runtime, shop.id, {**WRAP_ZH, "channels": ["email"]})
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    report, replies = await customer.says("礼品包装怎么收费？")
    assert report.outcome == "handoff" and not any("每件 5 元" in r for r in replies), replies


async def test_a_recomputed_turn_records_the_question_once(bot_runtime: Runtime, shop: TenantFixture) -> None:
    from kefu.bot.adapters import KnowledgeSeam

    await _kb(bot_runtime, shop.id, WRAP_ZH)
    seam = KnowledgeSeam(bot_runtime)
    asks = [await seam.answer(tenant_id=shop.id, question="礼品包装怎么收费？", language="zh", channel="webchat",
                              conversation_id="conv_x", message_id="msg_same") for _ in range(2)]
    assert asks[0] == asks[1] and asks[0] is not None and asks[0].decision == "answer"
    assert len(await _questions(bot_runtime, "conv_x")) == 1


async def test_thanks_with_a_new_question_counts_as_helpful_and_answers_the_question(
        bot_runtime: Runtime, runner: BotRunner, shop: TenantFixture) -> None:
    ids = await _kb(bot_runtime, shop.id, WRAP_ZH)
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id)  # c1001 of the demo shop
    await customer.says("礼品包装怎么收费？")
    report, replies = await customer.says("谢谢，另外我的快递到哪了")
    assert report.flow == "track_order" and report.outcome == "answered", report
    assert (await _entry(bot_runtime, shop.id, ids[WRAP_ZH["question"]]))["helpful"] == 1


async def test_a_long_article_is_sent_as_a_chat_sized_answer(bot_runtime: Runtime, runner: BotRunner,
                                                             shop: TenantFixture) -> None:
    body = "\n\n".join(f"<p>第{i}条：" + "保修期内非人为损坏免费维修。" * 30 + "</p>" for i in range(8))
    await _kb(bot_runtime, shop.id, {"language": "zh", "question": "保修条款全文", "answer": body})
    customer = await shopper(bot_runtime, runner, shop.id, shop.inbox_id, customer_id=None)
    report, replies = await customer.says("保修条款全文")
    assert report.outcome == "answered", report
    assert "第0条" in replies[-1] and "第7条" not in replies[-1] and "…" in replies[-1]
    assert len(replies[-1]) < 1400 and "<p>" not in replies[-1]
