"""Reads on conversations; ``access_*`` is the only way to load one for a caller.

Objects of another tenant and missing ones raise the same ``NotFound``, so ids leak nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.conversations import policies
from kefu.conversations.models import (
    Conversation,
    ConversationReadMarker,
    ConversationTag,
    DispositionCode,
    Message,
)
from kefu.conversations.schemas import ConversationRead, DispositionCodeRead, MessageRead
from kefu.core.db import like_escaped, run_core
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
    channel: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    sort: Literal["created", "last_activity"] = "created",
    after_activity: datetime | None = None,
    disposition: str | None = None,
) -> list[Conversation]:
    """Conversations of a tenant in creation order (or newest first); ``after_id`` continues a page.

    ``sort="last_activity"`` lists the most recently active first (last message, else creation) and
    continues after (``after_activity``, ``after_id``). ``text`` matches customer-visible message bodies
    and the subject, case-insensitively.
    """
    query = select(Conversation).where(Conversation.tenant_id == tenant_id)
    if channel is not None:
        query = query.where(Conversation.channel == channel)
    if tag is not None:
        query = query.where(Conversation.id.in_(select(ConversationTag.conversation_id).where(
            ConversationTag.tenant_id == tenant_id, ConversationTag.tag == tag)))
    if text is not None:
        pattern = "%" + like_escaped(text.lower()) + "%"
        query = query.where(or_(
            func.lower(Conversation.subject).like(pattern, escape="\\"),
            Conversation.id.in_(select(Message.conversation_id).where(
                Message.tenant_id == tenant_id, Message.private.is_(False),
                func.lower(Message.body).like(pattern, escape="\\")))))
    if status is not None:
        query = query.where(Conversation.status == status)
    if disposition is not None:
        query = query.where(Conversation.disposition == disposition)
    if inbox_id is not None:
        query = query.where(Conversation.inbox_id == inbox_id)
    if contact_id is not None:
        query = query.where(Conversation.contact_id == contact_id)
    if unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    elif assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    if sort == "last_activity":
        activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)
        if after_activity is not None and after_id is not None:
            query = query.where(or_(activity < after_activity,
                                    and_(activity == after_activity, Conversation.id < after_id)))
        query = query.order_by(activity.desc(), Conversation.id.desc())
        return list((await session.scalars(query.limit(limit))).all())
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


# Mapped attribute names of the conversation's columns, in table order (a new column is picked up by itself).
CONVERSATION_COLUMNS = tuple(attr.key for attr in sa_inspect(Conversation).column_attrs)


_column_values = operator.attrgetter(*CONVERSATION_COLUMNS)


class ConversationRow:
    """A conversation's columns as plain attributes, read with one column select: the chat hot path's
    set-based writers use it instead of an ORM instance (no identity map, no per-object flush). They change
    attributes as on the ORM object; ``conversations.actions`` saves a batch of them in one executemany.
    Plain attributes in the instance dictionary, filled in one call: a chat batch makes one per conversation."""

    def __init__(self, values: Iterable[Any]) -> None:
        loaded = tuple(values)
        if len(loaded) != len(CONVERSATION_COLUMNS):
            raise ValueError(f"{len(loaded)} values for {len(CONVERSATION_COLUMNS)} conversation columns")
        self.__dict__.update(zip(CONVERSATION_COLUMNS, loaded))
        self.loaded = loaded

    def changes(self) -> dict[str, Any]:
        """The columns changed since they were loaded (or last saved)."""
        return {key: value for key, value, before in zip(CONVERSATION_COLUMNS, _column_values(self), self.loaded)
                if value != before}

    def mark_saved(self) -> None:
        """The current values are stored now: later changes are counted from them."""
        self.loaded = _column_values(self)


_conversations = Conversation.__table__
# Pre-built column selects for the chat hot path's batch writers (see ``core.db.run_core``).
_CONVERSATION_COLUMNS_SELECT = select(*(_conversations.c[key] for key in CONVERSATION_COLUMNS))
_LIVE_CONVERSATION_ROWS = (
    _CONVERSATION_COLUMNS_SELECT
    .where(_conversations.c.contact_id.in_(bindparam("contact_ids", expanding=True)),
           _conversations.c.status.in_(("open", "pending")))
    .order_by(_conversations.c.id)
)
_CONVERSATION_ROWS = _CONVERSATION_COLUMNS_SELECT.where(_conversations.c.id.in_(bindparam("ids", expanding=True)))


async def live_conversation_rows(
    *, session: AsyncSession, contact_ids: Iterable[str]
) -> dict[tuple[str, str], ConversationRow]:
    """As ``live_conversations``, as ``ConversationRow`` values (for the widget's batch writer)."""
    live: dict[tuple[str, str], ConversationRow] = {}
    contact_ids = sorted(set(contact_ids))
    if not contact_ids:
        return live
    for values in await run_core(session, _LIVE_CONVERSATION_ROWS, {"contact_ids": contact_ids}):
        row = ConversationRow(values)
        live[(row.inbox_id, row.contact_id)] = row  # ascending ids: the newest wins
    return live


async def conversation_rows(*, session: AsyncSession, conversation_ids: Iterable[str]) -> dict[str, ConversationRow]:
    """Conversations by id as ``ConversationRow`` values (unknown ids are left out; callers check the tenant)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    rows = await run_core(session, _CONVERSATION_ROWS, {"ids": ids})
    return {row.id: row for row in map(ConversationRow, rows)}


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


def _unread_query(user_id: str) -> Select[tuple[str, int]]:
    """Customer messages after ``user_id``'s read mark, counted per conversation (filter the conversations)."""
    marker = ConversationReadMarker
    return (
        select(Message.conversation_id, func.count())
        .outerjoin(marker, and_(marker.conversation_id == Message.conversation_id, marker.user_id == user_id))
        .where(Message.sender_kind == "customer", Message.private.is_(False),
               or_(marker.last_read_message_id.is_(None), Message.id > marker.last_read_message_id))
        .group_by(Message.conversation_id)
    )


async def unread_counts(*, session: AsyncSession, user_id: str, conversation_ids: list[str]) -> dict[str, int]:
    """Per conversation: customer messages after the user's read mark (0 when none), in one query."""
    if not conversation_ids:
        return {}
    rows = (await session.execute(_unread_query(user_id).where(Message.conversation_id.in_(conversation_ids)))).all()
    counts = dict.fromkeys(conversation_ids, 0)
    counts.update({cid: int(n) for cid, n in rows})
    return counts


async def unread_total(
    *, session: AsyncSession, tenant_id: str, user_id: str, assignee_id: str | None, unassigned: bool = False
) -> tuple[int, int]:
    """(unread messages, conversations with any) over open and pending conversations of that assignee
    (``assignee_id=None`` and not ``unassigned``: every one of the tenant)."""
    live = select(Conversation.id).where(Conversation.tenant_id == tenant_id,
                                         Conversation.status.in_(("open", "pending")))
    if unassigned:
        live = live.where(Conversation.assignee_id.is_(None))
    elif assignee_id is not None:
        live = live.where(Conversation.assignee_id == assignee_id)
    rows = (await session.execute(_unread_query(user_id).where(Message.conversation_id.in_(live)))).all()
    return sum(int(n) for _, n in rows), sum(1 for _, n in rows if n)


async def read_marker(*, session: AsyncSession, conversation_id: str, user_id: str) -> ConversationReadMarker | None:
    return await session.get(ConversationReadMarker, (conversation_id, user_id))


async def conversations_by_ids(*, session: AsyncSession, tenant_id: str, ids: set[str]) -> list[Conversation]:
    if not ids:
        return []
    return list((await session.scalars(select(Conversation).where(
        Conversation.tenant_id == tenant_id, Conversation.id.in_(ids)).order_by(Conversation.id))).all())


def bot_customer_messages_query(*, since: datetime) -> Select[tuple[str, str, str]]:
    """A query (not run) of (tenant_id, conversation_id, message_id) for customer messages since ``since`` in
    live conversations the bot owns: the bot's sweep leaves out the ones it claimed, in SQL, before any limit."""
    return (
        select(Message.tenant_id.label("tenant_id"), Message.conversation_id.label("conversation_id"),
               Message.id.label("message_id"))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.owner_kind == "bot", Conversation.status.in_(("open", "pending")),
               Message.sender_kind == "customer", Message.private.is_(False), Message.created_at >= since)
    )


async def disposition_codes(
    *, session: AsyncSession, tenant_id: str, lang: str = "en", include_inactive: bool = False
) -> list[DispositionCodeRead]:
    """The tenant's dispositions: the built-in ones with the tenant's changes, then its own, by position."""
    rows = {r.code: r for r in await session.scalars(
        select(DispositionCode).where(DispositionCode.tenant_id == tenant_id))}
    out: list[DispositionCodeRead] = []
    for index, (code, zh, en) in enumerate(policies.DEFAULT_DISPOSITIONS):
        row = rows.pop(code, None)
        out.append(_disposition_read(code, row.label_zh if row else zh, row.label_en if row else en,
                                     row.position if row else (index + 1) * 10, row.active if row else True,
                                     True, lang))
    out.extend(_disposition_read(r.code, r.label_zh, r.label_en, r.position, r.active, False, lang)
               for r in rows.values())
    out.sort(key=lambda d: (d.position, d.code))
    return out if include_inactive else [d for d in out if d.active]


def _disposition_read(code: str, zh: str, en: str, position: int, active: bool, builtin: bool,
                      lang: str) -> DispositionCodeRead:
    return DispositionCodeRead(code=code, label=zh if lang == "zh" else en, label_zh=zh, label_en=en,
                               position=position, active=active, builtin=builtin)
