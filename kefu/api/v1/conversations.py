"""REST routes: conversations, their messages and internal notes, status changes and tags.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from kefu.api.deps import IfMatch, RuntimeDep, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor, page_of
from kefu.auth.schemas import Principal
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.policies import normalise_tag
from kefu.conversations.schemas import (
    ConversationRead,
    ConversationResolve,
    ConversationStatus,
    ConversationUpdate,
    MessageCreate,
    MessagePage,
    MessageRead,
    ReadReceiptCreate,
    ReadReceiptRead,
)
from kefu.core.errors import NotFound, ValidationFailed

ConversationId = Annotated[str, Path(max_length=40)]

# ---------------------------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])
Reader = Scoped("conversations:read")
Writer = Scoped("conversations:write")


@router.get("", summary="List conversations (filters: status, disposition, inbox, contact, assignee, channel, tag)",
            response_model=Page[ConversationRead], responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_conversations(
    actor: Reader,
    uow: UoWDep,
    status: ConversationStatus | None = None,
    disposition: Annotated[str | None, Query(min_length=1, max_length=40,
                                             description="How resolved ones ended, e.g. `solved`")] = None,
    inbox_id: Annotated[str | None, Query(max_length=40)] = None,
    contact_id: Annotated[str | None, Query(max_length=40)] = None,
    assignee_id: Annotated[str | None, Query(
        max_length=40, description="A user id, `me` (the caller) or `none` (unassigned)")] = None,
    order: Literal["asc", "desc"] = "asc",
    channel: Annotated[str | None, Query(max_length=20, description="e.g. `webchat`")] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200,
                                   description="Text in a customer-visible message or the subject")] = None,
    sort: Annotated[Literal["created", "last_activity"], Query(
        description="`last_activity`: most recently active first (ignores `order`)")] = "created",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ConversationRead]:
    unassigned = assignee_id == "none"
    if assignee_id == "me":
        if actor.user_id is None:
            raise ValidationFailed("validation_error", details={"field": "assignee_id",
                                                                "reason": "an API key has no conversations of its own"})
        assignee_id = actor.user_id
    after_id, after_activity = decode_cursor(cursor), None
    if sort == "last_activity" and after_id is not None:
        after_activity, after_id = _activity_cursor(after_id)
    rows = await conversation_service.list_conversations(
        session=uow.session, tenant_id=actor.tenant_id, status=status, inbox_id=inbox_id, contact_id=contact_id,
        assignee_id=None if unassigned else assignee_id, unassigned=unassigned, after_id=after_id,
        limit=limit + 1, order=order, channel=channel, tag=normalise_tag(tag) if tag else None,
        text=q.strip() or None if q else None, sort=sort, after_activity=after_activity,
        disposition=disposition)
    reads = await conversation_service.conversation_reads(session=uow.session, conversations=rows)
    if actor.user_id is not None:
        counts = await conversation_service.unread_counts(session=uow.session, user_id=actor.user_id,
                                                          conversation_ids=[r.id for r in reads[:limit]])
        for read in reads:
            read.unread_count = counts.get(read.id, 0)
    if sort == "last_activity":
        by_id = {c.id: c for c in rows}
        return page_of(reads, limit, id_of=lambda r: _activity_key(by_id[r.id]))
    return page_of(reads, limit)


def _activity_key(conversation) -> str:  # type: ignore[no-untyped-def]
    """Cursor of the last-activity order: ``<activity ISO time>|<id>``."""
    activity = conversation.last_message_at or conversation.created_at
    return f"{(activity - _EPOCH) // timedelta(microseconds=1)}|{conversation.id}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _activity_cursor(raw: str) -> tuple[datetime, str]:
    stamp, _, conversation_id = raw.rpartition("|")
    if not stamp.isdigit() or len(stamp) > 17 or not conversation_id:
        raise ValidationFailed("invalid_cursor", details={"field": "cursor"})
    return _EPOCH + timedelta(microseconds=int(stamp)), conversation_id


@router.get("/{conversation_id}", summary="Get one conversation with its tags", response_model=ConversationRead,
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found"))
async def get_conversation(conversation_id: ConversationId, actor: Reader, uow: UoWDep,
                           response: Response) -> ConversationRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    set_etag(response, conversation.version)
    return await conversation_service.conversation_read_with_tags(session=uow.session, conversation=conversation)


@router.patch("/{conversation_id}", summary="Change status, assignee, priority or subject (If-Match)",
              response_model=ConversationRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "conversation_not_found", "version_conflict",
                                        "invalid_status_transition", "invalid_assignee", "invalid_if_match",
                                        "unknown_disposition", "disposition_not_allowed"))
async def update_conversation(conversation_id: ConversationId, body: ConversationUpdate, actor: Writer, uow: UoWDep,
                              runtime: RuntimeDep, expected: IfMatch, response: Response) -> ConversationRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    read = await conversation_actions.do_update_conversation(
        uow, conversation=conversation, changes=body.model_dump(exclude_unset=True), expected_version=expected,
        default_locale=runtime.settings.default_locale)
    await uow.commit()
    set_etag(response, read.version)
    return read


async def _change_status(conversation_id: str, status: str, actor: Principal, uow: UoWDep, runtime: RuntimeDep,
                         expected: int | None, response: Response, disposition: str | None = None) -> ConversationRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    read = await conversation_actions.do_change_status(
        uow, conversation=conversation, status=status, expected_version=expected,
        default_locale=runtime.settings.default_locale, disposition=disposition)
    await uow.commit()
    set_etag(response, read.version)
    return read


_STATUS_ERRORS = error_responses(*AUTH_ERRORS, "conversation_not_found", "version_conflict",
                                 "invalid_status_transition", "invalid_if_match")


_NO_DISPOSITION = ConversationResolve()  # the body is optional: a bare POST resolves without a disposition


@router.post("/{conversation_id}/resolve",
             summary="Resolve a conversation, optionally with a disposition (the customer sees a system message)",
             response_model=ConversationRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "conversation_not_found", "version_conflict",
                                       "invalid_status_transition", "invalid_if_match", "unknown_disposition"))
async def resolve_conversation(conversation_id: ConversationId, actor: Writer, uow: UoWDep, runtime: RuntimeDep,
                               expected: IfMatch, response: Response,
                               body: ConversationResolve = _NO_DISPOSITION) -> ConversationRead:
    return await _change_status(conversation_id, "resolved", actor, uow, runtime, expected, response,
                                disposition=body.disposition)


@router.post("/{conversation_id}/reopen", summary="Reopen a resolved or pending conversation",
             response_model=ConversationRead, responses=_STATUS_ERRORS)
async def reopen_conversation(conversation_id: ConversationId, actor: Writer, uow: UoWDep, runtime: RuntimeDep,
                              expected: IfMatch, response: Response) -> ConversationRead:
    return await _change_status(conversation_id, "open", actor, uow, runtime, expected, response)


@router.get("/{conversation_id}/messages", summary="List messages and internal notes, oldest first",
            response_model=MessagePage,
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found", "invalid_cursor"))
async def list_messages(
    conversation_id: ConversationId,
    actor: Reader,
    uow: UoWDep,
    after: Annotated[str | None, Query(max_length=40, description="Only messages after this message id")] = None,
    before: Annotated[str | None, Query(max_length=40, description="The `limit` messages before this id")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MessagePage:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    rows = await conversation_service.list_messages(
        session=uow.session, conversation_id=conversation.id, after_id=decode_cursor(cursor) or after,
        before_id=before, limit=limit + 1)
    return message_page([conversation_service.message_read(m) for m in rows], limit, backwards=before is not None)


def message_page(reads: list[MessageRead], limit: int, *, backwards: bool) -> MessagePage:
    """Trim the extra row fetched to learn whether more exist (the oldest one when paging backwards)."""
    has_more = len(reads) > limit
    if backwards:
        return MessagePage(data=reads[-limit:] if has_more else reads, has_more=has_more)
    reads = reads[:limit]
    return MessagePage(data=reads, has_more=has_more,
                       next_cursor=encode_cursor(reads[-1].id) if has_more and reads else None)


@router.post("/{conversation_id}/messages", status_code=201, response_model=MessageRead,
             summary="Post a reply, or an internal note with private=true (idempotent by client_message_id)",
             responses={200: {"description": "A replay of an earlier client_message_id: the original message",
                              "model": MessageRead},
                        **error_responses(*AUTH_ERRORS, *BODY_ERRORS, "conversation_not_found",
                                          "conversation_closed", "empty_message", "idempotency_in_progress",
                                          "idempotency_key_reused", "invalid_attachment")})
async def post_message(conversation_id: ConversationId, body: MessageCreate, actor: Writer, uow: UoWDep,
                       response: Response) -> MessageRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    # Integrations (API keys) speak as the bot, never as a human agent who would then own the conversation.
    sender_kind = "agent" if actor.kind == "user" else "bot"
    message, created = await conversation_actions.do_post_message(
        uow, conversation=conversation, sender_kind=sender_kind, sender_id=actor.id, body=body.body,
        attachments=[a.model_dump() for a in body.attachments], private=body.private,
        client_message_id=body.client_message_id)
    await uow.commit()
    if not created:
        response.status_code = 200
    return message


@router.post("/{conversation_id}/read", response_model=ReadReceiptRead,
             summary="Mark the customer's messages up to one as read (the customer sees the receipt live)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "conversation_not_found", "message_not_found"))
async def mark_read(conversation_id: ConversationId, body: ReadReceiptCreate, actor: Writer,
                    uow: UoWDep) -> ReadReceiptRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    message = await conversation_service.access_message(session=uow.session, tenant_id=actor.tenant_id,
                                                        message_id=body.up_to_message_id)
    if message.conversation_id != conversation.id:
        raise NotFound("message_not_found")
    ids = await conversation_actions.do_mark_read(uow, conversation=conversation, reader_kind="agent",
                                                  up_to_message_id=message.id)
    if actor.user_id is not None:  # the caller's own unread count (see GET /api/v1/workspace/unread)
        await conversation_actions.do_advance_read_marker(uow, conversation=conversation, user_id=actor.user_id,
                                                          up_to_message_id=message.id)
    await uow.commit()
    return ReadReceiptRead(message_ids=ids)


Tag = Annotated[str, Path(min_length=1, max_length=64, description="Tag text, compared case-insensitively")]


@router.put("/{conversation_id}/tags/{tag}", summary="Add a tag (no-op if present)", response_model=ConversationRead,
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found", "invalid_tag"))
async def add_tag(conversation_id: ConversationId, tag: Tag, actor: Writer, uow: UoWDep) -> ConversationRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    read = await conversation_actions.do_add_tag(uow, conversation=conversation, tag=tag)
    await uow.commit()
    return read


@router.delete("/{conversation_id}/tags/{tag}", summary="Remove a tag (no-op if absent)",
               response_model=ConversationRead, responses=error_responses(*AUTH_ERRORS, "conversation_not_found"))
async def remove_tag(conversation_id: ConversationId, tag: Tag, actor: Writer, uow: UoWDep) -> ConversationRead:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    read = await conversation_actions.do_remove_tag(uow, conversation=conversation, tag=tag)
    await uow.commit()
    return read
