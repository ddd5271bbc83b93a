"""Reads on inboxes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kefu.channels.models import Inbox
from kefu.channels.schemas import WidgetConfig
from kefu.core.errors import NotFound
from kefu.core.i18n import translate


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


def widget_config(inbox: Inbox, locale: str) -> WidgetConfig:
    settings = inbox.settings or {}
    greeting = settings.get(f"greeting_{locale}") or translate("widget.greeting", locale)
    return WidgetConfig(inbox_id=inbox.id, name=inbox.name, greeting=greeting,
                        color=settings.get("color", "#1677ff"), position=settings.get("position", "right"),
                        locale=locale)
