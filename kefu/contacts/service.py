"""Reads on contacts; ``access_*`` is the only way to load a contact or a merge for a caller.

Objects of another tenant and missing ones raise the same ``NotFound``, so ids leak nothing.
"""

from __future__ import annotations

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.contacts.models import Contact, ContactIdentity, ContactMerge
from kefu.contacts.policies import MAX_MERGE_HOPS, normalise_identity
from kefu.contacts.schemas import ContactMergeRead, ContactRead, IdentityRead
from kefu.core.db import run_core
from kefu.core.errors import Conflict, NotFound


async def access_contact(*, session: AsyncSession, tenant_id: str, contact_id: str) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.tenant_id != tenant_id:
        raise NotFound("contact_not_found")
    return contact


async def access_live_contact(*, session: AsyncSession, tenant_id: str, contact_id: str) -> Contact:
    """Like ``access_contact``, for writes: a contact merged into another one is read-only until reverted."""
    contact = await access_contact(session=session, tenant_id=tenant_id, contact_id=contact_id)
    if contact.merged_into_id is not None:
        raise Conflict("contact_merged", details={"merged_into_id": contact.merged_into_id})
    return contact


async def access_merge(*, session: AsyncSession, tenant_id: str, merge_id: str) -> ContactMerge:
    merge = await session.get(ContactMerge, merge_id)
    if merge is None or merge.tenant_id != tenant_id:
        raise NotFound("merge_not_found")
    return merge


async def current_contact(*, session: AsyncSession, tenant_id: str, contact_id: str) -> Contact | None:
    """Follow ``merged_into_id`` to the contact that now holds this one's timeline (None if unknown)."""
    contact = await session.get(Contact, contact_id)
    hops = 0
    while contact is not None and contact.merged_into_id and hops < MAX_MERGE_HOPS:
        contact = await session.get(Contact, contact.merged_into_id)
        hops += 1
    if contact is None or contact.tenant_id != tenant_id:
        return None
    return contact


async def current_contacts(*, session: AsyncSession, tenant_id: str, contact_ids: set[str]) -> dict[str, Contact]:
    """``current_contact`` for many ids: one query, plus one per merged contact (rare)."""
    rows = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
    resolved: dict[str, Contact] = {}
    for contact_id in contact_ids:
        contact = rows.get(contact_id)
        if contact is not None and contact.merged_into_id:
            contact = await current_contact(session=session, tenant_id=tenant_id, contact_id=contact_id)
        if contact is not None and contact.tenant_id == tenant_id:
            resolved[contact_id] = contact
    return resolved


_identities, _contacts = ContactIdentity.__table__, Contact.__table__
_VISITOR_CONTACTS = (
    select(_identities.c.tenant_id, _identities.c.value, _identities.c.contact_id, _contacts.c.tenant_id,
           _contacts.c.merged_into_id)
    .join(_contacts, _contacts.c.id == _identities.c.contact_id)
    .where(_identities.c.kind == "visitor", _identities.c.value.in_(bindparam("values", expanding=True)))
)


async def visitor_contacts(*, session: AsyncSession, visitors: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Map (tenant id, visitor id) to the contact holding that visitor's timeline now.

    Resolved through the visitor identity on every call, not from the contact a token once named: after a
    merge is reverted, the identity (and so the visitor) goes back to its own contact.
    """
    if not visitors:
        return {}
    # One pre-built column select joining the identity to its contact: this runs for every batch of widget
    # messages (the chat hot path).
    rows = await run_core(session, _VISITOR_CONTACTS, {"values": sorted({visitor for _, visitor in visitors})})
    owners: dict[tuple[str, str], str] = {}
    states: dict[str, tuple[str, str | None]] = {}
    for tenant_id, value, contact_id, contact_tenant_id, merged_into_id in rows:
        if (tenant_id, value) in visitors:
            owners[(tenant_id, value)] = contact_id
            states[contact_id] = (contact_tenant_id, merged_into_id)
    resolved: dict[tuple[str, str], str] = {}
    for key, contact_id in owners.items():
        state = states.get(contact_id)
        if state is None:
            continue
        if state[1]:  # merged away: follow the chain as ``current_contact`` does (rare)
            contact = await current_contact(session=session, tenant_id=key[0], contact_id=contact_id)
            if contact is not None and contact.tenant_id == key[0]:
                resolved[key] = contact.id
        elif state[0] == key[0]:
            resolved[key] = contact_id
    return resolved


async def find_identity(*, session: AsyncSession, tenant_id: str, kind: str, value: str) -> ContactIdentity | None:
    return (
        await session.scalars(
            select(ContactIdentity).where(
                ContactIdentity.tenant_id == tenant_id,
                ContactIdentity.kind == kind,
                ContactIdentity.value == normalise_identity(kind, value),
            )
        )
    ).first()


async def has_verified_identity(*, session: AsyncSession, contact_id: str) -> bool:
    found = await session.scalar(
        select(ContactIdentity.id).where(ContactIdentity.contact_id == contact_id, ContactIdentity.verified.is_(True))
        .limit(1)
    )
    return found is not None


async def identities_of(*, session: AsyncSession, contact_ids: list[str]) -> dict[str, list[ContactIdentity]]:
    if not contact_ids:
        return {}
    rows = (
        await session.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id.in_(contact_ids)).order_by(ContactIdentity.id)
        )
    ).all()
    out: dict[str, list[ContactIdentity]] = {cid: [] for cid in contact_ids}
    for row in rows:
        out.setdefault(row.contact_id, []).append(row)
    return out


def contact_read(contact: Contact, identities: list[ContactIdentity] | None = None) -> ContactRead:
    read = ContactRead.model_validate(contact)
    read.identities = [IdentityRead.model_validate(i) for i in identities or []]
    return read


async def contact_reads(*, session: AsyncSession, contacts: list[Contact]) -> list[ContactRead]:
    """Contacts with their identities, in one extra query."""
    by_contact = await identities_of(session=session, contact_ids=[c.id for c in contacts])
    return [contact_read(c, by_contact.get(c.id, [])) for c in contacts]


async def list_contacts(
    *,
    session: AsyncSession,
    tenant_id: str,
    q: str | None = None,
    vip_level: int | None = None,
    after_id: str | None = None,
    limit: int = 50,
    include_merged: bool = False,
) -> list[Contact]:
    """Contacts in creation order; ``q`` matches name, email, phone or any identity value (substring)."""
    query = select(Contact).where(Contact.tenant_id == tenant_id)
    if not include_merged:
        query = query.where(Contact.merged_into_id.is_(None))
    if vip_level is not None:
        query = query.where(Contact.vip_level == vip_level)
    if q:
        by_identity = select(ContactIdentity.contact_id).where(
            ContactIdentity.tenant_id == tenant_id, ContactIdentity.value.icontains(q, autoescape=True))
        query = query.where(
            or_(
                Contact.name.icontains(q, autoescape=True),
                Contact.email.icontains(q, autoescape=True),
                Contact.phone.icontains(q, autoescape=True),
                Contact.id.in_(by_identity),
            )
        )
    if after_id is not None:
        query = query.where(Contact.id > after_id)
    return list((await session.scalars(query.order_by(Contact.id).limit(limit))).all())


def merge_read(merge: ContactMerge) -> ContactMergeRead:
    return ContactMergeRead.model_validate(merge)
