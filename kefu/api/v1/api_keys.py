"""REST routes: scoped API keys of the caller's tenant. The full key is shown once, when it is created."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kefu.api.deps import Scoped, UoWDep, client_ip
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.auth import actions as auth_actions
from kefu.auth import service as auth_service
from kefu.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(prefix="/api/v1/api-keys", tags=["api keys"])

NOT_FOUND = ("api_key_not_found", "validation_error")


@router.post("", status_code=201, summary="Create an API key; the response holds the full key, shown only once",
             response_model=ApiKeyCreated,
             responses=error_responses(*BODY_ERRORS, *AUTH_ERRORS, "forbidden", "insufficient_scope", "validation_error", "unknown_scope", "expires_at_in_past"))
async def create_api_key(body: ApiKeyCreate, request: Request, uow: UoWDep,
                         actor: Scoped("api_keys:write")) -> ApiKeyCreated:
    key, token = await auth_actions.do_create_api_key(uow, actor=actor, name=body.name, scopes=body.scopes,
                                                      expires_at=body.expires_at, ip=client_ip(request))
    await uow.commit()
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(key).model_dump(), "token": token})


@router.get("", summary="List the API keys of your tenant, oldest first (never their secrets)",
            response_model=Page[ApiKeyRead],
            responses=error_responses(*AUTH_ERRORS, "validation_error", "invalid_cursor"))
async def list_api_keys(
    uow: UoWDep,
    actor: Scoped("api_keys:read"),
    limit: Limit = 50,
    cursor: Cursor = None,
    revoked: Annotated[bool | None, Query(description="true: only revoked keys; false: only live ones")] = None,
) -> Page[ApiKeyRead]:
    rows = await auth_service.list_api_keys(session=uow.session, tenant_id=actor.tenant_id,
                                            after_id=decode_cursor(cursor), limit=limit, revoked=revoked)
    return page_of([ApiKeyRead.model_validate(k) for k in rows], limit)


@router.get("/{key_id}", summary="Get one API key (never its secret)", response_model=ApiKeyRead,
            responses=error_responses(*AUTH_ERRORS, *NOT_FOUND))
async def get_api_key(key_id: str, uow: UoWDep, actor: Scoped("api_keys:read")) -> ApiKeyRead:
    key = await auth_service.access_api_key(session=uow.session, tenant_id=actor.tenant_id, key_id=key_id)
    return ApiKeyRead.model_validate(key)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key at once (repeating it is harmless)",
               responses=error_responses(*AUTH_ERRORS, *NOT_FOUND))
async def revoke_api_key(key_id: str, request: Request, uow: UoWDep, actor: Scoped("api_keys:write")) -> Response:
    key = await auth_service.access_api_key(session=uow.session, tenant_id=actor.tenant_id, key_id=key_id)
    await auth_actions.do_revoke_api_key(uow, actor=actor, key=key, ip=client_ip(request))
    await uow.commit()
    return Response(status_code=204)
