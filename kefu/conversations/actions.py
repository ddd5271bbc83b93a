"""Writes on conversations: open one for a contact, post messages and notes, change status.

Every write emits its domain event through the unit of work; routing and bot hooks will be called from here
explicitly (later issues), never from ORM callbacks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kefu.conversations import policies
from kefu.conversations.models import Conversation, Message
from kefu.conversations.schemas import MessageRead
from kefu.conversations.service import conversation_read, message_read
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, ValidationFailed
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork


async def do_open_conversation(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    inbox_id: str,
    contact_id: str,
    channel: str,
    locale: str | None = None,
    owner_kind: str = "queue",
) -> Conversation:
    """Return the contact's live (open or pending) conversation in this inbox, or start a new one."""
    session = uow.session
    live = (
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.tenant_id == tenant_id,
                Conversation.inbox_id == inbox_id,
                Conversation.contact_id == contact_id,
                Conversation.status.in_(("open", "pending")),
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
    ).first()
    if live is not None:
        return live
    now = utcnow()
    conversation = Conversation(
        id=new_id("conv"), tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id, channel=channel,
        status="open", owner_kind=owner_kind, locale=locale, priority=0, message_count=0,
        created_at=now, updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    uow.emit(ev.CONVERSATION_CREATED, tenant_id=tenant_id, conversation_id=conversation.id, contact_id=contact_id,
             data={"conversation": conversation_read(conversation, []).model_dump(mode="json")})
    return conversation


async def do_post_message(
    uow: UnitOfWork,
    *,
    conversation: Conversation,
    sender_kind: str,
    sender_id: str | None,
    body: str,
    attachments: list[dict[str, Any]] | None = None,
    private: bool = False,
    client_message_id: str | None = None,
) -> tuple[MessageRead, bool]:
    """Append a message; returns (message, created). A repeated ``client_message_id`` returns the original."""
    session = uow.session
    attachments = attachments or []
    if not body.strip() and not attachments:
        raise ValidationFailed("empty_message")
    if conversation.status == "closed":
        raise Conflict("conversation_closed")
    if client_message_id is not None:
        existing = (
            await session.scalars(
                select(Message).where(
                    Message.conversation_id == conversation.id,
                    Message.sender_kind == sender_kind,
                    Message.client_message_id == client_message_id,
                )
            )
        ).first()
        if existing is not None:
            return message_read(existing), False
    now = utcnow()
    message = Message(
        id=new_id("msg"), tenant_id=conversation.tenant_id, conversation_id=conversation.id,
        sender_kind=sender_kind, sender_id=sender_id, body=body, content_type="text", attachments=attachments,
        private=private, client_message_id=client_message_id, delivery_status="sent", created_at=now,
    )
    session.add(message)
    status_changed = False
    if not private:
        conversation.last_message_at = now
        conversation.last_message_preview = policies.preview(body, attachments)
        if sender_kind == "customer" and conversation.status in ("resolved", "pending"):
            conversation.status = "open"
            conversation.resolved_at = None
            status_changed = True
        if sender_kind == "agent" and conversation.assignee_id is None and sender_id is not None:
            # Until routing (ACD) exists, the first agent to answer takes the conversation.
            conversation.assignee_id = sender_id
            conversation.owner_kind = "agent"
            status_changed = True
    conversation.message_count += 1
    conversation.updated_at = now
    conversation.version += 1
    await session.flush()
    read = message_read(message)
    uow.emit(ev.MESSAGE_CREATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
             contact_id=conversation.contact_id,
             data={"message": read.model_dump(mode="json"),
                   "conversation": {"id": conversation.id, "status": conversation.status,
                                    "assignee_id": conversation.assignee_id, "contact_id": conversation.contact_id,
                                    "inbox_id": conversation.inbox_id, "owner_kind": conversation.owner_kind,
                                    "last_message_preview": conversation.last_message_preview,
                                    "version": conversation.version}})
    if status_changed:
        uow.emit(ev.CONVERSATION_UPDATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
                 contact_id=conversation.contact_id,
                 data={"conversation": conversation_read(conversation, None).model_dump(mode="json")})
    return read, True
