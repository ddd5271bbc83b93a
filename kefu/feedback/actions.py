"""CSAT writes: a visitor rates the current resolution of their conversation (or updates that rating)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from kefu.core.clock import utcnow
from kefu.core.errors import Conflict
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork
from kefu.feedback import policies
from kefu.feedback import service as feedback_service
from kefu.feedback.models import CsatRating
from kefu.feedback.schemas import CsatRead


async def do_rate(
    uow: UnitOfWork, *, conversation: Any, rating: int, comment: str | None, enabled: bool = True
) -> tuple[CsatRead, bool]:
    """Store the rating of ``conversation``'s current resolution; returns (rating, created).

    ``conversation`` is a loaded conversation row (read only here). Refused while it is not resolved, when
    the inbox has CSAT switched off, and after the edit window of an existing rating.
    """
    if not enabled:
        raise Conflict("csat_disabled")
    if conversation.status != "resolved" or conversation.resolved_at is None:
        raise Conflict("conversation_not_resolved")
    session = uow.session
    now = utcnow()
    comment = comment.strip() or None if comment is not None else None
    existing = await feedback_service.rating_for_resolution(
        session=session, conversation_id=conversation.id, resolved_at=conversation.resolved_at)
    created = existing is None
    if existing is None:
        existing = CsatRating(
            id=new_id("csat"), tenant_id=conversation.tenant_id, conversation_id=conversation.id,
            contact_id=conversation.contact_id, inbox_id=conversation.inbox_id, agent_id=conversation.assignee_id,
            resolved_at=conversation.resolved_at, rating=rating, comment=comment, created_at=now, updated_at=now)
        try:
            async with session.begin_nested():
                session.add(existing)
                await session.flush()
        except IntegrityError:  # a double click raced us: the other request's row is the rating to update
            existing = await feedback_service.rating_for_resolution(
                session=session, conversation_id=conversation.id, resolved_at=conversation.resolved_at)
            if existing is None:
                raise
            created = False
    if not created:
        if not policies.may_update(existing.created_at, now):
            raise Conflict("csat_locked")
        if existing.rating == rating and existing.comment == comment:
            return CsatRead.model_validate(existing), False
        existing.rating = rating
        existing.comment = comment
        existing.updated_at = now
        await session.flush()
    read = CsatRead.model_validate(existing)
    uow.emit(ev.CSAT_SUBMITTED if created else ev.CSAT_UPDATED, tenant_id=conversation.tenant_id,
             conversation_id=conversation.id, contact_id=conversation.contact_id,
             data={"csat": read.model_dump(mode="json"),
                   "conversation": {"id": conversation.id, "inbox_id": conversation.inbox_id,
                                    "status": conversation.status}})
    return read, created
