"""Helpers for the bot tests: a bot-enabled tenant, customers as the widget knows them, turns through the runner."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from kefu.bot import actions as bot_actions
from kefu.bot.runner import BotRunner, TurnReport
from kefu.bot.schemas import BotSettingsBase
from kefu.channels import actions as channel_actions
from kefu.channels.schemas import InboxCreate
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import actions as contact_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.models import Message
from kefu.runtime import Runtime
from tests.channels.chat import bearer, widget_history


async def enable_bot(runtime: Runtime, tenant_id: str, inbox_id: str, **settings: object) -> None:
    uow = runtime.unit_of_work()
    try:
        await bot_actions.do_update_settings(uow, tenant_id=tenant_id, inbox_id=inbox_id, row=None,
                                             data=BotSettingsBase(enabled=True, **settings), expected_version=None)
        await uow.commit()
    finally:
        await uow.session.close()


async def new_inbox(runtime: Runtime, tenant_id: str, name: str = "App chat") -> str:
    uow = runtime.unit_of_work()
    try:
        inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant_id, data=InboxCreate(name=name))
        await uow.commit()
        return inbox.id
    finally:
        await uow.session.close()


@dataclass
class Shopper:
    """A customer of the demo shop chatting in one inbox (verified as ``customer_id`` when given)."""

    runtime: Runtime
    runner: BotRunner
    tenant_id: str
    inbox_id: str
    contact_id: str
    visitor_id: str
    verified: bool
    conversation_id: str | None = None

    @property
    def claims(self) -> VisitorClaims:
        return VisitorClaims(self.tenant_id, self.inbox_id, self.contact_id, self.visitor_id, self.verified,
                             int(time.time()) + 3600)

    async def post(self, text: str) -> str:
        """Post a customer message (as the widget does) without letting the bot answer; returns its id."""
        uow = self.runtime.unit_of_work()
        try:
            message, _ = await channel_actions.do_post_visitor_message(
                uow, claims=self.claims, body=text, client_message_id=uuid.uuid4().hex)
            await uow.commit()
        finally:
            await uow.session.close()
        self.conversation_id = message.conversation_id
        return message.id

    async def says(self, text: str) -> tuple[TurnReport, list[str]]:
        """Post a message and let the bot answer it; returns the report and what the customer saw."""
        message_id = await self.post(text)
        report = await self.runner.handle_message(tenant_id=self.tenant_id, conversation_id=self.conversation_id,
                                                  message_id=message_id)
        return report, await bot_replies(self.runtime, self.conversation_id, message_id)


async def bot_replies(runtime: Runtime, conversation_id: str | None, message_id: str) -> list[str]:
    """The public bot messages answering one customer message."""
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Message).where(
            Message.conversation_id == conversation_id, Message.sender_kind == "bot", Message.private.is_(False),
            Message.client_message_id.like(f"bot:{message_id}:%")).order_by(Message.id))
        return [m.body for m in rows]


async def shopper(runtime: Runtime, runner: BotRunner, tenant_id: str, inbox_id: str, *,
                  customer_id: str | None = "c1001", visitor_id: str | None = None) -> Shopper:
    visitor_id = visitor_id or f"vis_{uuid.uuid4().hex[:20]}"
    identities: list[tuple[str, str, bool]] = [("visitor", visitor_id, False)]
    if customer_id:
        identities.insert(0, ("external", customer_id, True))
    uow = runtime.unit_of_work()
    try:
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant_id, identities=identities,
                                                           name=customer_id, email=None)
        await uow.commit()
    finally:
        await uow.session.close()
    return Shopper(runtime, runner, tenant_id, inbox_id, contact.id, visitor_id, customer_id is not None)


async def conversation_owner(runtime: Runtime, tenant_id: str, conversation_id: str) -> str:
    async with runtime.sessionmaker() as session:
        conversation = await conversation_service.access_conversation(session=session, tenant_id=tenant_id,
                                                                      conversation_id=conversation_id)
        return conversation.owner_kind


async def wait_for_bot(http: httpx.AsyncClient, visitor_token: str, count: int, *, timeout: float = 20.0) -> list[dict]:
    """Poll the widget history until the bot (and system) have said ``count`` messages in total."""
    deadline = time.monotonic() + timeout
    while True:
        history = await widget_history(http, visitor_token, limit=200)
        said = [m for m in history if m["sender_kind"] in ("bot", "system")]
        if len(said) >= count or time.monotonic() > deadline:
            return said
        await asyncio.sleep(0.1)


__all__ = ["bearer", "enable_bot", "new_inbox", "shopper", "bot_replies", "wait_for_bot", "conversation_owner"]
