"""Scripted containment simulation over the demo shop (``kefu bot simulate``, ``bench/bot.py``).

Scripted customers of the demo shop open conversations with routine questions in Chinese and English and
answer whatever the bot asks (which order, why, confirm) the way a cooperative customer would; other scripted
customers ask for a person, complain or are angry. Everything runs through the real runner, nlp pipeline,
commerce domain (demo shop connector) and routing, on a database of its own.

Reported: containment per routine intent (conversations settled by the bot without a human) and handoffs,
and the check that no handoff was lost: every handoff the bot decided has its record, its routing task and a
conversation that people now own.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from kefu.bot import actions as bot_actions
from kefu.bot import service as bot_service
from kefu.bot.runner import BotRunner, TurnReport
from kefu.bot.schemas import BotSettingsBase
from kefu.runtime import Runtime

# intent -> phrasings (zh and en), as customers type them
ROUTINE: dict[str, list[str]] = {
    "track_order": ["我的快递到哪了", "物流到哪儿了？", "查一下我的包裹", "我买的东西怎么还没到，物流信息呢",
                    "where is my parcel", "track my order please", "can you check my delivery status"],
    "delivery_period": ["什么时候能送到", "大概几天能到货", "预计哪天送达", "when will my order arrive",
                        "how long until my package gets here"],
    "urge_shipment": ["催一下发货", "能不能快点发货", "怎么还不发货，帮我催催", "please hurry up and ship my order",
                      "can you push the warehouse to ship faster"],
    "return_or_exchange": ["我想退货", "这个东西我要退", "怎么申请退换货", "I want to return an item",
                           "how do I return my order"],
    "track_refund": ["我的退款到账了吗", "退款进度怎么样了", "退款什么时候到", "where is my refund",
                     "has my refund been processed"],
    "check_refund_policy": ["你们的退货政策是什么", "七天无理由退货怎么算", "what is your return policy",
                            "can I get a refund if I change my mind"],
    "promotion_inquiry": ["我的订单用了什么优惠", "满减怎么算的", "优惠券没用上吗", "which discounts were applied to my order",
                          "did my coupon apply"],
    "price_protection": ["买了就降价了，能价保吗", "申请价格保护", "the price dropped after I bought it, can I get the difference",
                         "price protection please"],
    "get_invoice": ["我要开发票", "帮我开一张电子发票", "能开发票吗", "I need an invoice for my order",
                    "can I get a VAT invoice"],
    "cancel_order": ["我想取消订单", "帮我把订单取消了", "不想要了，取消订单", "please cancel my order",
                     "I want to cancel my order"],
    "change_shipping_address": ["我要改收货地址", "地址写错了，帮我改一下", "修改一下配送地址",
                                "I need to change my shipping address", "wrong address on my order, please change it"],
}
# Not routine: these must reach people, quickly.
ESCALATIONS: list[tuple[str, str]] = [
    ("转人工", "explicit_request"), ("I want to talk to a human", "explicit_request"),
    ("我要投诉你们", "sensitive_words"), ("再不解决我就打12315", "sensitive_words"),
    ("I'm calling my lawyer", "sensitive_words"), ("你们到底什么时候发货！！！气死我了", "anger"),
]
ANSWERS = {
    "zh": {"order": "第一个", "kind": "退货", "reason": "不想要了", "address": "上海市浦东新区世纪大道100号 王小明 13800138000",
           "invoice_title": "个人", "confirm": "是的"},
    "en": {"order": "first one", "kind": "return", "reason": "changed my mind",
           "address": "100 Century Avenue, Pudong, Shanghai, Wang Xiaoming 13800138000",
           "invoice_title": "Personal", "confirm": "yes"},
}
MAX_TURNS = 6


@dataclass
class ConversationRun:
    intent: str
    language: str
    turns: list[TurnReport] = field(default_factory=list)
    conversation_id: str | None = None

    @property
    def handed_off(self) -> bool:
        return any(t.outcome == "handoff" for t in self.turns)

    @property
    def contained(self) -> bool:
        return not self.handed_off and any(t.resolved for t in self.turns)


@dataclass
class SimulationResult:
    runs: list[ConversationRun]
    escalations: list[tuple[str, str, TurnReport | None]]
    handoffs_decided: int
    handoffs_recorded: int
    handoffs_routed: int
    handoffs_owned_by_people: int
    seconds: float
    turn_ms: list[float]

    @property
    def handoffs_lost(self) -> int:
        return self.handoffs_decided - min(self.handoffs_recorded, self.handoffs_routed,
                                           self.handoffs_owned_by_people)

    def containment(self) -> dict[str, tuple[int, int, Counter[str]]]:
        table: dict[str, tuple[int, int, Counter[str]]] = {}
        grouped: dict[str, list[ConversationRun]] = defaultdict(list)
        for run in self.runs:
            grouped[run.intent].append(run)
        for intent, runs in grouped.items():
            reasons = Counter(t.handoff_reason or "" for r in runs for t in r.turns if t.outcome == "handoff")
            table[intent] = (len(runs), sum(r.contained for r in runs), reasons)
        return table

    @property
    def overall(self) -> float:
        return sum(r.contained for r in self.runs) / len(self.runs) if self.runs else 0.0


class _Scene:
    """A tenant with a bot-enabled inbox, and a way to chat as a demo-shop customer in it."""

    def __init__(self, runtime: Runtime, runner: BotRunner, tenant_id: str, inbox_id: str) -> None:
        self.runtime = runtime
        self.runner = runner
        self.tenant_id = tenant_id
        self.inbox_id = inbox_id
        self.turn_ms: list[float] = []

    async def customer(self, customer_id: str | None) -> Any:
        from kefu.channels.visitor_tokens import VisitorClaims
        from kefu.contacts import actions as contact_actions

        visitor = f"vis_{uuid.uuid4().hex[:20]}"
        identities: list[tuple[str, str, bool]] = [("visitor", visitor, False)]
        if customer_id:
            identities.insert(0, ("external", customer_id, True))
        uow = self.runtime.unit_of_work()
        try:
            contact = await contact_actions.do_resolve_contact(uow, tenant_id=self.tenant_id, identities=identities,
                                                               name=customer_id, email=None)
            await uow.commit()
        finally:
            await uow.session.close()
        return VisitorClaims(self.tenant_id, self.inbox_id, contact.id, visitor, customer_id is not None,
                             int(time.time()) + 3600)

    async def say(self, claims: Any, text: str) -> tuple[str, TurnReport]:
        from kefu.channels import actions as channel_actions

        uow = self.runtime.unit_of_work()
        try:
            message, _ = await channel_actions.do_post_visitor_message(uow, claims=claims, body=text,
                                                                       client_message_id=uuid.uuid4().hex)
            await uow.commit()
        finally:
            await uow.session.close()
        started = time.perf_counter()
        report = await self.runner.handle_message(tenant_id=self.tenant_id, conversation_id=message.conversation_id,
                                                  message_id=message.id)
        self.turn_ms.append((time.perf_counter() - started) * 1000)
        return message.conversation_id, report

    async def pending_step(self, conversation_id: str) -> str | None:
        async with self.runtime.sessionmaker() as session:
            state = await bot_service.dialogue_state(session=session, conversation_id=conversation_id)
            await session.commit()
        return state.step if state else None


async def setup_scene(runtime: Runtime, runner: BotRunner | None = None) -> _Scene:
    from kefu.channels import actions as channel_actions
    from kefu.channels.schemas import InboxCreate
    from kefu.tenants import actions as tenant_actions
    from kefu.tenants.schemas import TenantCreate

    uow = runtime.unit_of_work()
    try:
        slug = f"bot-sim-{uuid.uuid4().hex[:8]}"
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name="Bot simulation",
                                                                              default_locale="zh"))
        inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="Sim chat"))
        await bot_actions.do_update_settings(uow, tenant_id=tenant.id, inbox_id=inbox.id, row=None,
                                             data=BotSettingsBase(enabled=True), expected_version=None)
        await uow.commit()
    finally:
        await uow.session.close()
    return _Scene(runtime, runner or BotRunner(runtime), tenant.id, inbox.id)


async def simulate(runtime: Runtime, *, per_intent: int = 10, seed: int = 7,
                   runner: BotRunner | None = None) -> SimulationResult:
    """Run the scripted conversations and count containment and handoffs (see the module docstring)."""
    rng = random.Random(seed)
    scene = await setup_scene(runtime, runner)
    started = time.perf_counter()
    runs: list[ConversationRun] = []
    customers = [f"c{1001 + i}" for i in range(60)]
    with_people: set[str] = set()
    for intent, phrasings in ROUTINE.items():
        for i in range(per_intent):
            text = phrasings[i % len(phrasings)]
            language = "en" if text.isascii() else "zh"
            run = ConversationRun(intent, language)
            # A customer whose earlier conversation went to people still has it open (their next message
            # joins it, rightly, and the bot stays out), so scripts pick customers without one.
            customer_id = rng.choice([c for c in customers if c not in with_people] or customers)
            claims = await scene.customer(customer_id)
            for _turn in range(MAX_TURNS):
                run.conversation_id, report = await scene.say(claims, text)
                run.turns.append(report)
                if report.outcome == "handoff":
                    with_people.add(customer_id)
                if report.outcome != "answered" or report.resolved:
                    break
                step = await scene.pending_step(run.conversation_id)
                if step is None:
                    break  # the bot answered without a question: nothing more to say
                key = "confirm" if step == "confirm" else step.split(":", 1)[-1]
                text = ANSWERS[language].get(key, ANSWERS[language]["order"])
            runs.append(run)
    escalations: list[tuple[str, str, TurnReport | None]] = []
    for text, reason in ESCALATIONS:
        claims = await scene.customer(None)
        _, report = await scene.say(claims, text)
        escalations.append((text, reason, report))
    seconds = time.perf_counter() - started
    decided = sum(t.outcome == "handoff" for r in runs for t in r.turns) + sum(
        1 for _, _, rep in escalations if rep and rep.outcome == "handoff")
    recorded, routed, owned = await _handoff_books(runtime, scene.tenant_id)
    return SimulationResult(runs, escalations, decided, recorded, routed, owned, seconds, scene.turn_ms)


async def _handoff_books(runtime: Runtime, tenant_id: str) -> tuple[int, int, int]:
    """Handoff records, those with a live routing task, and handed-off conversations people own now."""
    from kefu.bot.models import Handoff
    from kefu.conversations import service as conversation_service
    from kefu.routing import service as routing_service

    async with runtime.sessionmaker() as session:
        rows = list(await session.scalars(select(Handoff).where(Handoff.tenant_id == tenant_id)))
        routed = 0
        owned = 0
        for row in rows:
            task = await routing_service.live_task_of(session=session, tenant_id=tenant_id,
                                                      conversation_id=row.conversation_id)
            routed += task is not None and task.id == row.task_id
            conversation = await conversation_service.access_conversation(
                session=session, tenant_id=tenant_id, conversation_id=row.conversation_id)
            owned += conversation.owner_kind in ("queue", "agent")
        recorded = int(await session.scalar(select(func.count()).select_from(Handoff).where(
            Handoff.tenant_id == tenant_id)) or 0)
        await session.commit()
    return recorded, routed, owned
