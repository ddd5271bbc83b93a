"""Writes on attachments: store an upload, and tie uploads to the conversation whose message carries them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update

from kefu.attachments import policies
from kefu.attachments.models import Attachment
from kefu.attachments.ports import AttachmentStore
from kefu.core.clock import utcnow
from kefu.core.errors import PayloadTooLarge, ValidationFailed
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork


class UnsupportedType(ValidationFailed):
    status = 415


async def do_store_attachment(
    uow: UnitOfWork,
    *,
    store: AttachmentStore,
    tenant_id: str,
    uploader_kind: str,
    uploader_id: str,
    data: bytes,
    filename: str | None,
    max_bytes: int,
    inbox_id: str | None = None,
    conversation_id: str | None = None,
) -> Attachment:
    """Check and store an uploaded file; the bytes are written before the row, so a committed row always has
    its file (a failed commit can leave an unreferenced file behind, never a row without one)."""
    if not data:
        raise ValidationFailed("empty_attachment")
    if len(data) > max_bytes:
        raise PayloadTooLarge("attachment_too_large", details={"max_bytes": max_bytes}, limit=max_bytes)
    content_type = policies.sniff(data)
    if content_type is None:
        raise UnsupportedType("unsupported_attachment_type",
                              details={"allowed": sorted(policies.ALLOWED_TYPES)})
    size = policies.image_size(data, content_type) if content_type in policies.IMAGE_TYPES else None
    if content_type in policies.IMAGE_TYPES and size is None:
        # The magic bytes say image but the header is broken: browsers would show a broken image anyway.
        raise UnsupportedType("unsupported_attachment_type",
                              details={"allowed": sorted(policies.ALLOWED_TYPES), "reason": "corrupt_image"})
    attachment_id = new_id("att")
    key = f"{tenant_id}/{attachment_id}"
    await store.put(key, data)
    attachment = Attachment(
        id=attachment_id, tenant_id=tenant_id, uploader_kind=uploader_kind, uploader_id=uploader_id,
        inbox_id=inbox_id, conversation_id=conversation_id, visible_to_customer=False,
        filename=policies.sanitise_filename(filename, content_type), content_type=content_type, size=len(data),
        width=size[0] if size else None, height=size[1] if size else None,
        sha256=hashlib.sha256(data).hexdigest(), storage_key=key, created_at=utcnow())
    uow.session.add(attachment)
    await uow.session.flush()
    return attachment


async def do_attach_to_conversation(
    uow: UnitOfWork, *, conversation_id: str, attachment_ids: Iterable[str], public: bool
) -> None:
    """Record that a message of ``conversation_id`` carries these uploads (public: the customer may see it)."""
    ids = list(set(attachment_ids))
    if not ids:
        return
    values: dict[str, object] = {"conversation_id": conversation_id}
    if public:
        values["visible_to_customer"] = True
        await uow.session.execute(update(Attachment).where(Attachment.id.in_(ids)).values(**values))
    else:
        # An internal note never makes a file public, nor moves one already shown to a customer.
        await uow.session.execute(update(Attachment).where(
            Attachment.id.in_(ids), Attachment.visible_to_customer.is_(False)).values(**values))


async def do_forget_orphans(uow: UnitOfWork, *, older_than: datetime, limit: int = 500) -> list[str]:
    """Delete the rows of uploads never sent in a message and older than ``older_than``; return their storage
    keys. The caller removes the files after the commit (a rolled-back delete must still find its file)."""
    rows = list((await uow.session.scalars(
        select(Attachment).where(Attachment.conversation_id.is_(None), Attachment.created_at < older_than)
        .order_by(Attachment.created_at).limit(limit))).all())
    if rows:
        await uow.session.execute(delete(Attachment).where(Attachment.id.in_([r.id for r in rows])))
    return [r.storage_key for r in rows]
