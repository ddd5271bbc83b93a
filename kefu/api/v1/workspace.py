"""REST routes the agent workspace needs beyond plain CRUD: unread totals, a contact's whole timeline across
conversations, the tenant's dispositions, and editing the widget's look of an inbox."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from kefu.api.deps import IfMatch, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses, request_locale
from kefu.channels import actions as channel_actions
from kefu.channels import service as channel_service
from kefu.channels.schemas import InboxAppearanceUpdate, InboxSecretRead
from kefu.contacts import service as contact_service
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.schemas import (
    ConversationRead,
    DispositionCodeCreate,
    DispositionCodeList,
    DispositionCodeRead,
    DispositionCodeUpdate,
    MessageRead,
)
from kefu.core.errors import ValidationFailed

router = APIRouter(tags=["workspace"])
Reader = Scoped("conversations:read")


class UnreadRead(BaseModel):
    total: int
    conversations: int


class TimelinePage(BaseModel):
    """Messages oldest first within the page; ``conversations`` are the ones these messages belong to."""

    data: list[MessageRead]
    conversations: list[ConversationRead]
    has_more: bool = False
    next_cursor: str | None = None


@router.get("/api/v1/workspace/unread", response_model=UnreadRead,
            summary="The caller's unread customer messages over open and pending conversations",
            responses=error_responses(*AUTH_ERRORS))
async def unread(actor: Reader, uow: UoWDep,
                 assignee_id: Literal["me", "none", "all"] = "me") -> UnreadRead:
    if actor.user_id is None:
        raise ValidationFailed("validation_error", details={"reason": "read marks belong to users, not API keys"})
    total, conversations = await conversation_service.unread_total(
        session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id,
        assignee_id=actor.user_id if assignee_id == "me" else None, unassigned=assignee_id == "none")
    return UnreadRead(total=total, conversations=conversations)


@router.get("/api/v1/contacts/{contact_id}/timeline", response_model=TimelinePage, tags=["contacts"],
            summary="Every message of a contact across conversations and channels (notes included), paged",
            responses=error_responses(*AUTH_ERRORS, "contact_not_found"))
async def timeline(
    contact_id: Annotated[str, Path(max_length=40)],
    actor: Reader,
    uow: UoWDep,
    after: Annotated[str | None, Query(max_length=40, description="Only messages after this message id")] = None,
    before: Annotated[str | None, Query(max_length=40, description="The `limit` messages before this id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TimelinePage:
    contact = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                   contact_id=contact_id)
    rows = await conversation_service.list_contact_messages(
        session=uow.session, tenant_id=actor.tenant_id, contact_id=contact.id, after_id=after, before_id=before,
        limit=limit + 1, include_private=True, newest=True)
    backwards = after is None or before is not None
    has_more = len(rows) > limit
    if has_more:
        rows = rows[-limit:] if backwards else rows[:limit]
    conversations = await conversation_service.conversations_by_ids(
        session=uow.session, tenant_id=actor.tenant_id, ids={m.conversation_id for m in rows})
    return TimelinePage(
        data=[conversation_service.message_read(m) for m in rows],
        conversations=await conversation_service.conversation_reads(session=uow.session, conversations=conversations),
        has_more=has_more)


@router.get("/api/v1/dispositions", response_model=DispositionCodeList, tags=["conversations"],
            summary="How a resolution can end: the tenant's disposition codes with zh/en labels, by position",
            responses=error_responses(*AUTH_ERRORS))
async def list_dispositions(actor: Reader, uow: UoWDep, request: Request,
                            include_inactive: bool = False) -> DispositionCodeList:
    return DispositionCodeList(data=await conversation_service.disposition_codes(
        session=uow.session, tenant_id=actor.tenant_id, lang=request_locale(request),
        include_inactive=include_inactive))


@router.post("/api/v1/dispositions", status_code=201, response_model=DispositionCodeRead, tags=["conversations"],
             summary="Add a disposition code of the tenant's own (admins)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "invalid_disposition_code",
                                       "disposition_code_taken"))
async def create_disposition(body: DispositionCodeCreate, actor: Scoped("inboxes:write"), uow: UoWDep,
                             request: Request) -> DispositionCodeRead:
    read = await conversation_actions.do_create_disposition_code(uow, tenant_id=actor.tenant_id, data=body,
                                                                 default_locale=request_locale(request))
    await uow.commit()
    return read


@router.patch("/api/v1/dispositions/{disposition_code}", response_model=DispositionCodeRead, tags=["conversations"],
              summary="Relabel, move or switch off a disposition code, built-in ones included (admins)",
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "disposition_not_found"))
async def update_disposition(disposition_code: Annotated[str, Path(min_length=1, max_length=40)],
                             body: DispositionCodeUpdate, actor: Scoped("inboxes:write"), uow: UoWDep,
                             request: Request) -> DispositionCodeRead:
    read = await conversation_actions.do_update_disposition_code(
        uow, tenant_id=actor.tenant_id, code=disposition_code, changes=body.model_dump(exclude_unset=True),
        default_locale=request_locale(request))
    await uow.commit()
    return read


@router.patch("/api/v1/inboxes/{inbox_id}/appearance", response_model=InboxSecretRead, tags=["inboxes"],
              summary="Change the widget's look (colour, position, greeting, launcher label, CSAT); If-Match",
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "inbox_not_found", "version_conflict",
                                        "invalid_if_match"))
async def update_appearance(inbox_id: Annotated[str, Path(max_length=40)], body: InboxAppearanceUpdate,
                            actor: Scoped("inboxes:write"), uow: UoWDep, expected: IfMatch,
                            response: Response) -> InboxSecretRead:
    inbox = await channel_service.access_inbox(session=uow.session, tenant_id=actor.tenant_id, inbox_id=inbox_id)
    inbox = await channel_actions.do_update_inbox_appearance(uow, inbox=inbox, data=body, expected_version=expected)
    await uow.commit()
    set_etag(response, inbox.version)
    return channel_service.inbox_read(inbox, with_secret=True)  # type: ignore[return-value]
