"""REST routes: customer satisfaction (CSAT): the widget's rating, ratings on a conversation, the report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from kefu.api.deps import RuntimeDep, Scoped, UoWDep
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.v1.widget import Visitor, _contact_id
from kefu.channels import service as channel_service
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.conversations import service as conversation_service
from kefu.core.errors import NotFound, ValidationFailed
from kefu.feedback import actions as feedback_actions
from kefu.feedback import service as feedback_service
from kefu.feedback.schemas import CsatCreate, CsatPage, CsatPrompt, CsatRead, CsatReport, Period
from kefu.runtime import Runtime

router = APIRouter(tags=["csat"])
ConversationId = Annotated[str, Path(max_length=40)]


async def _visitor_conversation(uow: UoWDep, runtime: Runtime, claims: VisitorClaims, conversation_id: str):  # type: ignore[no-untyped-def]
    """The visitor's own conversation in their inbox; any other id answers ``conversation_not_found``."""
    contact_id = await _contact_id(runtime, claims)
    try:
        conversation = await conversation_service.access_conversation(
            session=uow.session, tenant_id=claims.tenant_id, conversation_id=conversation_id)
    except NotFound:
        raise NotFound("conversation_not_found") from None
    if conversation.contact_id != contact_id or conversation.inbox_id != claims.inbox_id:
        raise NotFound("conversation_not_found")
    return conversation


@router.post("/api/v1/widget/csat", status_code=201, response_model=CsatRead, tags=["widget"],
             summary="Rate a resolved conversation 1-5 with an optional comment (again within 24 h: update)",
             responses={200: {"description": "An update of this resolution's rating", "model": CsatRead},
                        **error_responses(*BODY_ERRORS, "invalid_visitor_token", "conversation_not_found",
                                          "conversation_not_resolved", "csat_disabled", "csat_locked")})
async def rate(body: CsatCreate, claims: Visitor, uow: UoWDep, runtime: RuntimeDep, response: Response) -> CsatRead:
    conversation = await _visitor_conversation(uow, runtime, claims, body.conversation_id)
    inbox = await channel_service.get_public_inbox(session=uow.session, inbox_id=conversation.inbox_id)
    read, created = await feedback_actions.do_rate(
        uow, conversation=conversation, rating=body.rating, comment=body.comment,
        enabled=bool((inbox.settings or {}).get("csat_enabled", True)))
    await uow.commit()
    if not created:
        response.status_code = 200
    return read


@router.get("/api/v1/widget/csat", response_model=CsatRead, tags=["widget"],
            summary="The visitor's rating of the current resolution of their conversation",
            responses=error_responses("invalid_visitor_token", "conversation_not_found", "csat_not_found"))
async def my_rating(conversation_id: Annotated[str, Query(min_length=1, max_length=40)], claims: Visitor,
                    uow: UoWDep, runtime: RuntimeDep) -> CsatRead:
    conversation = await _visitor_conversation(uow, runtime, claims, conversation_id)
    row = await feedback_service.rating_for_resolution(session=uow.session, conversation_id=conversation.id,
                                                       resolved_at=conversation.resolved_at)
    if row is None or conversation.status != "resolved":
        raise NotFound("csat_not_found")
    return CsatRead.model_validate(row)


@router.get("/api/v1/widget/csat/prompt", response_model=CsatPrompt, tags=["widget"],
            summary="Whether to show the rating form now (latest conversation resolved and not yet rated)",
            responses=error_responses("invalid_visitor_token"))
async def rating_prompt(claims: Visitor, uow: UoWDep, runtime: RuntimeDep) -> CsatPrompt:
    contact_id = await _contact_id(runtime, claims)
    inbox = await channel_service.get_public_inbox(session=uow.session, inbox_id=claims.inbox_id)
    return await feedback_service.prompt(session=uow.session, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id,
                                         contact_id=contact_id,
                                         enabled=bool((inbox.settings or {}).get("csat_enabled", True)))


@router.get("/api/v1/conversations/{conversation_id}/csat-ratings", response_model=CsatPage, tags=["conversations"],
            summary="The customer's ratings of a conversation, one per resolution",
            responses=error_responses(*AUTH_ERRORS, "conversation_not_found"))
async def conversation_ratings(conversation_id: ConversationId, actor: Scoped("conversations:read"),
                               uow: UoWDep) -> CsatPage:
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=conversation_id)
    return CsatPage(data=await feedback_service.ratings_of(session=uow.session, tenant_id=actor.tenant_id,
                                                          conversation_id=conversation.id))


@router.get("/api/v1/csat/report", response_model=CsatReport,
            summary="CSAT average, count and distribution, per period and per agent",
            responses=error_responses(*AUTH_ERRORS))
async def csat_report(
    actor: Scoped("csat:read"),
    uow: UoWDep,
    since: Annotated[datetime | None, Query(description="Ratings at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="Ratings before (RFC 3339)")] = None,
    period: Period = "day",
    agent_id: Annotated[str | None, Query(max_length=40)] = None,
    inbox_id: Annotated[str | None, Query(max_length=40)] = None,
) -> CsatReport:
    for name, value in (("since", since), ("until", until)):
        if value is not None and (value.tzinfo is None or not 1970 <= value.year <= 9000):
            raise ValidationFailed("validation_error",
                                   details={"field": name, "reason": "a time with a zone, years 1970-9000"})
    return await feedback_service.report(session=uow.session, tenant_id=actor.tenant_id, since=since, until=until,
                                         period=period, agent_id=agent_id, inbox_id=inbox_id)
