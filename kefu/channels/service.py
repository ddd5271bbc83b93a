"""Reads on inboxes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.channels.models import Inbox
from kefu.channels.policies import visible_to_visitor
from kefu.channels.schemas import InboxRead, InboxSecretRead, WidgetConfig
from kefu.conversations import service as conversation_service
from kefu.core.clock import utcnow
from kefu.core.db import run_core
from kefu.core.errors import NotFound
from kefu.core.i18n import translate
from kefu.events.models import OutboxEvent
from kefu.events.outbox import to_event
from kefu.events.types import VISITOR_VISIBLE, DomainEvent


async def access_inbox(*, session: AsyncSession, tenant_id: str, inbox_id: str) -> Inbox:
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None or inbox.tenant_id != tenant_id:
        raise NotFound("inbox_not_found")
    return inbox


async def get_public_inbox(*, session: AsyncSession, inbox_id: str) -> Inbox:
    """The inbox a widget names in ``data-inbox``; unknown and disabled inboxes look the same."""
    inbox = await session.get(Inbox, inbox_id) if isinstance(inbox_id, str) else None
    if inbox is None or not inbox.is_active:
        raise NotFound("inbox_not_found")
    return inbox


async def list_inboxes(*, session: AsyncSession, tenant_id: str, after_id: str | None = None,
                       limit: int = 50) -> list[Inbox]:
    query = select(Inbox).where(Inbox.tenant_id == tenant_id)
    if after_id is not None:
        query = query.where(Inbox.id > after_id)
    return list((await session.scalars(query.order_by(Inbox.id).limit(limit))).all())


def inbox_read(inbox: Inbox, *, with_secret: bool = False) -> InboxRead:
    """The inbox as the caller may see it; only admins get the identity secret."""
    return InboxSecretRead.model_validate(inbox) if with_secret else InboxRead.model_validate(inbox)


def widget_locale(inbox: Inbox, requested: str | None, negotiated: str) -> str:
    """The widget's language: what the page asked for, else the inbox's fixed language, else the browser's."""
    fixed = (inbox.settings or {}).get("locale")
    return requested or (fixed if fixed in ("zh", "en") else negotiated)


def widget_config(inbox: Inbox, locale: str) -> WidgetConfig:
    settings = inbox.settings or {}
    greeting = settings.get(f"greeting_{locale}") or translate("widget.greeting", locale)
    launcher = settings.get(f"launcher_label_{locale}") or translate("workspace.launcher_label", locale)
    return WidgetConfig(inbox_id=inbox.id, name=inbox.name, greeting=greeting,
                        color=settings.get("color", "#1677ff"), position=settings.get("position", "right"),
                        locale=locale, launcher_label=launcher, csat_enabled=bool(settings.get("csat_enabled", True)))


async def visitor_events(
    *,
    session: AsyncSession,
    tenant_id: str,
    inbox_id: str,
    contact_id: str,
    after_id: int,
    limit: int = 100,
    settle_seconds: float = 0.0,
) -> tuple[list[DomainEvent], int]:
    """Committed events a widget visitor may see, after ``after_id``; returns (events, last id scanned).

    Scoped to the contact's conversations in this inbox. ``settle_seconds`` holds back rows younger than
    that: on PostgreSQL ids are taken before commit, so a just-visible row may still have an uncommitted
    lower-id neighbour that a cursor moving past it would skip for good.
    """
    query = (
        select(OutboxEvent)
        .where(
            OutboxEvent.tenant_id == tenant_id,
            OutboxEvent.contact_id == contact_id,
            OutboxEvent.conversation_id.in_(
                conversation_service.conversation_ids_query(tenant_id=tenant_id, contact_id=contact_id,
                                                            inbox_id=inbox_id)),
            OutboxEvent.type.in_(VISITOR_VISIBLE),
            OutboxEvent.id > after_id,
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if settle_seconds > 0:
        query = query.where(OutboxEvent.created_at <= utcnow() - timedelta(seconds=settle_seconds))
    rows = (await session.scalars(query)).all()
    events = [to_event(row) for row in rows]
    return [e for e in events if visible_to_visitor(e)], (rows[-1].id if rows else after_id)


_inboxes = Inbox.__table__
_INBOX_STATES = select(_inboxes.c.id, _inboxes.c.tenant_id, _inboxes.c.is_active).where(
    _inboxes.c.id.in_(bindparam("ids", expanding=True)))


async def inbox_states(*, session: AsyncSession, inbox_ids: set[str]) -> dict[str, tuple[str, bool]]:
    """(tenant id, active) of each inbox, for the widget's batch writer: one pre-built column select per batch
    (see ``core.db.run_core``)."""
    if not inbox_ids:
        return {}
    rows = await run_core(session, _INBOX_STATES, {"ids": sorted(inbox_ids)})
    return {inbox_id: (tenant_id, bool(active)) for inbox_id, tenant_id, active in rows}
