"""One customer message through the bot: claim it, think, store the answer (see ``kefu.bot.actions``).

Used by the live worker, ``kefu bot simulate`` and the benchmark alike, with the real adapters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kefu.bot import actions as bot_actions
from kefu.bot import policies
from kefu.bot import service as bot_service
from kefu.bot.adapters import CommerceOrderDesk, KnowledgeSeam, NluUnderstander, RoutingHandoffDesk
from kefu.bot.engine import Customer, Engine, Memory, TurnResult
from kefu.bot.models import ContactContext, Handoff
from kefu.bot.ports import HandoffDesk, KnowledgeDesk, OrderDesk, Understander
from kefu.contacts import service as contact_service
from kefu.conversations import service as conversation_service
from kefu.core.errors import NotFound
from kefu.nlp.understanding import Understanding
from kefu.runtime import Runtime

log = logging.getLogger("kefu.bot")
ATTEMPTS = 3


@dataclass
class TurnReport:
    """What happened to one customer message (for the simulation, the benchmark and logs)."""

    message_id: str
    outcome: str  # answered | handoff | taken | not_bot | skipped | failed
    intent: str | None = None
    flow: str | None = None
    replies: tuple[str, ...] = ()
    handoff_reason: str | None = None
    resolved: bool = False
    handoff_id: str | None = None


def _mentioned(context: ContactContext | None) -> dict[str, Any]:
    """The contact's mentioned orders as the engine's ``mentioned`` ids and ``orders`` names."""
    entries = [e if isinstance(e, dict) else {"id": e} for e in (context.mentioned_order_ids or [])] if context else []
    return {"mentioned": [e["id"] for e in entries if e.get("id")],
            "orders": {e["id"]: {k: v for k, v in e.items() if k != "id"} for e in entries if e.get("id")}}


class BotRunner:
    def __init__(self, runtime: Runtime, *, desk: OrderDesk | None = None, handoff: HandoffDesk | None = None,
                 knowledge: KnowledgeDesk | None = None, understander: Understander | None = None,
                 now: datetime | None = None) -> None:
        self.runtime = runtime
        self.desk = desk or CommerceOrderDesk(runtime, now=now)
        self.handoff = handoff or RoutingHandoffDesk()
        self.knowledge = knowledge if knowledge is not None else KnowledgeSeam(runtime)
        self.understander = understander or NluUnderstander(runtime)
        self.now = now

    async def handle_message(self, *, tenant_id: str, conversation_id: str, message_id: str,
                             take_over_before: datetime | None = None) -> TurnReport:
        """Answer one customer message unless another node has it; never raises for a bad message."""
        claimed = await self._claim(tenant_id, conversation_id, message_id, take_over_before)
        if claimed != "claimed":
            return TurnReport(message_id, claimed)
        for _attempt in range(ATTEMPTS):
            try:
                return await self._turn(tenant_id, conversation_id, message_id)
            except bot_actions.StaleDialogue:
                continue  # another node answered this conversation meanwhile: think again from its memory
            except Exception:
                log.exception("bot turn failed; handing the conversation to people",
                              extra={"conversation_id": conversation_id})
                return await self._rescue(tenant_id, conversation_id, message_id)
        return await self._rescue(tenant_id, conversation_id, message_id)

    async def _claim(self, tenant_id: str, conversation_id: str, message_id: str,
                     take_over_before: datetime | None) -> str:
        uow = self.runtime.unit_of_work()
        try:
            try:
                conversation = await conversation_service.access_conversation(
                    session=uow.session, tenant_id=tenant_id, conversation_id=conversation_id)
                message = await conversation_service.access_message(session=uow.session, tenant_id=tenant_id,
                                                                    message_id=message_id)
            except NotFound:
                return "skipped"
            if conversation.owner_kind != "bot" or conversation.status not in ("open", "pending"):
                return "not_bot"
            if message.conversation_id != conversation.id or message.sender_kind != "customer" or message.private:
                return "skipped"
            if take_over_before is not None:
                ok = await bot_actions.do_take_over_turn(uow, message_id=message_id, node_id=self.runtime.node_id,
                                                         stale_before=take_over_before)
            else:
                ok = await bot_actions.do_claim_turn(uow, tenant_id=tenant_id, conversation_id=conversation_id,
                                                     message_id=message_id, node_id=self.runtime.node_id)
            await uow.commit()
            return "claimed" if ok else "taken"
        finally:
            await uow.session.close()

    async def _turn(self, tenant_id: str, conversation_id: str, message_id: str) -> TurnReport:
        # Read everything in one short session; nothing is held open while the order system answers.
        async with self.runtime.sessionmaker() as session:
            conversation = await conversation_service.access_conversation(
                session=session, tenant_id=tenant_id, conversation_id=conversation_id)
            message = await conversation_service.access_message(session=session, tenant_id=tenant_id,
                                                                message_id=message_id)
            text = message.body or ""
            contact = await contact_service.access_contact(session=session, tenant_id=tenant_id,
                                                           contact_id=conversation.contact_id)
            verified = await contact_service.has_verified_identity(session=session, contact_id=contact.id)
            state = await bot_service.dialogue_state(session=session, conversation_id=conversation_id)
            context = await bot_service.contact_context(session=session, contact_id=contact.id)
            settings = await bot_service.inbox_settings(session=session, inbox_id=conversation.inbox_id)
            flows = await bot_service.flow_set(session=session, tenant_id=tenant_id)
            await session.commit()
        slots = dict(state.slots or {}) if state else {}
        knowledge = slots.pop("_kb", None)
        memory = Memory(language=(state.language if state else None) or conversation.locale,
                        flow=state.flow if state else None, step=state.step if state else None,
                        last_flow=state.last_flow if state else None, slots=slots,
                        knowledge=knowledge if isinstance(knowledge, dict) else None,
                        strikes=state.low_confidence_strikes if state else 0,
                        turns=list(state.turns or []) if state else [],
                        current_order_id=context.current_order_id if context else None,
                        **_mentioned(context))
        if not text.strip():
            text = "[attachment]" if message.attachments else ""
        # Off the event loop: the first message of a node may load the model and the tokeniser (seconds).
        understanding = await self.understander.analyse(text, tenant_id=tenant_id)
        thresholds = policies.HandoffThresholds.from_settings(settings.handoff.model_dump())
        engine = Engine(flows=flows, desk=self.desk,
                        knowledge=self.knowledge if settings.knowledge_fallback else None,
                        thresholds=thresholds, default_language=settings.default_language, now=self.now)
        customer = Customer(tenant_id=tenant_id, contact_id=contact.id, conversation_id=conversation_id,
                            message_id=message_id, vip_level=contact.vip_level or 0, verified=verified,
                            first_turn=state is None, channel=conversation.channel)
        result = await engine.respond(text=text, understanding=understanding, memory=memory, customer=customer)
        return await self._store(tenant_id, conversation_id, message_id, text, result, understanding, flows,
                                 state_version=state.version if state else None,
                                 context_version=context.version if context else None,
                                 contact_id=contact.id, vip_level=contact.vip_level or 0)

    async def _store(self, tenant_id: str, conversation_id: str, message_id: str, text: str, result: TurnResult,
                     understanding: Understanding | None, flows, *, state_version: int | None,  # type: ignore[no-untyped-def]
                     context_version: int | None, contact_id: str, vip_level: int) -> TurnReport:
        uow = self.runtime.unit_of_work()
        try:
            conversation = await conversation_service.access_conversation(
                session=uow.session, tenant_id=tenant_id, conversation_id=conversation_id)
            if conversation.owner_kind != "bot":  # an agent took over while the bot was thinking
                await bot_actions.do_skip_turn(uow, message_id=message_id, why="left_bot")
                await uow.commit()
                return TurnReport(message_id, "skipped", result.intent)
            write = bot_actions.TurnWrite(
                tenant_id=tenant_id, conversation=conversation, contact_id=contact_id, message_id=message_id,
                text=text, result=result, state_version=state_version, context_version=context_version,
                understanding=understanding.to_dict() if understanding else {}, vip_level=vip_level)
            handoff: Handoff | None = await bot_actions.do_store_turn(
                uow, write, handoff_desk=self.handoff, node_id=self.runtime.node_id, texts=flows,
                knowledge_desk=self.knowledge)
            await uow.commit()
        finally:
            await uow.session.close()
        return TurnReport(message_id, "handoff" if result.handoff else "answered", result.intent, result.flow,
                          tuple(result.replies), result.handoff.reason if result.handoff else None,
                          result.resolved, handoff.id if handoff else None)

    async def _rescue(self, tenant_id: str, conversation_id: str, message_id: str) -> TurnReport:
        """The bot broke on this message: hand off rather than leave the customer without an answer."""
        try:
            async with self.runtime.sessionmaker() as session:
                state = await bot_service.dialogue_state(session=session, conversation_id=conversation_id)
                conversation = await conversation_service.access_conversation(
                    session=session, tenant_id=tenant_id, conversation_id=conversation_id)
                context = await bot_service.contact_context(session=session, contact_id=conversation.contact_id)
                flows = await bot_service.flow_set(session=session, tenant_id=tenant_id)
                await session.commit()
            lang = (state.language if state else None) or conversation.locale or "zh"
            memory = Memory(language=lang, turns=list(state.turns or []) if state else [],
                            current_order_id=context.current_order_id if context else None, **_mentioned(context))
            result = TurnResult(replies=[], memory=memory, intent="unknown", confidence=0.0, language=lang,
                                handoff=policies.HandoffDecision(policies.ACTION_FAILED, {"error": "bot_error"}))
            return await self._store(tenant_id, conversation_id, message_id, "", result, None, flows,
                                     state_version=state.version if state else None,
                                     context_version=context.version if context else None,
                                     contact_id=conversation.contact_id, vip_level=0)
        except Exception:
            log.exception("bot rescue handoff failed", extra={"conversation_id": conversation_id})
            return TurnReport(message_id, "failed")
