"""Reads on conversations; ``access_*`` is the only way to load one for a caller.

Objects of another tenant and missing ones raise the same ``NotFound``, so ids leak nothing.
"""

from __future__ import annotations

from sqlalchemy import select
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
