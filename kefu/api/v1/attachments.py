"""REST routes: upload files (agents and widget visitors), and download them with a token or a signed link.

Uploads are the raw file as the request body (``fetch(url, {method: "POST", body: file})``); the type is
sniffed from the bytes. Downloads either carry the agent's bearer token or a short-lived signed URL, so an
``<img src>`` works in both the workspace and the widget.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from kefu.api.deps import RuntimeDep, Scoped, UoWDep, get_principal
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.v1.widget import Visitor, _contact_id
from kefu.attachments import actions as attachment_actions
from kefu.attachments import policies as attachment_policies
from kefu.attachments import service as attachment_service
from kefu.attachments.ports import AttachmentStore
from kefu.attachments.schemas import AttachmentLinks, AttachmentLinksRequest, AttachmentRead
from kefu.conversations import service as conversation_service
from kefu.core.errors import Forbidden, NotFound
from kefu.integrations.storage.local import store_for
from kefu.runtime import Runtime

router = APIRouter(tags=["attachments"])
Reader = Scoped("conversations:read")
Writer = Scoped("conversations:write")
AttachmentId = Annotated[str, Path(max_length=40)]
Filename = Annotated[str | None, Query(max_length=255, description="The original file name (URL-encoded)")]

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}
_UPLOAD_ERRORS = ("attachment_too_large", "unsupported_attachment_type", "empty_attachment",
                  "attachment_quota_exceeded")


def attachment_store(runtime: Runtime) -> AttachmentStore:
    """The node's store: local disk under ``KEFU_DATA_DIR/attachments`` (shared with the clean-up worker)."""
    return store_for(runtime)


def upload_budget(runtime: Runtime) -> attachment_policies.UploadBudget:
    """What widget visitors may upload per window, from the settings."""
    settings = runtime.settings
    return attachment_policies.UploadBudget(
        window_seconds=settings.attachment_window_seconds,
        visitor_uploads=settings.attachment_visitor_max_uploads, visitor_bytes=settings.attachment_visitor_max_bytes,
        inbox_uploads=settings.attachment_inbox_max_uploads, inbox_bytes=settings.attachment_inbox_max_bytes)


def _read(runtime: Runtime, attachment) -> AttachmentRead:  # type: ignore[no-untyped-def]
    return attachment_service.attachment_read(attachment, secret=runtime.settings.secret_key,
                                              ttl_seconds=runtime.settings.attachment_url_ttl_seconds)


@router.post("/api/v1/attachments", status_code=201, response_model=AttachmentRead, openapi_extra=_UPLOAD_BODY,
             summary="Upload a file as an agent (raw body; png, jpeg, gif, webp or pdf, sniffed from the bytes)",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *_UPLOAD_ERRORS, "conversation_not_found"))
async def upload(request: Request, actor: Writer, uow: UoWDep, runtime: RuntimeDep, filename: Filename = None,
                 conversation_id: Annotated[str | None, Query(max_length=40)] = None) -> AttachmentRead:
    if conversation_id is not None:
        await conversation_service.access_conversation(session=uow.session, tenant_id=actor.tenant_id,
                                                       conversation_id=conversation_id)
    attachment = await attachment_actions.do_store_attachment(
        uow, store=attachment_store(runtime), tenant_id=actor.tenant_id,
        uploader_kind="agent" if actor.kind == "user" else "bot", uploader_id=actor.id, data=await request.body(),
        filename=filename, max_bytes=runtime.settings.attachment_max_bytes, conversation_id=conversation_id,
        quota_bytes=runtime.settings.attachment_tenant_quota_bytes)
    await uow.commit()
    return _read(runtime, attachment)


@router.post("/api/v1/widget/attachments", status_code=201, response_model=AttachmentRead,
             openapi_extra=_UPLOAD_BODY, tags=["widget"],
             summary="Upload a file as a widget visitor (raw body), then send it with a message by id",
             description="Each visitor, and each inbox's visitors together, have an upload budget per time window "
                         "(429 `rate_limited` with Retry-After past it); the tenant has a storage quota.",
             responses=error_responses(*BODY_ERRORS, *_UPLOAD_ERRORS, "invalid_visitor_token", "rate_limited"))
async def visitor_upload(request: Request, claims: Visitor, uow: UoWDep, runtime: RuntimeDep,
                         filename: Filename = None) -> AttachmentRead:
    await _contact_id(runtime, claims)  # the visitor still exists (not erased)
    attachment = await attachment_actions.do_store_attachment(
        uow, store=attachment_store(runtime), tenant_id=claims.tenant_id, uploader_kind="customer",
        uploader_id=claims.visitor_id, inbox_id=claims.inbox_id, data=await request.body(), filename=filename,
        max_bytes=runtime.settings.attachment_max_bytes, budget=upload_budget(runtime),
        quota_bytes=runtime.settings.attachment_tenant_quota_bytes)
    await uow.commit()
    return _read(runtime, attachment)


@router.post("/api/v1/widget/attachment-links", response_model=AttachmentLinks, tags=["widget"],
             summary="Signed download links for attachments the visitor may see (others are left out)",
             responses=error_responses(*BODY_ERRORS, "invalid_visitor_token"))
async def visitor_links(body: AttachmentLinksRequest, claims: Visitor, uow: UoWDep,
                        runtime: RuntimeDep) -> AttachmentLinks:
    contact_id = await _contact_id(runtime, claims)
    conversation_ids = set((await uow.session.scalars(conversation_service.conversation_ids_query(
        tenant_id=claims.tenant_id, contact_id=contact_id, inbox_id=claims.inbox_id))).all())
    visible = await attachment_service.visitor_visible(
        session=uow.session, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, visitor_id=claims.visitor_id,
        conversation_ids=conversation_ids, attachment_ids=body.attachment_ids)
    settings = runtime.settings
    return AttachmentLinks(data=[attachment_service.signed_link(a, secret=settings.secret_key,
                                                                ttl_seconds=settings.attachment_url_ttl_seconds)
                                 for a in visible])


@router.get("/api/v1/attachments/{attachment_id}", response_model=AttachmentRead,
            summary="Attachment metadata with a fresh signed download URL",
            responses=error_responses(*AUTH_ERRORS, "attachment_not_found"))
async def get_attachment(attachment_id: AttachmentId, actor: Reader, uow: UoWDep,
                         runtime: RuntimeDep) -> AttachmentRead:
    attachment = await attachment_service.access_attachment(session=uow.session, tenant_id=actor.tenant_id,
                                                            attachment_id=attachment_id)
    return _read(runtime, attachment)


@router.get("/api/v1/attachments/{attachment_id}/content", response_class=Response,
            summary="Download the file: with an agent's bearer token, or a signed URL (exp and sig)",
            responses={200: {"description": "The file", "content": {"application/octet-stream": {}}},
                       **error_responses(*AUTH_ERRORS, "attachment_not_found")})
async def download(
    attachment_id: AttachmentId,
    request: Request,
    uow: UoWDep,
    runtime: RuntimeDep,
    exp: Annotated[int | None, Query(ge=0, le=2**40)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    settings = runtime.settings
    if exp is not None and sig is not None:
        attachment = await attachment_service.get_unscoped(session=uow.session, attachment_id=attachment_id)
        if attachment is None or not attachment_policies.link_valid(
                settings.secret_key, tenant_id=attachment.tenant_id, attachment_id=attachment.id, expires=exp,
                signature=sig, now=time.time()):
            raise NotFound("attachment_not_found")  # a bad or expired link looks like a missing file
        max_age = max(0, exp - int(time.time()))
    else:
        actor = await get_principal(request, runtime)
        if not actor.can("conversations:read"):
            raise Forbidden("insufficient_scope" if actor.kind == "api_key" else "forbidden",
                            scope="conversations:read")
        attachment = await attachment_service.access_attachment(session=uow.session, tenant_id=actor.tenant_id,
                                                                attachment_id=attachment_id)
        max_age = 300
    data = await attachment_store(runtime).get(attachment.storage_key)
    if data is None:
        raise NotFound("attachment_not_found")
    return Response(content=data, media_type=attachment.content_type, headers={
        "Content-Disposition": attachment_policies.content_disposition(attachment.filename, attachment.content_type),
        "X-Content-Type-Options": "nosniff", "Cache-Control": f"private, max-age={max_age}",
        "Content-Security-Policy": "default-src 'none'; sandbox"})
