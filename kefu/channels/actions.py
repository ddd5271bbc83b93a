"""Writes for inboxes and the web chat channel: start a widget session, post a visitor's message."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kefu.audit import actions as audit_actions
from kefu.bot import service as bot_service
from kefu.channels import identity, visitor_tokens
from kefu.channels import service as channel_service
from kefu.channels.models import IdentityNonce, Inbox
from kefu.channels.schemas import (
    InboxAppearanceUpdate,
    InboxCreate,
    InboxSettings,
    InboxUpdate,
    WidgetSessionCreate,
    WidgetSessionRead,
)
from kefu.channels.service import get_public_inbox, widget_config, widget_locale
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import actions as contact_actions
from kefu.contacts import service as contact_service
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.actions import MessagePost, PostOutcome
from kefu.conversations.schemas import MessageRead
from kefu.core.clock import isoformat, utcnow
from kefu.core.errors import (
    DomainError,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
    check_version,
)
from kefu.core.ids import new_id
from kefu.core.settings import Settings
from kefu.events.uow import UnitOfWork

if TYPE_CHECKING:
    from kefu.auth.schemas import Principal

AUDIT_SECRET_ROTATED = "inbox.secret_rotated"


async def do_create_inbox(uow: UnitOfWork, *, tenant_id: str, data: InboxCreate) -> Inbox:
    now = utcnow()
    inbox = Inbox(id=new_id("inb"), tenant_id=tenant_id, name=data.name, channel_type=data.channel_type,
                  identity_secret=secrets.token_hex(32), require_identity=data.require_identity,
                  settings=data.settings.model_dump(), is_active=True, created_at=now, updated_at=now)
    uow.session.add(inbox)
    await uow.session.flush()
    return inbox


async def do_update_inbox(
    uow: UnitOfWork, *, inbox: Inbox, data: InboxUpdate, expected_version: int | None = None
) -> Inbox:
    check_version(inbox.version, expected_version)
    for field in ("name", "require_identity", "is_active"):
        value = getattr(data, field)
        if value is not None:
            setattr(inbox, field, value)
    if data.settings is not None:
        inbox.settings = data.settings.model_dump()
    inbox.version += 1
    inbox.updated_at = utcnow()
    await uow.session.flush()
    return inbox


async def do_update_inbox_appearance(
    uow: UnitOfWork, *, inbox: Inbox, data: InboxAppearanceUpdate, expected_version: int | None = None
) -> Inbox:
    """Merge the widget look fields sent into the inbox settings (the rest of the settings stay)."""
    check_version(inbox.version, expected_version)
    merged = {**(inbox.settings or {}), **data.model_dump(exclude_unset=True)}
    if any(merged.get(key) is None for key in ("color", "position", "csat_enabled", "locale") if key in merged):
        raise ValidationFailed("validation_error", details={"field": "settings"})
    try:
        settings = InboxSettings.model_validate(merged).model_dump()
    except PydanticValidationError:
        raise ValidationFailed("validation_error", details={"field": "settings"}) from None
    if settings != inbox.settings:
        inbox.settings = settings
        inbox.version += 1
        inbox.updated_at = utcnow()
        await uow.session.flush()
    return inbox


async def do_rotate_identity_secret(
    uow: UnitOfWork, *, inbox: Inbox, actor: Principal | None = None, ip: str | None = None
) -> Inbox:
    """Replace the identity secret; tokens signed with the old one stop working at once. Audited."""
    inbox.identity_secret = secrets.token_hex(32)
    inbox.version += 1
    inbox.updated_at = utcnow()
    await uow.session.flush()
    await audit_actions.do_record(uow, tenant_id=inbox.tenant_id, actor=actor, action=AUDIT_SECRET_ROTATED,
                                  target_type="inbox", target_id=inbox.id, ip=ip)
    return inbox


async def _consume_nonce(session: AsyncSession, inbox_id: str, nonce: str, ttl: int) -> None:
    """Remember a token's nonce; a second use fails on the primary key, even across nodes."""
    now = utcnow()
    try:
        async with session.begin_nested():
            session.add(IdentityNonce(inbox_id=inbox_id, nonce=nonce, used_at=now,
                                      expires_at=now + timedelta(seconds=ttl + identity.FUTURE_SKEW)))
            await session.flush()
    except IntegrityError:
        raise Unauthenticated("identity_token_replayed") from None


async def do_start_widget_session(
    uow: UnitOfWork, *, settings: Settings, data: WidgetSessionCreate, locale: str, ip: str | None = None
) -> WidgetSessionRead:
    """Verify who the visitor is and return a visitor token bound to one contact.

    Order of trust: a verified identity (token or static hash) wins; otherwise an unexpired visitor token of
    the same inbox resumes the earlier visitor; otherwise a new anonymous visitor id is issued. A visitor
    who chatted anonymously and then logs in as a known customer has the anonymous contact merged into
    the customer's (reversibly, audited as the system), so the earlier chat joins the customer's timeline.
    """
    session = uow.session
    inbox = await get_public_inbox(session=session, inbox_id=data.inbox_id)
    locale = widget_locale(inbox, data.locale, locale)
    verified: identity.VerifiedIdentity | None = None
    if data.identity_token:
        verified = identity.verify_identity_token(inbox.identity_secret, data.identity_token,
                                                  max_age=settings.identity_token_max_age_seconds)
        await _consume_nonce(session, inbox.id, verified.nonce or "", settings.identity_token_max_age_seconds)
    elif data.external_id or data.identity_hash:
        if not (data.external_id and data.identity_hash):
            raise Unauthenticated("invalid_identity_token")
        if not (inbox.settings or {}).get("accept_static_identity_hash", True):
            raise Unauthenticated("invalid_identity_token")
        verified = identity.verify_static_hash(inbox.identity_secret, data.external_id, data.identity_hash)
    if inbox.require_identity and verified is None:
        raise Forbidden("identity_verification_required")

    previous: VisitorClaims | None = None
    if data.visitor_token:
        try:
            claims = visitor_tokens.verify(settings.secret_key, data.visitor_token)
            if claims.inbox_id == inbox.id:
                previous = claims
        except Unauthenticated:
            previous = None  # an expired or foreign token just starts a fresh visitor
    if previous is not None and verified is not None:
        previous = await _join_verified_customer(uow, tenant_id=inbox.tenant_id, previous=previous,
                                                 verified=verified, ip=ip)
    visitor_id = previous.visitor_id if previous else new_id("vis")
    identities: list[tuple[str, str, bool]] = [("visitor", visitor_id, False)]
    if verified is not None:
        identities.insert(0, ("external", verified.customer_id, True))
    contact = await contact_actions.do_resolve_contact(
        uow, tenant_id=inbox.tenant_id, identities=identities, name=data.name, email=data.email)
    contact_id = contact.id
    live_conversation = await conversation_service.live_conversation(
        session=session, tenant_id=inbox.tenant_id, inbox_id=inbox.id, contact_id=contact_id)
    live = live_conversation.id if live_conversation is not None else None
    expires = int(time.time()) + settings.visitor_token_ttl_seconds
    claims = VisitorClaims(inbox.tenant_id, inbox.id, contact_id, visitor_id, verified is not None, expires)
    return WidgetSessionRead(
        visitor_token=visitor_tokens.issue(settings.secret_key, claims), visitor_id=visitor_id,
        contact_id=contact_id, verified=verified is not None, conversation_id=live,
        expires_at=isoformat(datetime.fromtimestamp(expires, UTC)) or "",
        widget=widget_config(inbox, locale))


async def _join_verified_customer(
    uow: UnitOfWork, *, tenant_id: str, previous: VisitorClaims, verified: identity.VerifiedIdentity,
    ip: str | None,
) -> VisitorClaims | None:
    """Reconcile the browser's earlier visitor with the customer who just proved who they are.

    Returns the claims to keep using, or None to start a fresh visitor: a browser whose earlier visitor
    belongs to a *different verified* person (a shared computer) must not hand that person's history to,
    or take it from, the one logging in now.
    """
    session = uow.session
    earlier = await contact_service.current_contact(session=session, tenant_id=tenant_id,
                                                    contact_id=previous.contact_id)
    if earlier is None:
        return None
    owner = await contact_service.find_identity(session=session, tenant_id=tenant_id, kind="external",
                                                value=verified.customer_id)
    customer = (await contact_service.current_contact(session=session, tenant_id=tenant_id,
                                                      contact_id=owner.contact_id)) if owner else None
    if customer is not None and customer.id == earlier.id:
        return previous
    anonymous = not previous.verified and not await contact_service.has_verified_identity(
        session=session, contact_id=earlier.id)
    if not anonymous:
        return None
    if customer is not None:
        await contact_actions.do_merge_contacts(uow, target=customer, source=earlier, actor=None, ip=ip)
    # With no customer contact yet, the anonymous contact simply gains the verified identity.
    return previous


@dataclass(frozen=True, slots=True)
class VisitorPost:
    """A customer message from the widget, as its visitor token describes the sender."""

    claims: VisitorClaims
    body: str
    client_message_id: str | None
    attachments: Sequence[dict[str, Any]] | None = ()
    locale: str | None = None


async def do_post_visitor_messages(uow: UnitOfWork, items: Sequence[VisitorPost]) -> list[PostOutcome]:
    """Append widget customers' messages to their live conversations (opened on a first message).

    Set-based for group commit: inboxes and live conversations of every item are read in one query each
    (conversations as plain column rows, saved by ``do_post_messages`` in one executemany).
    The contact is resolved from the visitor identity, so a token keeps following its visitor through merges
    and their reverts.
    """
    session = uow.session
    inboxes = await channel_service.inbox_states(session=session,
                                                 inbox_ids={item.claims.inbox_id for item in items})
    contacts = await contact_service.visitor_contacts(
        session=session, visitors={(item.claims.tenant_id, item.claims.visitor_id) for item in items})
    live: dict[tuple[str, str], Any] = await conversation_service.live_conversation_rows(
        session=session, contact_ids=set(contacts.values()))

    def live_conversation(claims: VisitorClaims, contact_id: str | None) -> Any:
        conversation = live.get((claims.inbox_id, contact_id or ""))
        return conversation if conversation is not None and conversation.tenant_id == claims.tenant_id else None

    # Inboxes with the bot switched on start conversations owned by the bot (it answers first); asked only
    # when this batch starts a conversation (most chat batches only append).
    starting = {item.claims.inbox_id for item in items
                if live_conversation(item.claims, contacts.get((item.claims.tenant_id, item.claims.visitor_id))) is None}
    bot_inboxes = await bot_service.bot_enabled_inboxes(session=session, inbox_ids=starting)
    outcomes: list[PostOutcome | None] = [None] * len(items)
    posts: list[MessagePost] = []
    slots: list[int] = []
    started: list[Any] = []
    for index, item in enumerate(items):
        claims = item.claims
        inbox = inboxes.get(claims.inbox_id)
        contact_id = contacts.get((claims.tenant_id, claims.visitor_id))
        if inbox is None or not inbox[1] or inbox[0] != claims.tenant_id:  # (tenant id, active)
            outcomes[index] = NotFound("inbox_not_found")
            continue
        if contact_id is None:
            outcomes[index] = Unauthenticated("invalid_visitor_token")
            continue
        if not item.body.strip() and not item.attachments:
            outcomes[index] = ValidationFailed("empty_message")  # refused before it can open a conversation
            continue
        conversation = live_conversation(claims, contact_id)
        if conversation is None:
            conversation = conversation_actions.start_conversation_row(
                uow, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, contact_id=contact_id,
                channel="webchat", locale=item.locale,
                owner_kind="bot" if claims.inbox_id in bot_inboxes else "queue")
            live[(claims.inbox_id, contact_id)] = conversation
            started.append(conversation)
        posts.append(MessagePost(conversation=conversation, sender_kind="customer",
                                 sender_id=conversation.contact_id, body=item.body, attachments=item.attachments,
                                 client_message_id=item.client_message_id, visitor_id=claims.visitor_id))
        slots.append(index)
    await conversation_actions.insert_new_conversation_rows(uow, started)
    for index, outcome in zip(slots, await conversation_actions.do_post_messages(uow, posts), strict=True):
        outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]


async def do_post_visitor_message(
    uow: UnitOfWork,
    *,
    claims: VisitorClaims,
    body: str,
    client_message_id: str | None,
    attachments: list[dict[str, Any]] | None = None,
    locale: str | None = None,
) -> tuple[MessageRead, bool]:
    """Append one customer message (see ``do_post_visitor_messages``)."""
    [outcome] = await do_post_visitor_messages(uow, [VisitorPost(
        claims=claims, body=body, client_message_id=client_message_id, attachments=attachments or [],
        locale=locale)])
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


async def do_mark_read_by_visitor(uow: UnitOfWork, *, claims: VisitorClaims, up_to_message_id: str) -> list[str]:
    """The customer has seen the shop's messages up to this one (in their own conversation only)."""
    session = uow.session
    message = await conversation_service.access_message(session=session, tenant_id=claims.tenant_id,
                                                        message_id=up_to_message_id)
    contact_id = (await contact_service.visitor_contacts(
        session=session, visitors={(claims.tenant_id, claims.visitor_id)})).get((claims.tenant_id, claims.visitor_id))
    conversation = await conversation_service.access_conversation(
        session=session, tenant_id=claims.tenant_id, conversation_id=message.conversation_id)
    if contact_id is None or conversation.contact_id != contact_id or conversation.inbox_id != claims.inbox_id \
            or message.private:
        raise NotFound("message_not_found")
    return await conversation_actions.do_mark_read(uow, conversation=conversation, reader_kind="customer",
                                                   up_to_message_id=up_to_message_id)


async def prune_identity_nonces(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Forget nonces whose tokens would be expired anyway."""
    async with sessionmaker() as session:
        await session.execute(delete(IdentityNonce).where(IdentityNonce.expires_at < utcnow()))
        await session.commit()
