"""Writes on contacts: resolving an inbound identity to one contact, creating and updating contacts.

Merging and un-merging live here too (see ``do_merge_contacts``/``do_revert_merge``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from kefu.contacts.models import Contact, ContactIdentity
from kefu.core.clock import utcnow
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork

# When identities disagree, the most trustworthy one decides which contact a message joins.
IDENTITY_PRIORITY = ("external", "marketplace_buyer", "email", "phone", "wechat_openid", "device", "visitor")


async def do_resolve_contact(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    identities: Sequence[tuple[str, str, bool]],
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Contact:
    """Return the contact that owns any of ``identities`` (kind, value, verified), creating it if none does.

    Identities not yet known are attached to the chosen contact, so the next message from any of them
    joins the same timeline.
    """
    session = uow.session
    now = utcnow()
    wanted = [(k, v.strip(), verified) for k, v, verified in identities if v and v.strip()]
    owned: dict[tuple[str, str], ContactIdentity] = {}
    if wanted:
        rows = (
            await session.scalars(
                select(ContactIdentity).where(
                    ContactIdentity.tenant_id == tenant_id,
                    ContactIdentity.kind.in_({k for k, _, _ in wanted}),
                    ContactIdentity.value.in_({v for _, v, _ in wanted}),
                )
            )
        ).all()
        owned = {(r.kind, r.value): r for r in rows}
    contact: Contact | None = None
    for kind in IDENTITY_PRIORITY:
        for k, v, _ in wanted:
            if k == kind and (k, v) in owned:
                contact = await session.get(Contact, owned[(k, v)].contact_id)
                break
        if contact is not None:
            break
    while contact is not None and contact.merged_into_id:
        contact = await session.get(Contact, contact.merged_into_id)
    if contact is None:
        contact = Contact(id=new_id("ct"), tenant_id=tenant_id, name=name, email=email, phone=phone,
                          attributes={}, created_at=now, updated_at=now)
        session.add(contact)
    else:
        changed = False
        for field, value in (("name", name), ("email", email), ("phone", phone)):
            if value and not getattr(contact, field):
                setattr(contact, field, value)
                changed = True
        if changed:
            contact.updated_at = now
            contact.version += 1
    for k, v, verified in wanted:
        existing = owned.get((k, v))
        if existing is None:
            ident = ContactIdentity(id=new_id("cid"), tenant_id=tenant_id, contact_id=contact.id, kind=k, value=v,
                                    verified=verified, created_at=now)
            session.add(ident)
            owned[(k, v)] = ident
        elif verified and not existing.verified and existing.contact_id == contact.id:
            existing.verified = True
    await session.flush()
    return contact
