"""Reads on conversations; ``access_*`` is the only way to load one for a caller.

Objects of another tenant and missing ones raise the same ``NotFound``, so ids leak nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.conversations.models import Conversation, ConversationTag, Message
from kefu.conversations.schemas import ConversationRead, MessageRead
from kefu.core.errors import NotFound


async def access_conversation(*, session: AsyncSession, tenant_id: str, conversation_id: str) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.tenant_id != tenant_id:
        raise NotFound("conversation_not_found")
    return conversation


async def tags_of(*, session: AsyncSession, conversation_ids: list[str]) -> dict[str, list[str]]:
    if not conversation_ids:
        return {}
    rows = (
        await session.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag)
            .where(ConversationTag.conversation_id.in_(conversation_ids))
            .order_by(ConversationTag.tag)
        )
    ).all()
    out: dict[str, list[str]] = {cid: [] for cid in conversation_ids}
    for cid, tag in rows:
        out[cid].append(tag)
    return out


async def list_conversations(
    *,
    session: AsyncSession,
    tenant_id: str,
    status: str | None = None,
    inbox_id: str | None = None,
    contact_id: str | None = None,
    assignee_id: str | None = None,
    unassigned: bool = False,
    after_id: str | None = None,
    limit: int = 50,
    order: Literal["asc", "desc"] = "asc",
) -> list[Conversation]:
    """Conversations of a tenant in creation order (or newest first); ``after_id`` continues a page."""
    query = select(Conversation).where(Conversation.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Conversation.status == status)
    if inbox_id is not None:
        query = query.where(Conversation.inbox_id == inbox_id)
    if contact_id is not None:
        query = query.where(Conversation.contact_id == contact_id)
    if unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    elif assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    if order == "desc":
        if after_id is not None:
            query = query.where(Conversation.id < after_id)
        query = query.order_by(Conversation.id.desc())
    else:
        if after_id is not None:
            query = query.where(Conversation.id > after_id)
        query = query.order_by(Conversation.id)
    return list((await session.scalars(query.limit(limit))).all())


async def live_conversation(
    *, session: AsyncSession, tenant_id: str, inbox_id: str, contact_id: str
) -> Conversation | None:
    """The contact's newest open or pending conversation in an inbox, the one new messages join."""
    return (
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


async def live_conversations(
    *, session: AsyncSession, contact_ids: Iterable[str]
) -> dict[tuple[str, str], Conversation]:
    """The newest open or pending conversation per (inbox id, contact id) of these contacts, in one query."""
    live: dict[tuple[str, str], Conversation] = {}
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.contact_id.in_(set(contact_ids)), Conversation.status.in_(("open", "pending")))
        .order_by(Conversation.id))
    for conversation in rows:
        live[(conversation.inbox_id, conversation.contact_id)] = conversation  # ascending ids: the newest wins
    return live


def conversation_ids_query(*, tenant_id: str, contact_id: str, inbox_id: str | None = None) -> Select[tuple[str]]:
    """A subquery of a contact's conversation ids (in one inbox), for filters in other domains' queries."""
    query = select(Conversation.id).where(Conversation.tenant_id == tenant_id, Conversation.contact_id == contact_id)
    if inbox_id is not None:
        query = query.where(Conversation.inbox_id == inbox_id)
    return query


async def list_contact_messages(
    *,
    session: AsyncSession,
    tenant_id: str,
    contact_id: str,
    inbox_id: str | None = None,
    after_id: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
    include_private: bool = False,
    newest: bool = False,
) -> list[Message]:
    """One contact's messages across their conversations, in id (= creation) order, paged like ``list_messages``.

    ``newest`` (with neither ``after_id`` nor ``before_id``) returns the last ``limit`` messages, what a chat
    window shows first.
    """
    ids = conversation_ids_query(tenant_id=tenant_id, contact_id=contact_id, inbox_id=inbox_id)
    query = select(Message).where(Message.conversation_id.in_(ids))
    if not include_private:
        query = query.where(Message.private.is_(False))
    if before_id is not None or (newest and after_id is None):
        if before_id is not None:
            query = query.where(Message.id < before_id)
        rows = (await session.scalars(query.order_by(Message.id.desc()).limit(limit))).all()
        return list(reversed(rows))
    if after_id is not None:
        query = query.where(Message.id > after_id)
    return list((await session.scalars(query.order_by(Message.id).limit(limit))).all())


async def access_message(*, session: AsyncSession, tenant_id: str, message_id: str) -> Message:
    message = await session.get(Message, message_id) if isinstance(message_id, str) else None
    if message is None or message.tenant_id != tenant_id:
        raise NotFound("message_not_found")
    return message


async def find_message_by_client_id(
    *, session: AsyncSession, conversation_id: str, sender_kind: str, client_message_id: str
) -> Message | None:
    return (
        await session.scalars(
            select(Message).where(
                Message.conversation_id == conversation_id,
                Message.sender_kind == sender_kind,
                Message.client_message_id == client_message_id,
            )
        )
    ).first()


async def conversation_reads(*, session: AsyncSession, conversations: list[Conversation]) -> list[ConversationRead]:
    """Conversations with their tags, in one extra query."""
    tags = await tags_of(session=session, conversation_ids=[c.id for c in conversations])
    return [conversation_read(c, tags.get(c.id, [])) for c in conversations]


async def conversation_read_with_tags(*, session: AsyncSession, conversation: Conversation) -> ConversationRead:
    tags = await tags_of(session=session, conversation_ids=[conversation.id])
    return conversation_read(conversation, tags.get(conversation.id, []))


async def export_conversations(
    *, session: AsyncSession, tenant_id: str, contact_id: str
) -> list[tuple[ConversationRead, list[MessageRead]]]:
    """All of a contact's conversations with every message (internal notes included), oldest first."""
    conversations = list(
        (
            await session.scalars(
                select(Conversation)
                .where(Conversation.tenant_id == tenant_id, Conversation.contact_id == contact_id)
                .order_by(Conversation.id)
            )
        ).all()
    )
    reads = await conversation_reads(session=session, conversations=conversations)
    by_conversation: dict[str, list[MessageRead]] = {c.id: [] for c in conversations}
    if conversations:
        messages = (
            await session.scalars(
                select(Message).where(Message.conversation_id.in_(list(by_conversation))).order_by(Message.id)
            )
        ).all()
        for message in messages:
            by_conversation[message.conversation_id].append(message_read(message))
    return [(read, by_conversation[read.id]) for read in reads]


def conversation_read(conversation: Conversation, tags: list[str] | None = None) -> ConversationRead:
    read = ConversationRead.model_validate(conversation)
    if tags is not None:
        read.tags = tags
    return read


def message_read(message: Message) -> MessageRead:
    return MessageRead.model_validate(message)


async def list_messages(
    *,
    session: AsyncSession,
    conversation_id: str,
    after_id: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
    include_private: bool = True,
) -> list[Message]:
    """Messages in id (= creation) order; ``before_id`` pages backwards, newest first, then re-sorted."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if not include_private:
        query = query.where(Message.private.is_(False))
    if before_id is not None:
        rows = (await session.scalars(query.where(Message.id < before_id).order_by(Message.id.desc()).limit(limit))).all()
        return list(reversed(rows))
    if after_id is not None:
        query = query.where(Message.id > after_id)
    return list((await session.scalars(query.order_by(Message.id).limit(limit))).all())
