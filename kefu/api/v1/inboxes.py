"""REST routes: inboxes (a tenant's chat entry points) and their identity-verification secret.

The secret signs customers' identity tokens, so only callers who may administer inboxes ever see it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from kefu.api.deps import IfMatch, Scoped, UoWDep, client_ip, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.channels import actions as channel_actions
from kefu.channels import service as channel_service
from kefu.channels.schemas import InboxCreate, InboxRead, InboxSecretRead, InboxUpdate

router = APIRouter(prefix="/api/v1/inboxes", tags=["inboxes"])
Reader = Scoped("inboxes:read")
Admin = Scoped("inboxes:write")
InboxId = Annotated[str, Path(max_length=40)]


@router.post("", status_code=201, summary="Create an inbox (returns its identity secret)",
             response_model=InboxSecretRead, responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS))
async def create_inbox(body: InboxCreate, actor: Admin, uow: UoWDep, response: Response) -> InboxRead:
    inbox = await channel_actions.do_create_inbox(uow, tenant_id=actor.tenant_id, data=body)
    await uow.commit()
    set_etag(response, inbox.version)
    return channel_service.inbox_read(inbox, with_secret=True)


@router.get("", summary="List inboxes (without secrets)", response_model=Page[InboxRead],
            responses=error_responses(*AUTH_ERRORS, "invalid_cursor"))
async def list_inboxes(actor: Reader, uow: UoWDep, limit: Limit = 50, cursor: Cursor = None) -> Page[InboxRead]:
    rows = await channel_service.list_inboxes(session=uow.session, tenant_id=actor.tenant_id,
                                              after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([channel_service.inbox_read(i) for i in rows], limit)


@router.get("/{inbox_id}", summary="Get an inbox; admins also get its identity_secret",
            response_model=InboxSecretRead | InboxRead, responses=error_responses(*AUTH_ERRORS, "inbox_not_found"))
async def get_inbox(inbox_id: InboxId, actor: Reader, uow: UoWDep, response: Response) -> InboxRead:
    inbox = await channel_service.access_inbox(session=uow.session, tenant_id=actor.tenant_id, inbox_id=inbox_id)
    set_etag(response, inbox.version)
    return channel_service.inbox_read(inbox, with_secret=actor.can("inboxes:write"))


@router.patch("/{inbox_id}", summary="Update an inbox (If-Match)", response_model=InboxSecretRead,
              responses=error_responses(*AUTH_ERRORS, *BODY_ERRORS, "inbox_not_found", "version_conflict",
                                        "invalid_if_match"))
async def update_inbox(inbox_id: InboxId, body: InboxUpdate, actor: Admin, uow: UoWDep, expected: IfMatch,
                       response: Response) -> InboxRead:
    inbox = await channel_service.access_inbox(session=uow.session, tenant_id=actor.tenant_id, inbox_id=inbox_id)
    inbox = await channel_actions.do_update_inbox(uow, inbox=inbox, data=body, expected_version=expected)
    await uow.commit()
    set_etag(response, inbox.version)
    return channel_service.inbox_read(inbox, with_secret=True)


@router.post("/{inbox_id}/rotate-secret", summary="Replace the identity secret (old tokens stop working; audited)",
             response_model=InboxSecretRead, responses=error_responses(*AUTH_ERRORS, "inbox_not_found"))
async def rotate_secret(inbox_id: InboxId, actor: Admin, uow: UoWDep, request: Request,
                        response: Response) -> InboxRead:
    inbox = await channel_service.access_inbox(session=uow.session, tenant_id=actor.tenant_id, inbox_id=inbox_id)
    inbox = await channel_actions.do_rotate_identity_secret(uow, inbox=inbox, actor=actor, ip=client_ip(request))
    await uow.commit()
    set_etag(response, inbox.version)
    return channel_service.inbox_read(inbox, with_secret=True)
