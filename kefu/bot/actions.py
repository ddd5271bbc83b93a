"""Writes of the bot domain: flows and settings, claiming a customer message, storing a turn, handing off.

A turn is written in two short transactions around the thinking (``kefu.bot.runner``): the claim (one row per
customer message, primary key = message id, so across nodes exactly one claim succeeds) and the answer (the
bot's replies, the new dialogue memory guarded by its version, and the handoff). No transaction is held
open while the order system answers, which on SQLite would block every writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from kefu.bot import policies
from kefu.bot.engine import Memory, TurnResult
from kefu.bot.flows import FlowInvalid, builtin_flows, parse_flow
from kefu.bot.models import (
    BotFlow,
    BotInboxSettings,
    BotTurn,
    ContactContext,
    DialogueState,
    Handoff,
    ServiceRequest,
)
from kefu.bot.ports import HandoffDesk, KnowledgeDesk, QueuePlacement
from kefu.bot.schemas import BotSettingsBase
from kefu.conversations import actions as conversation_actions
from kefu.conversations.schemas import MessageRead
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, NotFound, ValidationFailed, check_version
from kefu.core.i18n import name_of, translate
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork
from kefu.nlp import policies as nlp_policies


class StaleDialogue(Conflict):
    """Another node stored a turn of this conversation meanwhile; think again from the new memory."""

    code = "bot_state_changed"


# -- flows and settings -----------------------------------------------------------------------------------

def _validated(source: str, name: str | None) -> str:
    try:
        flow = parse_flow(source, expected_name=name)
    except FlowInvalid as exc:
        raise ValidationFailed("bot_flow_invalid", details={"problems": exc.problems},
                               count=len(exc.problems)) from None
    return flow.name


async def do_create_flow(uow: UnitOfWork, *, tenant_id: str, source: str, actor_id: str | None) -> BotFlow:
    """Save a new flow (its name must not be taken by a built-in or a saved flow)."""
    name = _validated(source, None)
    if name in builtin_flows() or await uow.session.get(BotFlow, (tenant_id, name)) is not None:
        raise Conflict("bot_flow_exists", details={"flow_name": name}, name=name)
    now = utcnow()
    row = BotFlow(tenant_id=tenant_id, name=name, source=source, version=1, updated_by=actor_id, created_at=now,
                  updated_at=now)
    try:
        async with uow.session.begin_nested():
            uow.session.add(row)
            await uow.session.flush()
    except IntegrityError:
        raise Conflict("bot_flow_exists", details={"flow_name": name}, name=name) from None
    return row


async def do_update_flow(uow: UnitOfWork, *, tenant_id: str, name: str, row: BotFlow | None, source: str,
                         actor_id: str | None, expected_version: int | None) -> BotFlow:
    """Replace a flow's YAML (the first save of a built-in creates the tenant's version 1)."""
    check_version(row.version if row else 0, expected_version)
    _validated(source, name)
    now = utcnow()
    if row is None:
        row = BotFlow(tenant_id=tenant_id, name=name, source=source, version=1, updated_by=actor_id, created_at=now,
                      updated_at=now)
        try:
            async with uow.session.begin_nested():
                uow.session.add(row)
                await uow.session.flush()
        except IntegrityError:  # two first saves raced: the second is a stale edit
            raise Conflict("version_conflict", details={"current_version": 1}, current_version=1) from None
        return row
    result = await uow.session.execute(
        update(BotFlow).where(BotFlow.tenant_id == tenant_id, BotFlow.name == name, BotFlow.version == row.version)
        .values(source=source, version=row.version + 1, updated_by=actor_id, updated_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("version_conflict", details={"current_version": row.version + 1},
                       current_version=row.version + 1)
    await uow.session.refresh(row)
    return row


async def do_delete_flow(uow: UnitOfWork, *, tenant_id: str, name: str, row: BotFlow | None) -> None:
    """Drop the tenant's version: a built-in flow comes back, a flow of the tenant's own is gone."""
    if row is None:
        raise NotFound("bot_flow_not_found", details={"flow_name": name})
    await uow.session.delete(row)
    await uow.session.flush()


async def do_update_settings(uow: UnitOfWork, *, tenant_id: str, inbox_id: str, row: BotInboxSettings | None,
                             data: BotSettingsBase, expected_version: int | None) -> BotInboxSettings:
    check_version(row.version if row else 0, expected_version)
    now = utcnow()
    values = data.model_dump(mode="json", exclude={"enabled"})
    if row is None:
        row = BotInboxSettings(inbox_id=inbox_id, tenant_id=tenant_id, enabled=data.enabled, settings=values,
                               version=1, created_at=now, updated_at=now)
        try:
            async with uow.session.begin_nested():
                uow.session.add(row)
                await uow.session.flush()
        except IntegrityError:
            raise Conflict("version_conflict", details={"current_version": 1}, current_version=1) from None
        return row
    row.enabled = data.enabled
    row.settings = values
    row.version += 1
    row.updated_at = now
    await uow.session.flush()
    return row


# -- turns ------------------------------------------------------------------------------------------------

async def do_claim_turn(uow: UnitOfWork, *, tenant_id: str, conversation_id: str, message_id: str,
                        node_id: str) -> bool:
    """Claim a customer message for this node; False when another node (or an earlier run) has it."""
    if await uow.session.get(BotTurn, message_id) is not None:
        return False
    try:
        async with uow.session.begin_nested():
            uow.session.add(BotTurn(message_id=message_id, tenant_id=tenant_id, conversation_id=conversation_id,
                                    node_id=node_id, outcome="claimed", created_at=utcnow()))
            await uow.session.flush()
    except IntegrityError:
        return False
    return True


async def do_take_over_turn(uow: UnitOfWork, *, message_id: str, node_id: str, stale_before: datetime) -> bool:
    """Take a turn whose node died after claiming it (conditional update: one taker wins)."""
    result = await uow.session.execute(
        update(BotTurn).where(BotTurn.message_id == message_id, BotTurn.outcome == "claimed",
                              BotTurn.created_at < stale_before)
        .values(node_id=node_id, created_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


async def do_skip_turn(uow: UnitOfWork, *, message_id: str, why: str) -> None:
    """Close a claim without answering (the conversation left the bot meanwhile)."""
    await uow.session.execute(update(BotTurn).where(BotTurn.message_id == message_id)
                              .values(outcome="skipped", flow=why[:64]).execution_options(synchronize_session=False))


@dataclass
class TurnWrite:
    """Everything ``do_store_turn`` writes for one answered customer message."""

    tenant_id: str
    conversation: Any  # the conversations.models.Conversation loaded in this unit of work
    contact_id: str
    message_id: str
    text: str
    result: TurnResult
    state_version: int | None  # the DialogueState version the turn was computed from (None: no state yet)
    context_version: int | None
    understanding: dict[str, Any]
    vip_level: int = 0


def _memory_turns(memory: Memory, write: TurnWrite) -> list[dict[str, Any]]:
    turns = list(memory.turns)
    turn: dict[str, Any] = {"who": "customer", "text": policies.clip(write.text), "intent": write.result.intent,
                            "confidence": round(write.result.confidence, 3)}
    if write.result.actions:  # what the bot did for it: the handoff summary lists the whole conversation's
        turn["actions"] = list(write.result.actions)
    turns.append(turn)
    for reply in write.result.replies:
        turns.append({"who": "bot", "text": policies.clip(reply)})
    return turns[-12:]


async def _store_memory(uow: UnitOfWork, write: TurnWrite, *, handed_off: bool) -> None:
    session = uow.session
    memory = write.result.memory
    now = utcnow()
    # The pending knowledge answer rides with the slots (it is dialogue memory of the same lifetime).
    slots = {**memory.slots, "_kb": memory.knowledge} if memory.knowledge else memory.slots
    values = {"language": memory.language, "flow": memory.flow, "step": memory.step, "slots": slots,
              "last_flow": memory.last_flow,
              "low_confidence_strikes": memory.strikes, "turns": memory.turns, "handed_off": handed_off,
              "updated_at": now}
    if write.state_version is None:
        try:
            async with session.begin_nested():
                session.add(DialogueState(conversation_id=write.conversation.id, tenant_id=write.tenant_id,
                                          contact_id=write.contact_id, version=1, created_at=now, **values))
                await session.flush()
        except IntegrityError:
            raise StaleDialogue() from None
    else:
        result = await session.execute(
            update(DialogueState).where(DialogueState.conversation_id == write.conversation.id,
                                        DialogueState.version == write.state_version)
            .values(version=write.state_version + 1, **values).execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleDialogue()
    # Mentioned orders keep their number and headline, so a later turn (or the handoff summary) can name them.
    mentioned = [{"id": i, **memory.orders.get(i, {})} for i in memory.mentioned]
    context = {"current_order_id": memory.current_order_id, "mentioned_order_ids": mentioned, "updated_at": now}
    if write.context_version is None:
        try:
            async with session.begin_nested():
                session.add(ContactContext(contact_id=write.contact_id, tenant_id=write.tenant_id, version=1,
                                           **context))
                await session.flush()
        except IntegrityError:
            raise StaleDialogue() from None
    else:
        result = await session.execute(
            update(ContactContext).where(ContactContext.contact_id == write.contact_id,
                                         ContactContext.version == write.context_version)
            .values(version=write.context_version + 1, **context).execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleDialogue()


async def _say(uow: UnitOfWork, write: TurnWrite, body: str, index: int, *, private: bool = False) -> MessageRead:
    message, _ = await conversation_actions.do_post_message(
        uow, conversation=write.conversation, sender_kind="bot", sender_id=None, body=body, private=private,
        client_message_id=f"bot:{write.message_id}:{index}")
    return message


async def do_store_turn(uow: UnitOfWork, write: TurnWrite, *, handoff_desk: HandoffDesk | None,
                        node_id: str, texts: Any, knowledge_desk: KnowledgeDesk | None = None) -> Handoff | None:
    """Post the bot's replies, store the new memory (version-checked) and, when decided, hand off.

    The customer's verdicts on knowledge answers and handoffs after them go to the knowledge base in the same
    transaction (``knowledge_desk``), so a recomputed turn never records them twice.

    ``texts`` is the tenant's ``FlowSet`` (for the handoff announcement in the brand's tone).
    Raises ``StaleDialogue`` when another node stored a turn of this conversation since it was read.
    """
    result = write.result
    memory = result.memory
    memory.turns = _memory_turns(memory, write)
    handoff_row: Handoff | None = None
    await _store_memory(uow, write, handed_off=result.handoff is not None)
    last: MessageRead | None = None
    index = 0
    for index, reply in enumerate(result.replies):
        last = await _say(uow, write, reply, index)
    if result.handoff is not None:
        handoff_row, placement = await _hand_off(uow, write, handoff_desk)
        lang = result.language
        announcement = texts.styled(texts.text("handoff", lang), lang)
        if placement.expected_wait_seconds is not None and placement.expected_wait_seconds > 0:
            minutes, wait = policies.wait_in_words(placement.expected_wait_seconds, lang)
            # {wait} is the duration in words; {minutes} stays for the texts tenants saved before it existed.
            announcement += " " + texts.text("handoff_wait", lang, minutes=minutes, wait=wait)
        else:
            announcement += " " + texts.text("handoff_offline", lang)
        last = await _say(uow, write, announcement, index + 1)
        await _say(uow, write, handoff_row.summary["text"], index + 2, private=True)
    if knowledge_desk is not None:
        for record in result.knowledge_records:
            await knowledge_desk.record(uow, tenant_id=write.tenant_id, **record)
    await uow.session.execute(
        update(BotTurn).where(BotTurn.message_id == write.message_id)
        .values(outcome="handoff" if result.handoff else "answered", intent=result.intent[:64],
                confidence=float(result.confidence), flow=result.flow, node_id=node_id,
                reply_message_id=last.id if last else None)
        .execution_options(synchronize_session=False))
    return handoff_row


async def _hand_off(uow: UnitOfWork, write: TurnWrite,
                    desk: HandoffDesk | None) -> tuple[Handoff, QueuePlacement]:
    result = write.result
    decision = result.handoff
    assert decision is not None
    attributes = {
        "intent": result.intent, "language": result.language,
        "emotion": write.understanding.get("emotion", {}).get("label", "neutral"),
        "order_category": result.order_category, "vip": write.vip_level > 0, "vip_level": write.vip_level,
        "handoff_reason": decision.reason, "channel": write.conversation.channel,
    }
    summary = build_summary(write, decision)
    priority = policies.routing_priority(decision.reason, write.vip_level)
    placement = QueuePlacement(task_id=None, queue_name=None, expected_wait_seconds=None)
    if desk is not None:
        placement = await desk.enqueue(uow, tenant_id=write.tenant_id, conversation_id=write.conversation.id,
                                       attributes=attributes, summary=summary, priority=priority)
    if write.conversation.owner_kind == "bot":
        await conversation_actions.do_set_owner(uow, conversation=write.conversation, owner_kind="queue",
                                                priority=priority)
    row = Handoff(id=new_id("bho"), tenant_id=write.tenant_id, conversation_id=write.conversation.id,
                  reason=decision.reason, attributes=attributes, summary=summary, task_id=placement.task_id,
                  created_at=utcnow())
    uow.session.add(row)
    await uow.session.flush()
    return row, placement


def _did_in_words(action: dict[str, Any], lang: str) -> str:
    """"查物流（完成）" / "tracked the parcel (done)": a skill and its outcome as the agent reads them."""
    skill, code = str(action.get("skill")), str(action.get("code"))
    return translate("bot_summary_action", lang, skill=name_of("bot_skill", skill, lang),
                     outcome=name_of("bot_outcome", code, lang))


def build_summary(write: TurnWrite, decision: policies.HandoffDecision) -> dict[str, Any]:
    """What an agent reads first: why, what the customer wants, the order, what the bot did and said."""
    result = write.result
    memory = result.memory
    entities = [{"type": e.get("type"), "value": e.get("value")} for e in write.understanding.get("entities", [])]
    order_id = memory.current_order_id
    order = memory.orders.get(order_id or "", {}) if order_id else {}
    bot_said = [t["text"] for t in memory.turns if t.get("who") == "bot"][-4:]
    customer_said = [t["text"] for t in memory.turns if t.get("who") == "customer"][-4:]
    # What the bot did in this conversation (turns kept in memory), this turn included.
    did = [a for a in [a for turn in memory.turns for a in turn.get("actions") or ()] or result.actions
           if a.get("skill")][-5:]  # a tenant's flow without a skill did nothing to report
    lang = result.language
    emotion = write.understanding.get("emotion", {}).get("label", "neutral")
    parts = [translate("bot_summary_reason", lang, reason=translate(f"bot_reason_{decision.reason}", lang)),
             translate("bot_summary_intent", lang, intent=nlp_policies.intent_title(result.intent, lang) or "—",
                       confidence=f"{result.confidence:.2f}", emotion=nlp_policies.emotion_title(emotion, lang))]
    if order:  # the headline starts with the order number ("DS100011 三文鱼 +2")
        parts.append(translate("bot_summary_order", lang, headline=order.get("headline") or order.get("number", "")))
    if did:
        parts.append(translate("bot_summary_did", lang,
                               actions=("、" if lang == "zh" else "; ").join(_did_in_words(a, lang) for a in did)))
    if customer_said:
        parts.append(translate("bot_summary_customer", lang, text=customer_said[-1]))
    return {
        "reason": decision.reason, "detail": decision.detail, "intent": result.intent,
        "confidence": round(result.confidence, 3), "language": lang,
        "emotion": write.understanding.get("emotion", {}), "sentiment": write.understanding.get("sentiment", {}),
        "entities": entities, "order": {"id": order_id, **order} if order_id else None,
        "bot_did": did, "bot_said": bot_said, "customer_said": customer_said,
        "text": "\n".join(parts),
    }


async def do_record_request(uow: UnitOfWork, *, tenant_id: str, kind: str, order_ref: str, order_number: str,
                            contact_id: str, conversation_id: str, data: dict[str, Any],
                            idempotency_key: str) -> tuple[ServiceRequest, bool]:
    """Record a chase or invoice request once per idempotency key; returns (request, created)."""
    from sqlalchemy import select

    existing = (await uow.session.scalars(select(ServiceRequest).where(
        ServiceRequest.tenant_id == tenant_id, ServiceRequest.idempotency_key == idempotency_key))).first()
    if existing is not None:
        return existing, False
    row = ServiceRequest(id=new_id("bsr"), tenant_id=tenant_id, kind=kind, order_ref=order_ref,
                         order_number=order_number, contact_id=contact_id, conversation_id=conversation_id, data=data,
                         idempotency_key=idempotency_key, created_at=utcnow())
    try:
        async with uow.session.begin_nested():
            uow.session.add(row)
            await uow.session.flush()
    except IntegrityError:
        existing = (await uow.session.scalars(select(ServiceRequest).where(
            ServiceRequest.tenant_id == tenant_id, ServiceRequest.idempotency_key == idempotency_key))).first()
        assert existing is not None
        return existing, False
    return row, True
