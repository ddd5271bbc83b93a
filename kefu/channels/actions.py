"""Writes for inboxes and the web chat channel: start a widget session, post a visitor's message."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kefu.channels import identity, visitor_tokens
from kefu.channels.models import IdentityNonce, Inbox
from kefu.channels.schemas import InboxCreate, InboxUpdate, WidgetSessionCreate, WidgetSessionRead
from kefu.channels.service import get_public_inbox, widget_config
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import actions as contact_actions
from kefu.conversations import actions as conversation_actions
from kefu.conversations.models import Conversation
from kefu.conversations.schemas import MessageRead
from kefu.core.clock import isoformat, utcnow
from kefu.core.errors import Forbidden, Unauthenticated
from kefu.core.ids import new_id
from kefu.core.settings import Settings
from kefu.events.uow import UnitOfWork


async def do_create_inbox(uow: UnitOfWork, *, tenant_id: str, data: InboxCreate) -> Inbox:
    now = utcnow()
    inbox = Inbox(id=new_id("inb"), tenant_id=tenant_id, name=data.name, channel_type=data.channel_type,
                  identity_secret=secrets.token_hex(32), require_identity=data.require_identity,
                  settings=data.settings.model_dump(), is_active=True, created_at=now, updated_at=now)
    uow.session.add(inbox)
    await uow.session.flush()
    return inbox


async def do_update_inbox(uow: UnitOfWork, *, inbox: Inbox, data: InboxUpdate) -> Inbox:
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


async def do_rotate_identity_secret(uow: UnitOfWork, *, inbox: Inbox) -> Inbox:
    inbox.identity_secret = secrets.token_hex(32)
    inbox.version += 1
    inbox.updated_at = utcnow()
    await uow.session.flush()
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
    uow: UnitOfWork, *, settings: Settings, data: WidgetSessionCreate, locale: str
) -> WidgetSessionRead:
    """Verify who the visitor is and return a visitor token bound to one contact.

    Order of trust: a verified identity (token or static hash) wins; otherwise an unexpired visitor token of
    the same inbox resumes the earlier visitor; otherwise a new anonymous visitor id is issued.
    """
    session = uow.session
    inbox = await get_public_inbox(session=session, inbox_id=data.inbox_id)
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
    visitor_id = previous.visitor_id if previous else new_id("vis")
    identities: list[tuple[str, str, bool]] = [("visitor", visitor_id, False)]
    if verified is not None:
        identities.insert(0, ("external", verified.customer_id, True))
    # TODO(issue 2, contacts merge): an anonymous visitor who logs in should have their earlier contact
    # merged into the verified one; do_resolve_contact picks the verified contact already.
    contact = await contact_actions.do_resolve_contact(
        uow, tenant_id=inbox.tenant_id, identities=identities, name=data.name, email=data.email)
    contact_id = contact.id
    live = (
        await session.scalars(
            select(Conversation.id)
            .where(Conversation.inbox_id == inbox.id, Conversation.contact_id == contact_id,
                   Conversation.status.in_(("open", "pending")))
            .order_by(Conversation.id.desc()).limit(1)
        )
    ).first()
    expires = int(time.time()) + settings.visitor_token_ttl_seconds
    claims = VisitorClaims(inbox.tenant_id, inbox.id, contact_id, visitor_id, verified is not None, expires)
    return WidgetSessionRead(
        visitor_token=visitor_tokens.issue(settings.secret_key, claims), visitor_id=visitor_id,
        contact_id=contact_id, verified=verified is not None, conversation_id=live,
        expires_at=isoformat(datetime.fromtimestamp(expires, UTC)) or "",
        widget=widget_config(inbox, locale))


async def do_post_visitor_message(
    uow: UnitOfWork,
    *,
    claims: VisitorClaims,
    body: str,
    client_message_id: str | None,
    attachments: list[dict[str, Any]] | None = None,
    locale: str | None = None,
) -> tuple[MessageRead, bool]:
    """Append a customer message from the widget to their live conversation (opened on first message)."""
    conversation = await conversation_actions.do_open_conversation(
        uow, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, contact_id=claims.contact_id,
        channel="webchat", locale=locale)
    return await conversation_actions.do_post_message(
        uow, conversation=conversation, sender_kind="customer", sender_id=claims.contact_id, body=body,
        attachments=attachments, client_message_id=client_message_id)


async def prune_identity_nonces(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Forget nonces whose tokens would be expired anyway."""
    async with sessionmaker() as session:
        await session.execute(delete(IdentityNonce).where(IdentityNonce.expires_at < utcnow()))
        await session.commit()
