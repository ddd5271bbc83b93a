"""Reads of the bot domain: the flows in force for a tenant, per-inbox settings, dialogue memory, handoffs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.bot.flows import BRAND, SKILLS, Flow, FlowInvalid, FlowSet, builtin_flows, parse_flow
from kefu.bot.models import (
    BotFlow,
    BotInboxSettings,
    BotTurn,
    ContactContext,
    DialogueState,
    Handoff,
    ServiceRequest,
)
from kefu.bot.schemas import (
    BotConversationRead,
    BotSettingsBase,
    BotSettingsRead,
    FlowRead,
    FlowSummary,
    HandoffRead,
)
from kefu.channels import service as channel_service
from kefu.conversations import service as conversation_service
from kefu.core.db import run_core
from kefu.core.errors import NotFound
from kefu.nlp import policies as nlp_policies


async def flow_set(*, session: AsyncSession, tenant_id: str) -> FlowSet:
    """The built-in flows overlaid with the tenant's saved ones (a saved flow that no longer parses is skipped)."""
    overrides: dict[str, Flow] = {}
    for row in await session.scalars(select(BotFlow).where(BotFlow.tenant_id == tenant_id)):
        try:
            overrides[row.name] = parse_flow(row.source, expected_name=row.name)
        except FlowInvalid:
            continue  # validated on save; only a change of the flow format could get here
    return FlowSet(overrides)


def _summary(flow: Flow, row: BotFlow | None) -> FlowSummary:
    return FlowSummary(name=flow.name, title=flow.title, intents=list(flow.intents), skill=flow.skill,
                       origin="tenant" if row is not None else "builtin", version=row.version if row else 0)


def flow_read(flow: Flow, row: BotFlow | None) -> FlowRead:
    slots = [{"name": s.name, "type": s.type, "prompt": s.prompt, "required": s.required,
              **({"options": [o["value"] for o in s.options]} if s.options else {})} for s in flow.slots]
    return FlowRead(**_summary(flow, row).model_dump(), source=flow.source, slots=slots, confirm=flow.confirm,
                    replies=flow.replies, updated_at=row.updated_at if row else None)


async def list_flows(*, session: AsyncSession, tenant_id: str) -> list[FlowSummary]:
    rows = {r.name: r for r in await session.scalars(select(BotFlow).where(BotFlow.tenant_id == tenant_id))}
    flows = await flow_set(session=session, tenant_id=tenant_id)
    return [_summary(flow, rows.get(name)) for name, flow in sorted(flows.flows.items())]


async def access_flow(*, session: AsyncSession, tenant_id: str, name: str) -> tuple[Flow, BotFlow | None]:
    """A flow in force for the tenant and its saved row (None for an untouched built-in); 404 otherwise."""
    row = await session.get(BotFlow, (tenant_id, name))
    if row is not None:
        return parse_flow(row.source, expected_name=name), row
    builtin = builtin_flows().get(name)
    if builtin is None:
        raise NotFound("bot_flow_not_found", details={"flow_name": name[:64]})
    return builtin, None


def known_skills() -> list[str]:
    return sorted(SKILLS)


def settings_read(inbox_id: str, row: BotInboxSettings | None) -> BotSettingsRead:
    values = BotSettingsBase.model_validate(row.settings or {}) if row else BotSettingsBase()
    values.enabled = bool(row.enabled) if row else False
    return BotSettingsRead(**values.model_dump(), inbox_id=inbox_id, version=row.version if row else 0,
                           updated_at=row.updated_at if row else None)


async def access_settings(*, session: AsyncSession, tenant_id: str, inbox_id: str) -> tuple[str,
                                                                                               BotInboxSettings | None]:
    """The inbox (checked to be the tenant's: 404 inbox_not_found otherwise) and its bot settings row."""
    inbox = await channel_service.access_inbox(session=session, tenant_id=tenant_id, inbox_id=inbox_id)
    return inbox.id, await session.get(BotInboxSettings, inbox.id)


async def inbox_settings(*, session: AsyncSession, inbox_id: str) -> BotSettingsRead:
    """Settings for the worker (the inbox id comes from a stored conversation, so it is trusted)."""
    return settings_read(inbox_id, await session.get(BotInboxSettings, inbox_id))


_settings = BotInboxSettings.__table__
_BOT_ENABLED = select(_settings.c.inbox_id).where(_settings.c.inbox_id.in_(bindparam("ids", expanding=True)),
                                                  _settings.c.enabled.is_(True))


async def bot_enabled_inboxes(*, session: AsyncSession, inbox_ids: set[str]) -> set[str]:
    """Which of these inboxes start conversations owned by the bot (one query for a whole batch)."""
    if not inbox_ids:
        return set()
    rows = await run_core(session, _BOT_ENABLED, {"ids": sorted(inbox_ids)})  # chat hot path: pre-built
    return {inbox_id for (inbox_id,) in rows}


async def dialogue_state(*, session: AsyncSession, conversation_id: str) -> DialogueState | None:
    return await session.get(DialogueState, conversation_id)


async def contact_context(*, session: AsyncSession, contact_id: str) -> ContactContext | None:
    return await session.get(ContactContext, contact_id)


async def claimed_message_ids(*, session: AsyncSession, message_ids: list[str]) -> set[str]:
    if not message_ids:
        return set()
    rows = await session.scalars(select(BotTurn.message_id).where(BotTurn.message_id.in_(message_ids)))
    return set(rows.all())


async def unanswered_messages(*, session: AsyncSession, since: datetime, limit: int = 200) -> list[
        tuple[str, str, str]]:
    """(tenant id, conversation id, message id) of customer messages since ``since`` in live bot-owned
    conversations that no node has claimed, oldest first.

    Claimed messages are left out in SQL, before the limit: however many the bot already answered in the
    window, a message whose ``message.created`` event was missed is still found."""
    messages = conversation_service.bot_customer_messages_query(since=since).subquery()
    rows = await session.execute(
        select(messages.c.tenant_id, messages.c.conversation_id, messages.c.message_id)
        .outerjoin(BotTurn, BotTurn.message_id == messages.c.message_id)
        .where(BotTurn.message_id.is_(None))
        .order_by(messages.c.message_id).limit(limit))
    return [(t, c, m) for t, c, m in rows.all()]


async def stale_claims(*, session: AsyncSession, before: datetime, limit: int = 100) -> list[BotTurn]:
    """Turns claimed by a node that never finished them (it died): another node may take them over."""
    return list((await session.scalars(
        select(BotTurn).where(BotTurn.outcome == "claimed", BotTurn.created_at < before)
        .order_by(BotTurn.created_at).limit(limit))).all())


def handoff_read(row: Handoff) -> HandoffRead:
    return HandoffRead.model_validate(row)


async def handoffs_of(*, session: AsyncSession, tenant_id: str, conversation_id: str) -> list[Handoff]:
    return list((await session.scalars(select(Handoff).where(
        Handoff.tenant_id == tenant_id, Handoff.conversation_id == conversation_id).order_by(Handoff.id))).all())


async def access_bot_conversation(*, session: AsyncSession, tenant_id: str, conversation_id: str,
                                  lang: str = "en") -> BotConversationRead:
    """The bot's view of a conversation of the tenant (404 conversation_not_found for others); each turn with an
    intent also names it in ``lang`` (``intent_title``), for the agent's screen."""
    conversation = await conversation_service.access_conversation(session=session, tenant_id=tenant_id,
                                                                  conversation_id=conversation_id)
    state = await session.get(DialogueState, conversation.id)
    handoffs = await handoffs_of(session=session, tenant_id=tenant_id, conversation_id=conversation.id)
    slots: dict[str, Any] = {k: v for k, v in (state.slots if state else {}).items() if not k.startswith("_")}
    return BotConversationRead(
        conversation_id=conversation.id, language=state.language if state else None,
        flow=state.flow if state else None, slots=slots, handed_off=bool(state and state.handed_off),
        turns=[_titled(turn, lang) for turn in state.turns] if state else [],
        handoffs=[handoff_read(h) for h in handoffs])


def _titled(turn: dict[str, Any], lang: str) -> dict[str, Any]:
    return {**turn, "intent_title": nlp_policies.intent_title(turn["intent"], lang)} if turn.get("intent") else turn


def is_brand(name: str) -> bool:
    return name == BRAND


async def find_request(*, session: AsyncSession, tenant_id: str, kind: str, order_ref: str) -> ServiceRequest | None:
    """The first request of this kind the bot recorded for an order."""
    return (await session.scalars(select(ServiceRequest).where(
        ServiceRequest.tenant_id == tenant_id, ServiceRequest.kind == kind, ServiceRequest.order_ref == order_ref)
        .order_by(ServiceRequest.id).limit(1))).first()
