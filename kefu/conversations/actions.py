"""Writes on conversations: open one for a contact, post messages and notes, change status, assignee and
tags, and hand conversations between contacts when contacts are merged.

Every write emits its domain event through the unit of work; routing and bot hooks will be called from here
explicitly (later issues), never from ORM callbacks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from kefu.attachments import actions as attachment_actions
from kefu.attachments import service as attachment_service
from kefu.auth import service as auth_service
from kefu.conversations import policies
from kefu.conversations import service as conversation_service
from kefu.conversations.models import (
    Conversation,
    ConversationReadMarker,
    ConversationTag,
    DispositionCode,
    Message,
)
from kefu.conversations.schemas import (
    ConversationRead,
    DispositionCodeCreate,
    DispositionCodeRead,
    MessageRead,
)
from kefu.conversations.service import conversation_read, message_read
from kefu.core.bulk import insert_rows, update_rows
from kefu.core.clock import utcnow
from kefu.core.db import run_core
from kefu.core.errors import Conflict, DomainError, NotFound, ValidationFailed, check_version
from kefu.core.i18n import translate
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork
from kefu.routing import actions as routing_actions


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
    live = await conversation_service.live_conversation(
        session=uow.session, tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id)
    if live is not None:
        return live
    conversation = do_start_conversation(uow, tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id,
                                         channel=channel, locale=locale, owner_kind=owner_kind)
    await uow.session.flush()
    return conversation


def _new_conversation_values(*, tenant_id: str, inbox_id: str, contact_id: str, channel: str, locale: str | None,
                             owner_kind: str) -> dict[str, Any]:
    """Every column of a new conversation (for an ORM ``Conversation`` or a ``ConversationRow``)."""
    now = utcnow()
    values = dict.fromkeys(conversation_service.CONVERSATION_COLUMNS)
    values.update(id=new_id("conv"), tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id, channel=channel,
                  status="open", owner_kind=owner_kind, priority=0, locale=locale, message_count=0, version=1,
                  created_at=now, updated_at=now)
    return values


def _announce_new(uow: UnitOfWork, conversation: Any) -> None:
    uow.emit(ev.CONVERSATION_CREATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
             contact_id=conversation.contact_id,
             data={"conversation": conversation_read(conversation, []).model_dump(mode="json")})


def do_start_conversation(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    inbox_id: str,
    contact_id: str,
    channel: str,
    locale: str | None = None,
    owner_kind: str = "queue",
) -> Conversation:
    """Start a new conversation (the caller knows the contact has no live one); flushed with the batch."""
    conversation = Conversation(**_new_conversation_values(
        tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id, channel=channel, locale=locale,
        owner_kind=owner_kind))
    uow.session.add(conversation)
    _announce_new(uow, conversation)
    if owner_kind == "queue":
        routing_actions.enqueue_new_conversation(uow, conversation=conversation)
    return conversation


def start_conversation_row(uow: UnitOfWork, *, tenant_id: str, inbox_id: str, contact_id: str, channel: str,
                           locale: str | None, owner_kind: str) -> conversation_service.ConversationRow:
    """``do_start_conversation`` for a batch writer: a ``ConversationRow``, written later with the batch's other new
    ones and their routing tasks in one multi-row INSERT each (``insert_new_conversation_rows``), not as ORM
    objects: opening a conversation cost the widget's group commit four times an appended message, most of it in
    ORM instances and their flush (``bench/group_commit.py --opening``)."""
    row = conversation_service.ConversationRow(_new_conversation_values(
        tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact_id, channel=channel, locale=locale,
        owner_kind=owner_kind).values())
    _announce_new(uow, row)
    return row


async def insert_new_conversation_rows(uow: UnitOfWork, rows: Sequence[conversation_service.ConversationRow]) -> None:
    """Insert the rows ``start_conversation_row`` made as they were made (later changes are saved with the batch's
    other conversations), and the routing tasks of the queue-owned ones."""
    if not rows:
        return
    await insert_rows(uow.session, _conversations, [dict(zip(conversation_service.CONVERSATION_COLUMNS, row.loaded,
                                                                  strict=True)) for row in rows])
    await routing_actions.insert_new_conversation_tasks(uow, [row for row in rows if row.owner_kind == "queue"])


@dataclass(frozen=True, slots=True)
class MessagePost:
    """One message to append to an already loaded conversation (an ORM instance, or a ``ConversationRow`` from
    the batch writers, whose changes ``do_post_messages`` saves itself)."""

    conversation: Conversation | conversation_service.ConversationRow
    sender_kind: str
    sender_id: str | None
    body: str
    attachments: Sequence[dict[str, Any]] | None = ()
    private: bool = False
    client_message_id: str | None = None
    content_type: str = "text"
    visitor_id: str | None = None  # a widget customer's visitor id: they may attach only their own uploads


PostOutcome = tuple[MessageRead, bool] | DomainError


_messages = Message.__table__
_conversations = Conversation.__table__
_KEYS_PER_LOOKUP = 256  # the group committer's largest batch


@functools.cache
def _stored_client_ids(size: int) -> Any:
    """Ids of stored messages by exact (conversation, sender kind, client id) key, for ``size`` keys.

    A join with the keys as a VALUES list, so each key is one probe of the unique index. Filtering by
    ``conversation_id IN (…) AND client_message_id IN (…)`` instead made SQLite walk every message of each
    named conversation (the unique index's first column only): 3.9 ms per chat batch, growing with the
    conversations' length (temporary per-statement timing, docs/benchmarks.md). Built once per power-of-two
    size; shorter key lists repeat their last key.
    """
    keys = ", ".join(f"(:c{i}, :s{i}, :m{i})" for i in range(size))
    # Text, not Core's values(): a statement with a VALUES list has no cache key, so SQLAlchemy compiled it
    # on every call (about 5% of a busy node's CPU).
    return text(f"WITH k (conversation_id, sender_kind, client_message_id) AS (VALUES {keys}) "
                "SELECT m.conversation_id, m.sender_kind, m.client_message_id, m.id FROM k JOIN messages AS m "
                "ON m.conversation_id = k.conversation_id AND m.sender_kind = k.sender_kind "
                "AND m.client_message_id = k.client_message_id")


async def _stored_message_ids(session: Any, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """{(conversation id, sender kind, client id): message id} for the keys already stored."""
    found: dict[tuple[str, str, str], str] = {}
    for start in range(0, len(keys), _KEYS_PER_LOOKUP):
        chunk = list(keys[start:start + _KEYS_PER_LOOKUP])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += [chunk[-1]] * (size - len(chunk))
        params: dict[str, str] = {}
        for i, (conversation_id, sender_kind, client_id) in enumerate(chunk):
            params[f"c{i}"], params[f"s{i}"], params[f"m{i}"] = conversation_id, sender_kind, client_id
        for row in await run_core(session, _stored_client_ids(size), params):
            found[(row[0], row[1], row[2])] = row[3]
    return found


async def do_post_messages(uow: UnitOfWork, posts: Sequence[MessagePost]) -> list[PostOutcome]:
    """Append many messages with a fixed number of statements; one outcome per post, in order.

    Each outcome is (message, created) or the ``DomainError`` refusing that post (nothing is written for
    it). A repeated ``client_message_id`` (stored earlier, or twice in this batch) returns the original.
    Inserts and updates are left to the commit's flush, which sends them as a few multi-row statements.
    """
    session = uow.session
    posts = list(posts)  # attachment references are resolved in place
    outcomes: list[PostOutcome | None] = [None] * len(posts)
    valid: list[int] = []
    for index, post in enumerate(posts):
        if not post.body.strip() and not post.attachments:
            outcomes[index] = ValidationFailed("empty_message")
        elif post.conversation.status == "closed":
            outcomes[index] = Conflict("conversation_closed")
        else:
            valid.append(index)
    valid = await _resolve_attachments(session, posts, outcomes, valid)
    keyed = [posts[i] for i in valid if posts[i].client_message_id is not None]
    stored: dict[tuple[str, str, str | None], MessageRead] = {}
    if keyed:
        # Keys only, with a pre-built statement (every chat batch runs it); the rare repeats load the row.
        found = await _stored_message_ids(session, sorted({
            (p.conversation.id, p.sender_kind, p.client_message_id) for p in keyed}))  # type: ignore[misc]
        if found:
            rows = await session.scalars(select(Message).where(Message.id.in_(found.values())))
            stored = {(m.conversation_id, m.sender_kind, m.client_message_id): message_read(m) for m in rows}
    # A twin request on another connection or node may insert the same client id between our read and our
    # insert; on PostgreSQL a single post guards against that (below). SQLite cannot race: every writing
    # transaction holds the database's only write lock from its first statement (``BEGIN IMMEDIATE``).
    race_safe = len(posts) == 1 and session.get_bind().dialect.name != "sqlite"
    bulk: list[dict[str, Any]] = []
    owners = {posts[i].conversation.id: _ownership(posts[i].conversation) for i in valid}
    for index in valid:
        post = posts[index]
        conversation = post.conversation
        key = (conversation.id, post.sender_kind, post.client_message_id)
        if post.client_message_id is not None and key in stored:
            outcomes[index] = (stored[key], False)
            continue
        now = utcnow()
        values = {"id": new_id("msg"), "tenant_id": conversation.tenant_id, "conversation_id": conversation.id,
                  "sender_kind": post.sender_kind, "sender_id": post.sender_id, "body": post.body,
                  "content_type": post.content_type, "attachments": list(post.attachments or ()),
                  "private": post.private, "client_message_id": post.client_message_id,
                  "delivery_status": "sent", "created_at": now}
        if race_safe and post.client_message_id is not None:
            # PostgreSQL makes us wait for the twin's commit, then fails the unique key: answer with its row.
            # Batches of several skip this; a violation there reruns each post alone.
            try:
                async with session.begin_nested():
                    session.add(Message(**values))
                    await session.flush()
            except IntegrityError:
                existing = await conversation_service.find_message_by_client_id(
                    session=session, conversation_id=conversation.id, sender_kind=post.sender_kind,
                    client_message_id=post.client_message_id)
                if existing is None:
                    raise
                outcomes[index] = (message_read(existing), False)
                continue
        else:
            bulk.append(values)
        read = MessageRead.model_validate(values)
        if post.client_message_id is not None:
            stored[key] = read
        _apply_message(uow, conversation, post, read, now)
        outcomes[index] = (read, True)
    if bulk:
        await session.flush()  # conversations started in this batch must exist before their messages
        await insert_rows(session, _messages, bulk)
    await _save_conversation_rows(uow, [posts[i].conversation for i in valid])
    for index in valid:
        outcome, post = outcomes[index], posts[index]
        uploads = [a["id"] for a in post.attachments or () if a.get("id")]
        if uploads and isinstance(outcome, tuple) and outcome[1]:
            await attachment_actions.do_attach_to_conversation(
                uow, tenant_id=post.conversation.tenant_id, conversation_id=post.conversation.id,
                attachment_ids=uploads, public=not post.private)
    # A customer reopening a conversation or an agent answering first changes who owns it: tell routing.
    changed = {posts[i].conversation.id: posts[i].conversation for i in valid
               if _ownership(posts[i].conversation) != owners[posts[i].conversation.id]}
    if changed:
        await routing_actions.do_sync_conversations(uow, conversations=list(changed.values()))
    return outcomes  # type: ignore[return-value]


async def _save_conversation_rows(uow: UnitOfWork, conversations: Sequence[Any]) -> None:
    """Write the changes of the ``ConversationRow`` values among ``conversations`` with one executemany UPDATE
    by primary key (ORM instances are flushed by the session as usual)."""
    rows = {c.id: c for c in conversations if isinstance(c, conversation_service.ConversationRow)}
    changes = {row_id: row.changes() for row_id, row in rows.items()}
    columns = sorted({key for changed in changes.values() for key in changed})
    if not columns:
        return
    # One executemany (the ORM's bulk UPDATE by primary key costs about twice as much per row).
    await update_rows(uow.session, _conversations, [
        {"id": row_id, **{key: getattr(rows[row_id], key) for key in columns}}
        for row_id, changed in changes.items() if changed])
    for row_id, changed in changes.items():
        if changed:
            rows[row_id].mark_saved()


def _ownership(conversation: Conversation) -> tuple[str, str, str | None]:
    return conversation.status, conversation.owner_kind, conversation.assignee_id


async def _resolve_attachments(session: Any, posts: Sequence[MessagePost], outcomes: list[PostOutcome | None],
                               valid: list[int]) -> list[int]:
    """Replace ``{"id": "att_…"}`` references with the stored metadata (one query for the whole batch);
    a post naming an upload it may not use is refused with ``invalid_attachment``."""
    wanted = {a["id"] for i in valid for a in posts[i].attachments or () if a.get("id")}
    if not wanted:
        return valid
    stored = await attachment_service.load_many(session=session, attachment_ids=wanted)
    kept = []
    for index in valid:
        post = posts[index]
        if not any(a.get("id") for a in post.attachments or ()):
            kept.append(index)
            continue
        resolved = []
        for item in post.attachments or ():
            if not item.get("id"):
                resolved.append(item)
                continue
            found = stored.get(item["id"])
            if not attachment_service.may_reference(found, tenant_id=post.conversation.tenant_id,
                                                    sender_kind=post.sender_kind, inbox_id=post.conversation.inbox_id,
                                                    conversation_id=post.conversation.id, visitor_id=post.visitor_id):
                resolved = None
                break
            if attachment_service.needs_copy(found, conversation_id=post.conversation.id):  # type: ignore[arg-type]
                found = await attachment_actions.do_copy_to_conversation(  # staff re-sending another chat's file
                    session, source=found, conversation_id=post.conversation.id)  # type: ignore[arg-type]
            resolved.append(attachment_service.message_attachment(found))  # type: ignore[arg-type]
        if resolved is None:
            outcomes[index] = ValidationFailed("invalid_attachment", details={"field": "attachments"})
            continue
        posts[index] = replace(post, attachments=resolved)  # type: ignore[index]  (a list, see the caller)
        kept.append(index)
    return kept


def _apply_message(uow: UnitOfWork, conversation: Conversation, post: MessagePost, read: MessageRead,
                   now: datetime) -> None:
    """Update the conversation for a new message and emit its events."""
    status_changed = False
    if not post.private:
        conversation.last_message_at = now
        conversation.last_message_preview = policies.preview(post.body, list(post.attachments or ()))
        if post.sender_kind == "customer" and conversation.status in ("resolved", "pending"):
            conversation.status = "open"
            conversation.resolved_at = None
            conversation.disposition = None  # the resolution's note in the timeline keeps the history
            status_changed = True
        if post.sender_kind == "agent" and conversation.assignee_id is None and post.sender_id is not None:
            # Until routing (ACD) exists, the first agent to answer takes the conversation.
            conversation.assignee_id = post.sender_id
            conversation.owner_kind = "agent"
            status_changed = True
    conversation.message_count += 1
    conversation.updated_at = now
    conversation.version += 1
    uow.emit(ev.MESSAGE_CREATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
             contact_id=conversation.contact_id,
             data={"message": read.json_payload(),
                   "conversation": {"id": conversation.id, "status": conversation.status,
                                    "assignee_id": conversation.assignee_id, "contact_id": conversation.contact_id,
                                    "inbox_id": conversation.inbox_id, "owner_kind": conversation.owner_kind,
                                    "last_message_preview": conversation.last_message_preview,
                                    "version": conversation.version}})
    if status_changed:
        uow.emit(ev.CONVERSATION_UPDATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
                 contact_id=conversation.contact_id,
                 data={"conversation": conversation_read(conversation, None).model_dump(mode="json")})


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
    content_type: str = "text",
) -> tuple[MessageRead, bool]:
    """Append one message; returns (message, created). A repeated ``client_message_id`` returns the original."""
    [outcome] = await do_post_messages(uow, [MessagePost(
        conversation=conversation, sender_kind=sender_kind, sender_id=sender_id, body=body,
        attachments=attachments or [], private=private, client_message_id=client_message_id,
        content_type=content_type)])
    if isinstance(outcome, DomainError):
        raise outcome
    await uow.session.flush()
    return outcome


@dataclass(frozen=True, slots=True)
class AgentPost:
    """A reply or internal note from an agent (or an integration, as ``bot``) to a conversation by id."""

    tenant_id: str
    conversation_id: str
    sender_kind: str
    sender_id: str | None
    body: str
    attachments: Sequence[dict[str, Any]] | None = ()
    private: bool = False
    client_message_id: str | None = None


async def do_post_agent_messages(uow: UnitOfWork, items: Sequence[AgentPost]) -> list[PostOutcome]:
    """Batch form for the agent WebSocket: load every named conversation in one query, then append."""
    conversations = await conversation_service.conversation_rows(
        session=uow.session, conversation_ids={item.conversation_id for item in items})
    outcomes: list[PostOutcome | None] = [None] * len(items)
    posts: list[MessagePost] = []
    slots: list[int] = []
    for index, item in enumerate(items):
        conversation = conversations.get(item.conversation_id)
        if conversation is None or conversation.tenant_id != item.tenant_id:
            outcomes[index] = NotFound("conversation_not_found")
            continue
        posts.append(MessagePost(conversation=conversation, sender_kind=item.sender_kind, sender_id=item.sender_id,
                                 body=item.body, attachments=item.attachments, private=item.private,
                                 client_message_id=item.client_message_id))
        slots.append(index)
    for index, outcome in zip(slots, await do_post_messages(uow, posts), strict=True):
        outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]


# Whose messages a reader marks as read: the customer reads the shop's side, agents read the customer's.
_READ_BY = {"customer": ("agent", "bot", "system"), "agent": ("customer",)}


async def do_mark_read(
    uow: UnitOfWork, *, conversation: Conversation, reader_kind: str, up_to_message_id: str
) -> list[str]:
    """Mark the other side's messages up to and including ``up_to_message_id`` as read; return their ids.

    Internal notes are never marked (the customer never sees them). Emits ``message.updated`` with the ids,
    so the other side's screen shows the receipt live; marking again changes nothing and emits nothing.
    """
    ids = list((await uow.session.scalars(
        select(Message.id).where(
            Message.conversation_id == conversation.id, Message.id <= up_to_message_id,
            Message.sender_kind.in_(_READ_BY[reader_kind]), Message.private.is_(False),
            Message.delivery_status != "read")
        .order_by(Message.id))).all())
    if not ids:
        return []
    await uow.session.execute(update(Message).where(Message.id.in_(ids)).values(delivery_status="read"))
    uow.emit(ev.MESSAGE_UPDATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
             contact_id=conversation.contact_id,
             data={"read": {"message_ids": ids, "by": reader_kind, "up_to_message_id": up_to_message_id},
                   "conversation": {"id": conversation.id, "status": conversation.status,
                                    "inbox_id": conversation.inbox_id}})
    return ids


async def do_advance_read_marker(
    uow: UnitOfWork, *, conversation: Conversation, user_id: str, up_to_message_id: str
) -> str:
    """Move ``user_id``'s read mark on this conversation forwards to ``up_to_message_id`` (never back);
    returns the mark now stored. Private to that agent: nothing is emitted."""
    session = uow.session
    marker = await conversation_service.read_marker(session=session, conversation_id=conversation.id, user_id=user_id)
    if marker is None:
        try:
            async with session.begin_nested():
                session.add(ConversationReadMarker(conversation_id=conversation.id, user_id=user_id,
                                                   tenant_id=conversation.tenant_id,
                                                   last_read_message_id=up_to_message_id, updated_at=utcnow()))
                await session.flush()
            return up_to_message_id
        except IntegrityError:  # the same agent's other tab won the insert; move that row instead
            marker = await conversation_service.read_marker(session=session, conversation_id=conversation.id,
                                                            user_id=user_id)
            if marker is None:
                raise
    if up_to_message_id > marker.last_read_message_id:
        await session.execute(update(ConversationReadMarker).where(
            ConversationReadMarker.conversation_id == conversation.id, ConversationReadMarker.user_id == user_id,
            ConversationReadMarker.last_read_message_id < up_to_message_id,
        ).values(last_read_message_id=up_to_message_id, updated_at=utcnow()))
        return up_to_message_id
    return marker.last_read_message_id


async def _emit_updated(uow: UnitOfWork, conversation: Conversation) -> ConversationRead:
    read = await conversation_service.conversation_read_with_tags(session=uow.session, conversation=conversation)
    uow.emit(ev.CONVERSATION_UPDATED, tenant_id=conversation.tenant_id, conversation_id=conversation.id,
             contact_id=conversation.contact_id, data={"conversation": read.model_dump(mode="json")})
    return read


def _touch(conversation: Conversation) -> None:
    conversation.version += 1
    conversation.updated_at = utcnow()


async def _apply_status(uow: UnitOfWork, *, conversation: Conversation, status: str, default_locale: str) -> None:
    """Move to ``status`` if the rules allow it, with a system message the customer sees where it matters."""
    current = conversation.status
    if status == current:
        return
    if not policies.can_transition(current, status):
        raise Conflict("invalid_status_transition", details={"from_status": current, "to_status": status},
                       from_status=current, to_status=status)
    conversation.status = status
    if status == "resolved":
        conversation.resolved_at = utcnow()
    elif status in ("open", "pending"):
        conversation.resolved_at = None
        conversation.disposition = None  # the resolution's note in the timeline keeps the history
    key = policies.status_message_key(current, status)
    if key is not None:
        # Written in the customer's language: they read it in the widget; agents see it in the timeline.
        await do_post_message(uow, conversation=conversation, sender_kind="system", sender_id=None,
                              body=translate(key, conversation.locale or default_locale), content_type="system")


async def do_change_status(
    uow: UnitOfWork,
    *,
    conversation: Conversation,
    status: str,
    expected_version: int | None = None,
    default_locale: str = "en",
    disposition: str | None = None,
) -> ConversationRead:
    """Resolve, reopen, park or close a conversation (see ``policies.ALLOWED_TRANSITIONS``).

    ``disposition`` (resolving or closing only) records how it ended; resolving an already resolved
    conversation with another disposition changes just that.
    """
    check_version(conversation.version, expected_version)
    label = await _check_disposition(uow, conversation=conversation, status=status, disposition=disposition,
                                     default_locale=default_locale)
    if status == conversation.status and (disposition is None or disposition == conversation.disposition):
        return await conversation_service.conversation_read_with_tags(session=uow.session, conversation=conversation)
    _touch(conversation)
    await _apply_status(uow, conversation=conversation, status=status, default_locale=default_locale)
    if disposition is not None:
        await _set_disposition(uow, conversation=conversation, disposition=disposition, label=label,
                               default_locale=default_locale)
    await uow.session.flush()
    await routing_actions.do_sync_conversation(uow, tenant_id=conversation.tenant_id, conversation=conversation)
    return await _emit_updated(uow, conversation)


async def do_update_conversation(
    uow: UnitOfWork,
    *,
    conversation: Conversation,
    changes: dict[str, Any],
    expected_version: int | None = None,
    default_locale: str = "en",
) -> ConversationRead:
    """Apply an agent's edit (status, assignee, priority, subject, disposition); ``changes`` holds only the
    fields sent."""
    check_version(conversation.version, expected_version)
    session = uow.session
    changed = False
    label = None
    if "disposition" in changes:  # checked first: a refused disposition changes nothing
        label = await _check_disposition(uow, conversation=conversation,
                                         status=changes.get("status") or conversation.status,
                                         disposition=changes["disposition"], default_locale=default_locale)
    if "assignee_id" in changes and changes["assignee_id"] != conversation.assignee_id:
        assignee_id = changes["assignee_id"]
        if assignee_id is not None:
            try:
                user = await auth_service.access_user(session=session, tenant_id=conversation.tenant_id,
                                                      user_id=assignee_id)
            except NotFound:
                user = None
            if user is None or not user.is_active:
                raise ValidationFailed("invalid_assignee", details={"field": "assignee_id"})
        conversation.assignee_id = assignee_id
        conversation.owner_kind = "agent" if assignee_id is not None else "queue"
        changed = True
    for field in ("priority", "subject"):
        if field in changes and changes[field] != getattr(conversation, field):
            if field == "priority" and changes[field] is None:
                raise ValidationFailed("validation_error", details={"field": "priority"})
            setattr(conversation, field, changes[field])
            changed = True
    if "status" in changes and changes["status"] is None:
        raise ValidationFailed("validation_error", details={"field": "status"})
    new_status = changes.get("status")
    if new_status is not None and new_status != conversation.status:
        changed = True
    if "disposition" in changes and changes["disposition"] != conversation.disposition:
        changed = True
    if not changed:
        return await conversation_service.conversation_read_with_tags(session=session, conversation=conversation)
    _touch(conversation)
    if new_status is not None:
        # Last, so that its system message's event carries the conversation with the other edits applied.
        await _apply_status(uow, conversation=conversation, status=new_status, default_locale=default_locale)
    if "disposition" in changes:
        await _set_disposition(uow, conversation=conversation, disposition=changes["disposition"], label=label,
                               default_locale=default_locale)
    await session.flush()
    await routing_actions.do_sync_conversation(uow, tenant_id=conversation.tenant_id, conversation=conversation)
    return await _emit_updated(uow, conversation)


async def do_add_tag(uow: UnitOfWork, *, conversation: Conversation, tag: str) -> ConversationRead:
    """Tag a conversation; tagging twice is a no-op (PUT semantics)."""
    session = uow.session
    tag = policies.normalise_tag(tag)
    if not policies.valid_tag(tag):
        raise ValidationFailed("invalid_tag", details={"field": "tag", "max_length": policies.TAG_MAX_CHARS},
                               max_length=policies.TAG_MAX_CHARS)
    if await session.get(ConversationTag, (conversation.id, tag)) is None:
        try:
            async with session.begin_nested():
                session.add(ConversationTag(conversation_id=conversation.id, tag=tag,
                                            tenant_id=conversation.tenant_id, created_at=utcnow()))
                await session.flush()
        except IntegrityError:  # a concurrent PUT of the same tag won; the result is the same
            return await conversation_service.conversation_read_with_tags(session=session, conversation=conversation)
        _touch(conversation)
        await session.flush()
        return await _emit_updated(uow, conversation)
    return await conversation_service.conversation_read_with_tags(session=session, conversation=conversation)


async def do_remove_tag(uow: UnitOfWork, *, conversation: Conversation, tag: str) -> ConversationRead:
    """Untag a conversation; removing a tag it does not have is a no-op (DELETE is idempotent)."""
    session = uow.session
    row = await session.get(ConversationTag, (conversation.id, policies.normalise_tag(tag)))
    if row is not None:
        await session.delete(row)
        _touch(conversation)
        await session.flush()
        return await _emit_updated(uow, conversation)
    return await conversation_service.conversation_read_with_tags(session=session, conversation=conversation)


async def do_move_conversations(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    from_contact_id: str,
    to_contact_id: str,
    conversation_ids: list[str] | None = None,
) -> list[str]:
    """Hand conversations of one contact to another (contact merges); ``None`` moves all of them.

    Only conversations still owned by ``from_contact_id`` move, so a revert never steals conversations
    that changed hands since. Returns the ids that moved, in creation order.
    """
    query = select(Conversation).where(Conversation.tenant_id == tenant_id,
                                       Conversation.contact_id == from_contact_id)
    if conversation_ids is not None:
        if not conversation_ids:
            return []
        query = query.where(Conversation.id.in_(conversation_ids))
    conversations = list((await uow.session.scalars(query.order_by(Conversation.id))).all())
    for conversation in conversations:
        conversation.contact_id = to_contact_id
        _touch(conversation)
    await uow.session.flush()
    for conversation in conversations:
        await _emit_updated(uow, conversation)
    return [c.id for c in conversations]


async def do_set_owner(uow: UnitOfWork, *, conversation: Conversation, owner_kind: str,
                       priority: int | None = None) -> ConversationRead:
    """Hand a conversation between the bot and people (``bot`` → ``queue``), e.g. on a bot handoff."""
    if owner_kind not in ("bot", "queue", "agent"):
        raise ValidationFailed("validation_error", details={"field": "owner_kind"})
    if conversation.owner_kind == owner_kind and (priority is None or priority <= conversation.priority):
        return await conversation_service.conversation_read_with_tags(session=uow.session, conversation=conversation)
    conversation.owner_kind = owner_kind
    if priority is not None and priority > conversation.priority:
        conversation.priority = priority
    _touch(conversation)
    await uow.session.flush()
    await routing_actions.do_sync_conversation(uow, tenant_id=conversation.tenant_id, conversation=conversation)
    return await _emit_updated(uow, conversation)


async def _check_disposition(uow: UnitOfWork, *, conversation: Conversation, status: str, disposition: str | None,
                             default_locale: str) -> str | None:
    """Refuse a disposition unless the conversation ends up resolved or closed and the code is one of the
    tenant's active ones; returns its label (in ``default_locale``) for the timeline note."""
    if disposition is None:
        return None
    if status not in ("resolved", "closed"):
        raise ValidationFailed("disposition_not_allowed", details={"field": "disposition", "status": status},
                               to_status=status)
    codes = await conversation_service.disposition_codes(session=uow.session, tenant_id=conversation.tenant_id,
                                                         lang=default_locale)
    for code in codes:
        if code.code == disposition:
            return code.label
    raise ValidationFailed("unknown_disposition",
                           details={"field": "disposition", "allowed": [c.code for c in codes]},
                           disposition=disposition)


async def _set_disposition(uow: UnitOfWork, *, conversation: Conversation, disposition: str | None,
                           label: str | None, default_locale: str) -> None:
    """Record how the resolution ended; a private note keeps it in the timeline after a reopen clears it."""
    if disposition == conversation.disposition:
        return
    conversation.disposition = disposition
    key = "system.disposition_set" if disposition is not None else "system.disposition_cleared"
    await do_post_message(uow, conversation=conversation, sender_kind="system", sender_id=None, private=True,
                          body=translate(key, default_locale, label=label or "", code=disposition or ""),
                          content_type="system")


async def do_create_disposition_code(uow: UnitOfWork, *, tenant_id: str, data: DispositionCodeCreate,
                                     default_locale: str = "en") -> DispositionCodeRead:
    """Add a code of the tenant's own to its disposition list."""
    if not policies.valid_disposition_code(data.code):
        raise ValidationFailed("invalid_disposition_code", details={"field": "code"},
                               max_length=policies.DISPOSITION_CODE_CHARS)
    label_zh, label_en = _labels(data.label_zh, data.label_en)
    session = uow.session
    codes = await conversation_service.disposition_codes(session=session, tenant_id=tenant_id, include_inactive=True)
    if any(c.code == data.code for c in codes):
        raise Conflict("disposition_code_taken", details={"field": "code"})
    now = utcnow()
    try:
        async with session.begin_nested():
            session.add(DispositionCode(tenant_id=tenant_id, code=data.code, label_zh=label_zh, label_en=label_en,
                                        position=data.position, active=data.active, version=1, created_at=now,
                                        updated_at=now))
            await session.flush()
    except IntegrityError:  # another admin added the same code a moment ago
        raise Conflict("disposition_code_taken", details={"field": "code"}) from None
    return await _disposition(session, tenant_id, data.code, default_locale)


async def do_update_disposition_code(uow: UnitOfWork, *, tenant_id: str, code: str, changes: dict[str, Any],
                                     default_locale: str = "en") -> DispositionCodeRead:
    """Relabel, move or switch off a code of the tenant's list (a built-in one gets a row of its own)."""
    session = uow.session
    current = await _disposition(session, tenant_id, code, default_locale)
    for field in ("label_zh", "label_en", "position", "active"):
        if field in changes and changes[field] is None:
            raise ValidationFailed("validation_error", details={"field": field})
    label_zh, label_en = _labels(changes.get("label_zh", current.label_zh), changes.get("label_en", current.label_en))
    position, active = changes.get("position", current.position), changes.get("active", current.active)
    now = utcnow()
    row = await session.get(DispositionCode, (tenant_id, code))
    if row is None:  # a built-in code changed for the first time
        row = DispositionCode(tenant_id=tenant_id, code=code, version=0, created_at=now)
        session.add(row)
    row.label_zh, row.label_en, row.position, row.active = label_zh, label_en, position, active
    row.version += 1
    row.updated_at = now
    await session.flush()
    return await _disposition(session, tenant_id, code, default_locale)


def _labels(label_zh: str, label_en: str) -> tuple[str, str]:
    label_zh, label_en = " ".join(label_zh.split()), " ".join(label_en.split())
    if not label_zh or not label_en:
        raise ValidationFailed("validation_error", details={"field": "label_zh" if not label_zh else "label_en"})
    return label_zh, label_en


async def _disposition(session: Any, tenant_id: str, code: str, lang: str) -> DispositionCodeRead:
    for found in await conversation_service.disposition_codes(session=session, tenant_id=tenant_id, lang=lang,
                                                              include_inactive=True):
        if found.code == code:
            return found
    raise NotFound("disposition_not_found")
