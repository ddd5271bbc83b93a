"""Reads on attachments: access for agents and visitors, signed links, and resolving the references a
message makes to uploads."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.attachments import policies
from kefu.attachments.models import Attachment
from kefu.attachments.schemas import AttachmentLink, AttachmentRead
from kefu.core.db import get_scoped

CONTENT_PATH = "/api/v1/attachments/{id}/content"


async def access_attachment(*, session: AsyncSession, tenant_id: str, attachment_id: str) -> Attachment:
    """Load an attachment of the caller's tenant; another tenant's answers exactly like a missing one."""
    return await get_scoped(session, Attachment, attachment_id, tenant_id=tenant_id, code="attachment_not_found")


async def get_unscoped(*, session: AsyncSession, attachment_id: str) -> Attachment | None:
    """For signed links only: the signature names the tenant, which is checked against the row."""
    return await session.get(Attachment, attachment_id)


def signed_link(attachment: Attachment, *, secret: str, ttl_seconds: int, now: float | None = None) -> AttachmentLink:
    # Expiry rounded up to a minute, so links for the same file within a minute are identical (cacheable).
    expires = (int((now if now is not None else time.time()) + ttl_seconds) // 60 + 1) * 60
    link = policies.sign_link(secret, tenant_id=attachment.tenant_id, attachment_id=attachment.id, expires=expires)
    url = f"{CONTENT_PATH.format(id=attachment.id)}?exp={link.expires}&sig={link.signature}"
    return AttachmentLink(id=attachment.id, url=url, url_expires_at=datetime.fromtimestamp(link.expires, UTC))


def attachment_read(attachment: Attachment, *, secret: str, ttl_seconds: int) -> AttachmentRead:
    link = signed_link(attachment, secret=secret, ttl_seconds=ttl_seconds)
    return AttachmentRead(
        id=attachment.id, filename=attachment.filename, content_type=attachment.content_type, size=attachment.size,
        width=attachment.width, height=attachment.height,
        kind="image" if attachment.content_type in policies.IMAGE_TYPES else "file", sha256=attachment.sha256,
        created_at=attachment.created_at, url=link.url, url_expires_at=link.url_expires_at)


def message_attachment(attachment: Attachment) -> dict[str, Any]:
    """What a message stores about an upload: the metadata and the (unsigned) content path."""
    return {"id": attachment.id, "name": attachment.filename, "content_type": attachment.content_type,
            "size": attachment.size, "width": attachment.width, "height": attachment.height,
            "url": CONTENT_PATH.format(id=attachment.id)}


async def load_many(*, session: AsyncSession, attachment_ids: Iterable[str]) -> dict[str, Attachment]:
    ids = set(attachment_ids)
    if not ids:
        return {}
    return {a.id: a for a in await session.scalars(select(Attachment).where(Attachment.id.in_(ids)))}


def may_reference(attachment: Attachment | None, *, tenant_id: str, sender_kind: str, inbox_id: str,
                  conversation_id: str, visitor_id: str | None) -> bool:
    """Whether a sender may put this upload on a message in ``conversation_id`` (of ``tenant_id``/``inbox_id``).

    Staff may attach any file of their tenant (one that belongs to another conversation is copied, see
    ``needs_copy``). A customer may attach only their own uploads (same visitor, same inbox) not yet sent
    in another conversation; a customer post without a visitor id may attach no upload at all.
    """
    if attachment is None or attachment.tenant_id != tenant_id:
        return False
    if sender_kind != "customer":
        return True
    if visitor_id is None or attachment.uploader_kind != "customer" or attachment.inbox_id != inbox_id:
        return False
    return attachment.uploader_id == visitor_id and attachment.conversation_id in (None, conversation_id)


def needs_copy(attachment: Attachment, *, conversation_id: str) -> bool:
    """Whether staff referencing this upload in ``conversation_id`` get a copy of it (it belongs to another
    conversation, whose transcript keeps the original)."""
    return attachment.conversation_id not in (None, conversation_id)


async def visitor_visible(
    *, session: AsyncSession, tenant_id: str, inbox_id: str, visitor_id: str, conversation_ids: set[str],
    attachment_ids: Iterable[str],
) -> list[Attachment]:
    """The attachments of ``attachment_ids`` a widget visitor may download: their own uploads, and files on
    customer-visible messages of their conversations in their inbox (never ones only on internal notes)."""
    found = await load_many(session=session, attachment_ids=attachment_ids)
    out = []
    for attachment in found.values():
        if attachment.tenant_id != tenant_id:
            continue
        own = (attachment.uploader_kind == "customer" and attachment.uploader_id == visitor_id
               and attachment.inbox_id == inbox_id)
        shared = attachment.visible_to_customer and attachment.conversation_id in conversation_ids
        if own or shared:
            out.append(attachment)
    return sorted(out, key=lambda a: a.id)
