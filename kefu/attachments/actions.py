"""Writes on attachments: store an upload, and tie uploads to the conversation whose message carries them."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.attachments import policies
from kefu.attachments.models import Attachment, AttachmentUsage
from kefu.attachments.ports import AttachmentStore
from kefu.core.clock import utcnow
from kefu.core.errors import PayloadTooLarge, RateLimited, ValidationFailed
from kefu.core.ids import new_id
from kefu.core.read_transactions import end_read_transaction
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
    budget: policies.UploadBudget | None = None,
    quota_bytes: int = 0,
) -> Attachment:
    """Check and store an uploaded file; the bytes are written before the row, so a committed row always has
    its file (a failed commit can leave an unreferenced file behind, never a row without one).

    ``budget`` limits a widget visitor's and their inbox's recent uploads (429 ``rate_limited``);
    ``quota_bytes`` (0: none) caps what the tenant stores in all (413 ``attachment_quota_exceeded``).
    Both are counted in the database, so every node enforces the same limits.

    The file is written with no transaction open: the checks run in a read transaction that is committed
    first, and the row is added in a new one, which the caller commits. So the unit of work must not have
    written anything before this call (a pending change or event is refused as a bug; the routes only read).
    A refused or failed upload deletes its file; the caller must not commit after an exception from here."""
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
    if budget is not None:
        await _enforce_budget(uow.session, budget=budget, tenant_id=tenant_id, uploader_id=uploader_id,
                              inbox_id=inbox_id, size=len(data))
    if quota_bytes:
        # A cheap read first, so a tenant over its quota is refused before anything is written to disk.
        used = await uow.session.scalar(select(AttachmentUsage.bytes).where(AttachmentUsage.tenant_id == tenant_id))
        if (used or 0) + len(data) > quota_bytes:
            raise _quota_exceeded(quota_bytes, used or 0)
    await _end_read_transaction(uow)
    attachment_id = new_id("att")
    key = f"{tenant_id}/{attachment_id}"
    await store.put(key, data)
    try:
        if budget is not None:
            # Again, in the transaction that adds the row: on SQLite that makes the budget exact again (the
            # first check's transaction has ended, and other uploads may have been added since).
            await _enforce_budget(uow.session, budget=budget, tenant_id=tenant_id, uploader_id=uploader_id,
                                  inbox_id=inbox_id, size=len(data))
        # Refuses past the quota also if a concurrent upload took the last of it since the read above. After
        # the write, so the tenant's counter row stays locked only until the caller's commit.
        await _count_bytes(uow.session, tenant_id=tenant_id, size=len(data), quota_bytes=quota_bytes)
        attachment = Attachment(
            id=attachment_id, tenant_id=tenant_id, uploader_kind=uploader_kind, uploader_id=uploader_id,
            inbox_id=inbox_id, conversation_id=conversation_id, visible_to_customer=False,
            filename=policies.sanitise_filename(filename, content_type), content_type=content_type,
            size=len(data), width=size[0] if size else None, height=size[1] if size else None,
            sha256=hashlib.sha256(data).hexdigest(), storage_key=key, created_at=utcnow())
        uow.session.add(attachment)
        await uow.session.flush()
    except BaseException:
        # No row can name the file now (the caller does not commit after an error), and no other row has
        # this new key: a refused upload leaves nothing behind.
        await store.delete(key)
        raise
    return attachment


async def _end_read_transaction(uow: UnitOfWork) -> None:
    """Commit the upload's checks, which only read, before the file is written: on SQLite every transaction
    holds the database's only write lock from its first statement (``BEGIN IMMEDIATE``), so a transaction
    left open during a write of up to ``max_bytes`` (fsynced, in a thread) would make every writer wait
    for the disk: chat messages, routing, the outbox relay, other nodes.

    A write or an event of the unit of work would be committed here, apart from the row it belongs with: refused
    as a bug (``end_read_transaction`` also sees writes already flushed; no caller makes any before the upload)."""
    if uow.mark() or not await end_read_transaction(uow.session):
        raise RuntimeError("do_store_attachment must come before any write of its unit of work")


async def _enforce_budget(session: AsyncSession, *, budget: policies.UploadBudget, tenant_id: str,
                          uploader_id: str, inbox_id: str | None, size: int) -> None:
    """Refuse a visitor upload past the visitor's or the inbox's budget for the current window.

    Uploads are counted from the rows themselves (refused uploads leave none). Checked again in the
    transaction that adds the row, which is exact on SQLite (one writer at a time); on PostgreSQL two uploads
    racing on the last slot may both pass, which a budget of this kind tolerates."""
    now = utcnow()
    since = now - timedelta(seconds=budget.window_seconds)
    recent = select(func.count(), func.coalesce(func.sum(Attachment.size), 0), func.min(Attachment.created_at)) \
        .where(Attachment.tenant_id == tenant_id, Attachment.uploader_kind == "customer",
               Attachment.created_at >= since)
    scopes = [("visitor", Attachment.uploader_id == uploader_id, budget.visitor_uploads, budget.visitor_bytes)]
    if inbox_id is not None:
        scopes.append(("inbox", Attachment.inbox_id == inbox_id, budget.inbox_uploads, budget.inbox_bytes))
    for scope, condition, max_uploads, max_bytes in scopes:
        count, used, oldest = (await session.execute(recent.where(condition))).one()
        if count + 1 > max_uploads or used + size > max_bytes:
            # Room comes back when the oldest counted upload leaves the window.
            wait = (oldest + timedelta(seconds=budget.window_seconds) - now).total_seconds() if oldest else 1
            raise RateLimited(details={"scope": scope, "max_uploads": max_uploads, "max_bytes": max_bytes,
                                       "window_seconds": budget.window_seconds},
                              retry_after=max(1, math.ceil(wait)))


def _quota_exceeded(quota_bytes: int, used: int) -> PayloadTooLarge:
    return PayloadTooLarge("attachment_quota_exceeded", details={"quota_bytes": quota_bytes, "used_bytes": used},
                           quota=quota_bytes)


async def _count_bytes(session: AsyncSession, *, tenant_id: str, size: int, quota_bytes: int,
                       retry: bool = True) -> None:
    """Add ``size`` to the tenant's stored bytes, refusing past the quota in the same conditional UPDATE."""
    fits = [AttachmentUsage.bytes + size <= quota_bytes] if quota_bytes else []
    result = await session.execute(
        update(AttachmentUsage).where(AttachmentUsage.tenant_id == tenant_id, *fits)
        .values(bytes=AttachmentUsage.bytes + size).execution_options(synchronize_session=False))
    if result.rowcount:  # type: ignore[attr-defined]
        return
    used = await session.scalar(select(AttachmentUsage.bytes).where(AttachmentUsage.tenant_id == tenant_id))
    if used is not None or (quota_bytes and size > quota_bytes):
        raise _quota_exceeded(quota_bytes, used or 0)
    try:  # the tenant's first upload
        async with session.begin_nested():
            session.add(AttachmentUsage(tenant_id=tenant_id, bytes=size))
            await session.flush()
    except IntegrityError:  # a concurrent first upload created the row: count against it
        if not retry:
            raise
        await _count_bytes(session, tenant_id=tenant_id, size=size, quota_bytes=quota_bytes, retry=False)


async def do_copy_to_conversation(session: AsyncSession, *, source: Attachment, conversation_id: str) -> Attachment:
    """A new upload row for ``conversation_id`` sharing ``source``'s stored file: staff re-sending a file that
    belongs to another conversation must not take it away from that conversation's transcript.

    Called while a message's references are resolved (with that unit of work's session). The copy is bound
    to the conversation but counts as sent only once the message is written (``do_attach_to_conversation``);
    the shared file is deleted only when no row names it any more (``do_forget_orphans``)."""
    # Lock the source row: a concurrent sweep deleting it waits for this commit, then sees the copy.
    locked = await session.scalar(select(Attachment).where(Attachment.id == source.id).with_for_update())
    if locked is None:
        raise ValidationFailed("invalid_attachment", details={"field": "attachments"})
    copy = Attachment(
        id=new_id("att"), tenant_id=locked.tenant_id, uploader_kind=locked.uploader_kind,
        uploader_id=locked.uploader_id, inbox_id=locked.inbox_id, conversation_id=conversation_id,
        visible_to_customer=False, filename=locked.filename, content_type=locked.content_type, size=locked.size,
        width=locked.width, height=locked.height, sha256=locked.sha256, storage_key=locked.storage_key,
        created_at=utcnow())
    session.add(copy)
    return copy


async def do_attach_to_conversation(
    uow: UnitOfWork, *, tenant_id: str, conversation_id: str, attachment_ids: Iterable[str], public: bool
) -> None:
    """Record that a message of ``conversation_id`` carries these uploads (public: the customer may see it).

    Only the tenant's uploads that belong to no conversation yet, or to this one, are bound: a file never
    moves out of another conversation. Should any id not qualify (a concurrent send took it), the whole
    message is refused with ``invalid_attachment`` and the caller's transaction changes nothing."""
    ids = list(set(attachment_ids))
    if not ids:
        return
    await uow.session.flush()  # copies made while resolving the message's references
    values: dict[str, object] = {"conversation_id": conversation_id,
                                 "attached_at": func.coalesce(Attachment.attached_at,
                                                              literal(utcnow(), Attachment.attached_at.type))}
    if public:
        values["visible_to_customer"] = True
    # An internal note never hides a file already shown to a customer (it leaves visible_to_customer as is).
    result = await uow.session.execute(
        update(Attachment).where(
            Attachment.id.in_(ids), Attachment.tenant_id == tenant_id,
            or_(Attachment.conversation_id.is_(None), Attachment.conversation_id == conversation_id))
        .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != len(ids):  # type: ignore[attr-defined]
        raise ValidationFailed("invalid_attachment", details={"field": "attachments"})


@dataclass(slots=True)
class OrphanSweep:
    """What one batch of the clean-up removed: rows deleted, and files now named by no row."""

    rows: int = 0
    storage_keys: list[str] = field(default_factory=list)


async def do_forget_orphans(uow: UnitOfWork, *, older_than: datetime, limit: int = 500) -> OrphanSweep:
    """Delete the rows of uploads never sent in a message and older than ``older_than`` (visitors' uploads
    and agents' uploads made for a conversation alike); return the storage keys no row names any more. The
    caller removes those files after the commit (a rolled-back delete must still find its file)."""
    session = uow.session
    rows = list((await session.scalars(
        select(Attachment).where(Attachment.attached_at.is_(None), Attachment.created_at < older_than)
        .order_by(Attachment.created_at).limit(limit))).all())
    if not rows:
        return OrphanSweep()
    ids = [r.id for r in rows]
    # Still unsent at the delete: a message may have taken one of them since the read above.
    await session.execute(delete(Attachment).where(Attachment.id.in_(ids), Attachment.attached_at.is_(None))
                          .execution_options(synchronize_session=False))
    kept = set((await session.scalars(select(Attachment.id).where(Attachment.id.in_(ids)))).all())
    rows = [r for r in rows if r.id not in kept]
    keys = {r.storage_key for r in rows}
    # A copy made for another conversation shares its source's file: keep the files still named.
    shared = set((await session.scalars(select(Attachment.storage_key).where(Attachment.storage_key.in_(keys)))).all())
    freed: dict[str, Attachment] = {}
    for row in rows:
        if row.storage_key not in shared:
            freed.setdefault(row.storage_key, row)  # a copy and its source deleted together free one file
    by_tenant: dict[str, int] = {}
    for row in freed.values():
        by_tenant[row.tenant_id] = by_tenant.get(row.tenant_id, 0) + row.size
    for tenant_id, size in by_tenant.items():
        await session.execute(update(AttachmentUsage).where(AttachmentUsage.tenant_id == tenant_id)
                              .values(bytes=AttachmentUsage.bytes - size).execution_options(synchronize_session=False))
    return OrphanSweep(rows=len(ids), storage_keys=sorted(freed))
