"""REST routes for the chat widget: sessions, configuration, history, sending, and the long-poll fallback.

Customers are not users: the widget authenticates with its own visitor token (``Authorization: Bearer
vt1.…``), issued by ``POST /sessions`` and bound to one tenant, inbox and contact. Internal notes never
leave through these routes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from kefu.api.deps import RuntimeDep, UoWDep, bearer_token, client_ip
from kefu.api.errors import BODY_ERRORS, error_responses
from kefu.api.v1.conversations import message_page
from kefu.channels import actions as channel_actions
from kefu.channels import service as channel_service
from kefu.channels import visitor_tokens
from kefu.channels.policies import visitor_view
from kefu.channels.schemas import (
    WidgetConfig,
    WidgetEventFrame,
    WidgetEvents,
    WidgetMessageCreate,
    WidgetSessionCreate,
    WidgetSessionRead,
)
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import service as contact_service
from kefu.conversations import service as conversation_service
from kefu.conversations.schemas import MessagePage, MessageRead, ReadReceiptCreate, ReadReceiptRead
from kefu.core.errors import Unauthenticated
from kefu.core.i18n import negotiate
from kefu.runtime import Runtime

router = APIRouter(prefix="/api/v1/widget", tags=["widget"])

POLL_INTERVAL = 0.2
# On PostgreSQL, hold back outbox rows younger than this (see channel_service.visitor_events).
PG_SETTLE_SECONDS = 0.25


async def get_visitor(request: Request, runtime: RuntimeDep) -> VisitorClaims:
    """The caller's visitor claims from ``Authorization: Bearer vt1.…`` (401 invalid_visitor_token)."""
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("invalid_visitor_token")
    return visitor_tokens.verify(runtime.settings.secret_key, token)


Visitor = Annotated[VisitorClaims, Depends(get_visitor)]


def _locale(request: Request, runtime: Runtime) -> str:
    return negotiate(request.headers.get("accept-language"), runtime.settings.default_locale)


async def _contact_id(runtime: Runtime, claims: VisitorClaims) -> str:
    """The contact holding this visitor's timeline now (through the visitor identity, across merges)."""
    key = (claims.tenant_id, claims.visitor_id)
    async with runtime.sessionmaker() as session:
        contact_id = (await contact_service.visitor_contacts(session=session, visitors={key})).get(key)
    if contact_id is None:
        raise Unauthenticated("invalid_visitor_token")
    return contact_id


@router.post("/sessions", status_code=201, response_model=WidgetSessionRead,
             summary="Start or resume a widget session (public); returns the visitor token",
             responses=error_responses(*BODY_ERRORS, "inbox_not_found", "invalid_identity_token",
                                       "identity_token_expired",
                                       "identity_token_replayed", "identity_verification_required"))
async def start_session(body: WidgetSessionCreate, request: Request, uow: UoWDep,
                        runtime: RuntimeDep) -> WidgetSessionRead:
    session = await channel_actions.do_start_widget_session(
        uow, settings=runtime.settings, data=body, locale=_locale(request, runtime), ip=client_ip(request))
    await uow.commit()
    return session


@router.get("/config", summary="Public widget look and greeting of an inbox, in the visitor's language",
            response_model=WidgetConfig, responses=error_responses("inbox_not_found"))
async def get_config(
    inbox_id: Annotated[str, Query(min_length=1, max_length=40)],
    request: Request,
    uow: UoWDep,
    runtime: RuntimeDep,
    locale: Literal["zh", "en"] | None = None,
) -> WidgetConfig:
    inbox = await channel_service.get_public_inbox(session=uow.session, inbox_id=inbox_id)
    return channel_service.widget_config(inbox, channel_service.widget_locale(inbox, locale, _locale(request, runtime)))


@router.get("/messages", response_model=MessagePage,
            summary="The visitor's chat history in this inbox (newest page first unless `after` is given)",
            responses=error_responses("invalid_visitor_token"))
async def list_messages(
    claims: Visitor,
    runtime: RuntimeDep,
    after: Annotated[str | None, Query(max_length=40, description="Messages after this message id")] = None,
    before: Annotated[str | None, Query(max_length=40, description="The `limit` messages before this id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    contact_id = await _contact_id(runtime, claims)
    async with runtime.sessionmaker() as session:
        rows = await conversation_service.list_contact_messages(
            session=session, tenant_id=claims.tenant_id, contact_id=contact_id, inbox_id=claims.inbox_id,
            after_id=after, before_id=before, limit=limit + 1, include_private=False, newest=True)
        reads = [_public(conversation_service.message_read(m)) for m in rows]
    page = message_page(reads, limit, backwards=after is None or before is not None)
    if after is not None:
        page.next_cursor = None  # the widget pages with ids: continue with after=<last id>
    return page


@router.post("/messages", status_code=201, response_model=MessageRead,
             summary="Send a customer message (idempotent by client_message_id; answered after commit)",
             responses={200: {"description": "A replay of an earlier client_message_id: the original message",
                              "model": MessageRead},
                        **error_responses(*BODY_ERRORS, "invalid_visitor_token", "inbox_not_found",
                                          "empty_message", "conversation_closed", "invalid_attachment")})
async def post_message(body: WidgetMessageCreate, claims: Visitor, request: Request, runtime: RuntimeDep,
                       response: Response) -> MessageRead:
    attachments = [a.model_dump() for a in body.attachments]
    locale = _locale(request, runtime)
    # Group commit: this request shares a transaction with concurrent senders and returns once it committed.
    message, created = await runtime.committer.run_batched(
        channel_actions.do_post_visitor_messages,
        channel_actions.VisitorPost(claims=claims, body=body.body, client_message_id=body.client_message_id,
                                    attachments=attachments, locale=locale))
    if not created:
        response.status_code = 200
    return _public(message)


def _public(message: MessageRead) -> MessageRead:
    """What a customer may see of a message: no agent, key or contact ids (as on the widget WebSocket)."""
    return message.model_copy(update={"sender_id": None})


@router.post("/read", response_model=ReadReceiptRead,
             summary="The customer has seen the shop's messages up to one (agents see the receipt live)",
             responses=error_responses(*BODY_ERRORS, "invalid_visitor_token", "message_not_found"))
async def mark_read(body: ReadReceiptCreate, claims: Visitor, uow: UoWDep) -> ReadReceiptRead:
    ids = await channel_actions.do_mark_read_by_visitor(uow, claims=claims, up_to_message_id=body.up_to_message_id)
    await uow.commit()
    return ReadReceiptRead(message_ids=ids)


@router.get("/events", response_model=WidgetEvents,
            summary="Long-poll fallback: visitor-visible events after `after`, waiting up to `wait` seconds",
            responses=error_responses("invalid_visitor_token"))
async def poll_events(
    claims: Visitor,
    request: Request,
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="The last event id seen (0 for all)")] = 0,
    wait: Annotated[float, Query(ge=0, le=25, description="Seconds to wait for an event")] = 0,
) -> WidgetEvents:
    contact_id = await _contact_id(runtime, claims)
    settle = 0.0 if runtime.settings.is_sqlite else PG_SETTLE_SECONDS
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    last = after
    while True:
        # A short session per poll: on SQLite every transaction holds the write lock while open.
        async with runtime.sessionmaker() as session:
            events, last = await channel_service.visitor_events(
                session=session, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, contact_id=contact_id,
                after_id=last, settle_seconds=settle)
        remaining = deadline - loop.time()
        if events or remaining <= 0 or await request.is_disconnected():
            break
        await asyncio.sleep(min(POLL_INTERVAL, remaining))
    # The same customer view the widget WebSocket sends: no notes, no internal ids or assignment.
    frames = [view[0] for view in map(visitor_view, events) if view is not None]
    return WidgetEvents(events=[WidgetEventFrame(**frame) for frame in frames], last_event_id=last)
