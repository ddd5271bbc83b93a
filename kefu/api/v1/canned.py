"""REST routes: canned responses (shared and personal), search by shortcut and text, rendering placeholders."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from kefu.api.deps import IfMatch, Scoped, UoWDep, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from kefu.auth.schemas import Principal
from kefu.canned import actions as canned_actions
from kefu.canned import policies as canned_policies
from kefu.canned import service as canned_service
from kefu.canned.schemas import (
    CannedRenderRead,
    CannedRenderRequest,
    CannedResponseCreate,
    CannedResponseRead,
    CannedResponseUpdate,
)
from kefu.channels import service as channel_service
from kefu.contacts import service as contact_service
from kefu.conversations import service as conversation_service
from kefu.core.errors import Forbidden, NotFound, ValidationFailed, check_version

router = APIRouter(prefix="/api/v1/canned-responses", tags=["canned responses"])
Reader = Scoped("canned_responses:read")
Writer = Scoped("canned_responses:write")
CannedId = Annotated[str, Path(max_length=40)]
_ERRORS = ("canned_response_not_found",)


def _check_may_edit(actor: Principal, owner_key: str) -> None:
    if owner_key == canned_policies.SHARED and not actor.can("canned_responses:share"):
        raise Forbidden("forbidden")


@router.get("", summary="List and search canned responses (shared and the caller's personal ones)",
            response_model=Page[CannedResponseRead], responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_canned(
    actor: Reader,
    uow: UoWDep,
    shortcut: Annotated[str | None, Query(max_length=33, description="Shortcut prefix, e.g. what follows `/`")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in shortcut, title or either body")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    scope: Literal["all", "shared", "personal"] = "all",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CannedResponseRead]:
    after = None
    raw = decode_cursor(cursor)
    if raw is not None:
        shortcut_part, _, id_part = raw.partition("\t")
        if not id_part:
            raise ValidationFailed("invalid_cursor", details={"field": "cursor"})
        after = (shortcut_part, id_part)
    prefix = shortcut.strip().removeprefix("/").lower() if shortcut else None
    rows = await canned_service.list_canned(
        session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id, scope=scope, shortcut_prefix=prefix,
        q=q.strip() if q and q.strip() else None, tag=" ".join(tag.split()).lower() if tag else None, after=after,
        limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page[CannedResponseRead](
        data=[canned_service.canned_read(r) for r in rows],
        next_cursor=encode_cursor(f"{rows[-1].shortcut}\t{rows[-1].id}") if has_more and rows else None)


@router.post("", status_code=201, summary="Create a canned response (shared needs canned_responses:share)",
             response_model=CannedResponseRead,
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "canned_shortcut_taken", "canned_body_required",
                                       "invalid_shortcut", "invalid_tag", "user_token_required"))
async def create_canned(body: CannedResponseCreate, actor: Writer, uow: UoWDep,
                        response: Response) -> CannedResponseRead:
    owner_key = canned_actions.owner_key_for(scope=body.scope, user_id=actor.user_id,
                                             may_share=actor.can("canned_responses:share"))
    row = await canned_actions.do_create_canned(uow, tenant_id=actor.tenant_id, owner_key=owner_key,
                                                created_by=actor.id, data=body)
    await uow.commit()
    set_etag(response, row.version)
    return canned_service.canned_read(row)


@router.get("/{canned_response_id}", summary="Get a canned response", response_model=CannedResponseRead,
            responses=error_responses(*AUTH_ERRORS, *_ERRORS))
async def get_canned(canned_response_id: CannedId, actor: Reader, uow: UoWDep,
                     response: Response) -> CannedResponseRead:
    row = await canned_service.access_canned(session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id,
                                             canned_response_id=canned_response_id)
    set_etag(response, row.version)
    return canned_service.canned_read(row)


@router.patch("/{canned_response_id}", summary="Edit a canned response (If-Match)", response_model=CannedResponseRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *_ERRORS, "canned_shortcut_taken",
                                        "canned_body_required", "invalid_shortcut", "invalid_tag", "version_conflict",
                                        "invalid_if_match"))
async def update_canned(canned_response_id: CannedId, body: CannedResponseUpdate, actor: Writer, uow: UoWDep,
                        expected: IfMatch, response: Response) -> CannedResponseRead:
    row = await canned_service.access_canned(session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id,
                                             canned_response_id=canned_response_id)
    _check_may_edit(actor, row.owner_key)
    row = await canned_actions.do_update_canned(uow, row=row, changes=body.model_dump(exclude_unset=True),
                                                expected_version=expected)
    await uow.commit()
    set_etag(response, row.version)
    return canned_service.canned_read(row)


@router.delete("/{canned_response_id}", status_code=204, summary="Delete a canned response",
               responses=error_responses(*AUTH_ERRORS, *_ERRORS, "version_conflict", "invalid_if_match"))
async def delete_canned(canned_response_id: CannedId, actor: Writer, uow: UoWDep, expected: IfMatch) -> Response:
    row = await canned_service.access_canned(session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id,
                                             canned_response_id=canned_response_id)
    _check_may_edit(actor, row.owner_key)
    check_version(row.version, expected)
    await canned_actions.do_delete_canned(uow, row=row)
    await uow.commit()
    return Response(status_code=204)


@router.post("/{canned_response_id}/render", response_model=CannedRenderRead,
             summary="Fill the placeholders ({{customer.name}}, {{agent.name}}, {{order.id}}, …) for a conversation",
             responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, *_ERRORS, "conversation_not_found"))
async def render_canned(canned_response_id: CannedId, body: CannedRenderRequest, actor: Reader,
                        uow: UoWDep) -> CannedRenderRead:
    row = await canned_service.access_canned(session=uow.session, tenant_id=actor.tenant_id, user_id=actor.user_id,
                                             canned_response_id=canned_response_id)
    if not actor.can("conversations:read"):
        raise Forbidden("forbidden")
    conversation = await conversation_service.access_conversation(
        session=uow.session, tenant_id=actor.tenant_id, conversation_id=body.conversation_id)
    try:
        contact = await contact_service.access_contact(session=uow.session, tenant_id=actor.tenant_id,
                                                       contact_id=conversation.contact_id)
    except NotFound:
        contact = None
    try:
        inbox = await channel_service.access_inbox(session=uow.session, tenant_id=actor.tenant_id,
                                                   inbox_id=conversation.inbox_id)
    except NotFound:
        inbox = None
    values: dict[str, str | None] = {
        "customer.name": contact.name if contact else None,
        "customer.email": contact.email if contact else None,
        "customer.phone": contact.phone if contact else None,
        "agent.name": actor.display_name or None if actor.kind == "user" else None,
        "conversation.id": conversation.id,
        "inbox.name": inbox.name if inbox else None,
    }
    values.update(body.values)
    wanted = body.locale or conversation.locale or actor.locale or "en"
    template, locale = canned_policies.pick_body(row.body_zh, row.body_en, wanted)
    text, missing = canned_policies.render(template, values)
    return CannedRenderRead(body=text, locale=locale, missing=missing)  # type: ignore[arg-type]
