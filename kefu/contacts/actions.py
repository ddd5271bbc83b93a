"""Writes on contacts: resolving an inbound identity to one contact, creating and updating contacts.

Merging and un-merging live here too (see ``do_merge_contacts``/``do_revert_merge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kefu.audit import actions as audit_actions
from kefu.contacts import service as contact_service
from kefu.contacts.models import Contact, ContactIdentity, ContactMerge
from kefu.contacts.policies import normalise_identity
from kefu.contacts.schemas import ContactCreate, ContactUpdate, IdentityIn
from kefu.conversations import actions as conversation_actions
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, NotFound, ValidationFailed, check_version
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork

if TYPE_CHECKING:
    from kefu.auth.schemas import Principal

AUDIT_MERGED = "contact.merged"
AUDIT_MERGE_REVERTED = "contact.merge_reverted"
AUDIT_EXPORTED = "contact.exported"

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
    joins the same timeline. Two requests racing on a new identity (two tabs, two nodes) cannot both
    insert it: the loser's savepoint rolls back and it resolves again, now finding the winner's contact.
    """
    for attempt in range(3):
        try:
            async with uow.session.begin_nested():
                return await _resolve_contact_once(uow, tenant_id=tenant_id, identities=identities, name=name,
                                                   email=email, phone=phone)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _resolve_contact_once(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    identities: Sequence[tuple[str, str, bool]],
    name: str | None,
    email: str | None,
    phone: str | None,
) -> Contact:
    session = uow.session
    now = utcnow()
    wanted = [(k, normalise_identity(k, v), verified) for k, v, verified in identities if v and v.strip()]
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


def _emit_contact(uow: UnitOfWork, contact: Contact, identities: list[ContactIdentity] | None = None) -> None:
    read = contact_service.contact_read(contact, identities)
    uow.emit(ev.CONTACT_UPDATED, tenant_id=contact.tenant_id, contact_id=contact.id,
             data={"contact": read.model_dump(mode="json")})


async def _emit_contact_with_identities(uow: UnitOfWork, contact: Contact) -> None:
    found = await contact_service.identities_of(session=uow.session, contact_ids=[contact.id])
    _emit_contact(uow, contact, found.get(contact.id, []))


def _touch(contact: Contact) -> None:
    contact.version += 1
    contact.updated_at = utcnow()


async def _insert_identity(uow: UnitOfWork, *, contact: Contact, data: IdentityIn) -> ContactIdentity:
    """Attach an identity nobody owns; the unique key (not a prior read) settles races between requests."""
    value = normalise_identity(data.kind, data.value)
    owner = await contact_service.find_identity(session=uow.session, tenant_id=contact.tenant_id, kind=data.kind,
                                                value=value)
    if owner is not None:
        raise Conflict("identity_taken", details={"kind": data.kind, "contact_id": owner.contact_id})
    identity = ContactIdentity(id=new_id("cid"), tenant_id=contact.tenant_id, contact_id=contact.id, kind=data.kind,
                               value=value, verified=data.verified, created_at=utcnow())
    try:
        async with uow.session.begin_nested():
            uow.session.add(identity)
            await uow.session.flush()
    except IntegrityError:
        raise Conflict("identity_taken", details={"kind": data.kind}) from None
    return identity


async def do_create_contact(uow: UnitOfWork, *, tenant_id: str, data: ContactCreate) -> Contact:
    """Create a contact with its identities; fails whole (409 identity_taken) if any identity is owned."""
    now = utcnow()
    contact = Contact(id=new_id("ct"), tenant_id=tenant_id, name=data.name, email=data.email, phone=data.phone,
                      vip_level=data.vip_level, attributes=data.attributes, created_at=now, updated_at=now)
    uow.session.add(contact)
    await uow.session.flush()
    seen: set[tuple[str, str]] = set()
    identities = []
    for item in data.identities:
        key = (item.kind, normalise_identity(item.kind, item.value))
        if key in seen:
            continue
        seen.add(key)
        identities.append(await _insert_identity(uow, contact=contact, data=item))
    _emit_contact(uow, contact, identities)
    return contact


async def do_update_contact(
    uow: UnitOfWork, *, contact: Contact, data: ContactUpdate, expected_version: int | None = None
) -> Contact:
    """Change the fields that were sent; ``expected_version`` guards against overwriting someone's edit."""
    check_version(contact.version, expected_version)
    changed = False
    for field, value in data.model_dump(exclude_unset=True).items():
        if field in ("vip_level", "attributes") and value is None:
            raise ValidationFailed("validation_error", details={"field": field})
        if getattr(contact, field) != value:
            setattr(contact, field, value)
            changed = True
    if changed:
        _touch(contact)
        await uow.session.flush()
        await _emit_contact_with_identities(uow, contact)
    return contact


async def do_add_identity(uow: UnitOfWork, *, contact: Contact, data: IdentityIn) -> tuple[ContactIdentity, bool]:
    """Attach an identity; returns (identity, created). Already this contact's: returned as it is."""
    existing = await contact_service.find_identity(session=uow.session, tenant_id=contact.tenant_id, kind=data.kind,
                                                   value=data.value)
    if existing is not None and existing.contact_id == contact.id:
        return existing, False
    identity = await _insert_identity(uow, contact=contact, data=data)
    _touch(contact)
    await uow.session.flush()
    await _emit_contact_with_identities(uow, contact)
    return identity, True


async def do_remove_identity(uow: UnitOfWork, *, contact: Contact, identity_id: str) -> None:
    """Detach an identity; later messages from it no longer join this contact."""
    identity = await uow.session.get(ContactIdentity, identity_id)
    if identity is None or identity.contact_id != contact.id:
        raise NotFound("identity_not_found")
    await uow.session.delete(identity)
    _touch(contact)
    await uow.session.flush()
    await _emit_contact_with_identities(uow, contact)


async def _lock(uow: UnitOfWork, *contacts: Contact) -> None:
    """Re-read and row-lock contacts in id order (PostgreSQL), so concurrent merges of one contact serialise."""
    for contact in sorted(contacts, key=lambda c: c.id):
        await uow.session.refresh(contact, with_for_update=True)


async def do_merge_contacts(
    uow: UnitOfWork, *, target: Contact, source: Contact, actor: Principal | None, ip: str | None = None
) -> ContactMerge:
    """Move the source contact's identities and conversations to the target and remember exactly what moved.

    The source stays (marked ``merged_into_id``) so that the merge can be reverted; ``actor`` None is the
    system (a visitor who logged in). Audited.
    """
    if target.id == source.id:
        raise ValidationFailed("merge_same_contact")
    await _lock(uow, target, source)
    for contact in (target, source):
        if contact.merged_into_id is not None:
            raise Conflict("contact_merged", details={"contact_id": contact.id,
                                                      "merged_into_id": contact.merged_into_id})
    session = uow.session
    moving = (
        await session.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id == source.id).order_by(ContactIdentity.id)
        )
    ).all()
    for identity in moving:
        identity.contact_id = target.id
    identity_ids = [identity.id for identity in moving]
    conversation_ids = await conversation_actions.do_move_conversations(
        uow, tenant_id=target.tenant_id, from_contact_id=source.id, to_contact_id=target.id)
    now = utcnow()
    merge = ContactMerge(id=new_id("cmg"), tenant_id=target.tenant_id, source_contact_id=source.id,
                         target_contact_id=target.id, moved_identity_ids=identity_ids,
                         moved_conversation_ids=conversation_ids, merged_by=actor.id if actor else None,
                         merged_at=now)
    session.add(merge)
    source.merged_into_id = target.id
    _touch(source)
    _touch(target)
    await session.flush()
    read = contact_service.merge_read(merge).model_dump(mode="json")
    uow.emit(ev.CONTACT_MERGED, tenant_id=target.tenant_id, contact_id=target.id, data={"merge": read})
    await audit_actions.do_record(
        uow, tenant_id=target.tenant_id, actor=actor, action=AUDIT_MERGED, target_type="contact",
        target_id=target.id, ip=ip,
        details={"merge_id": merge.id, "source_contact_id": source.id, "moved_identity_ids": identity_ids,
                 "moved_conversation_ids": conversation_ids})
    return merge


async def do_revert_merge(
    uow: UnitOfWork, *, merge: ContactMerge, actor: Principal | None, ip: str | None = None
) -> ContactMerge:
    """Give the source contact back exactly the identities and conversations this merge moved. Audited.

    Merges are undone newest first: if the target was itself merged away since, revert that merge first.
    Identities deleted since stay deleted; conversations started after the merge stay with the target.
    """
    if merge.reverted_at is not None:
        raise Conflict("merge_already_reverted")
    session = uow.session
    target = await session.get(Contact, merge.target_contact_id)
    source = await session.get(Contact, merge.source_contact_id)
    if target is None or source is None:
        raise NotFound("contact_not_found")
    await _lock(uow, target, source)
    await session.refresh(merge, with_for_update=True)
    if merge.reverted_at is not None:
        raise Conflict("merge_already_reverted")
    if target.merged_into_id is not None:
        raise Conflict("contact_merged", details={"contact_id": target.id, "merged_into_id": target.merged_into_id})
    identity_ids = [str(i) for i in merge.moved_identity_ids]
    returned_identities: list[str] = []
    if identity_ids:
        rows = (
            await session.scalars(
                select(ContactIdentity).where(ContactIdentity.id.in_(identity_ids),
                                              ContactIdentity.contact_id == target.id)
            )
        ).all()
        for identity in rows:
            identity.contact_id = source.id
            returned_identities.append(identity.id)
    returned_conversations = await conversation_actions.do_move_conversations(
        uow, tenant_id=merge.tenant_id, from_contact_id=target.id, to_contact_id=source.id,
        conversation_ids=[str(c) for c in merge.moved_conversation_ids])
    source.merged_into_id = None
    _touch(source)
    _touch(target)
    merge.reverted_at = utcnow()
    merge.reverted_by = actor.id if actor else None
    await session.flush()
    read = contact_service.merge_read(merge).model_dump(mode="json")
    uow.emit(ev.CONTACT_UNMERGED, tenant_id=merge.tenant_id, contact_id=target.id, data={"merge": read})
    await audit_actions.do_record(
        uow, tenant_id=merge.tenant_id, actor=actor, action=AUDIT_MERGE_REVERTED, target_type="contact",
        target_id=target.id, ip=ip,
        details={"merge_id": merge.id, "source_contact_id": source.id,
                 "returned_identity_ids": sorted(returned_identities),
                 "returned_conversation_ids": returned_conversations})
    return merge


async def do_record_export(
    uow: UnitOfWork, *, contact: Contact, actor: Principal | None, ip: str | None = None
) -> None:
    """Audit a data export: who took a copy of this contact's data, and when."""
    await audit_actions.do_record(uow, tenant_id=contact.tenant_id, actor=actor, action=AUDIT_EXPORTED,
                                  target_type="contact", target_id=contact.id, ip=ip)
