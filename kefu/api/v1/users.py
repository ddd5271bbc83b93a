"""REST routes: the users of the caller's tenant (admins manage them; everyone signed in may list them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from kefu.api.deps import IfMatch, Scoped, UoWDep, client_ip, set_etag
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.auth import actions as auth_actions
from kefu.auth import service as auth_service
from kefu.auth.schemas import Role, UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])

NOT_FOUND = ("user_not_found", "validation_error")
@router.post("", status_code=201, summary="Create a user (admin, supervisor or agent) in your tenant",
             response_model=UserRead,
             responses=error_responses(*BODY_ERRORS, *AUTH_ERRORS, "email_taken", "validation_error", "password_too_short"))
async def create_user(body: UserCreate, request: Request, uow: UoWDep, actor: Scoped("users:write")) -> UserRead:
    user = await auth_actions.do_create_user(
        uow, tenant_id=actor.tenant_id, email=body.email, display_name=body.display_name, role=body.role,
        password=body.password, locale=body.locale, actor=actor, ip=client_ip(request))
    await uow.commit()
    return auth_service.user_read(user)


@router.get("", summary="List the users of your tenant, oldest first", response_model=Page[UserRead],
            responses=error_responses(*AUTH_ERRORS, "validation_error", "invalid_cursor"))
async def list_users(
    uow: UoWDep,
    actor: Scoped("users:read"),
    limit: Limit = 50,
    cursor: Cursor = None,
    role: Role | None = None,
    is_active: bool | None = None,
) -> Page[UserRead]:
    rows = await auth_service.list_users(session=uow.session, tenant_id=actor.tenant_id,
                                         after_id=decode_cursor(cursor), limit=limit, role=role, is_active=is_active)
    return page_of([auth_service.user_read(u) for u in rows], limit)


@router.get("/{user_id}", summary="Get one user (ETag carries its version)", response_model=UserRead,
            responses=error_responses(*AUTH_ERRORS, *NOT_FOUND))
async def get_user(user_id: str, response: Response, uow: UoWDep, actor: Scoped("users:read")) -> UserRead:
    user = await auth_service.access_user(session=uow.session, tenant_id=actor.tenant_id, user_id=user_id)
    set_etag(response, user.version)
    return auth_service.user_read(user)


@router.patch("/{user_id}", summary="Change a user's name, language, role or active flag",
              description="Send `If-Match: <version>` to refuse the change when someone else changed the user "
                          "first (409 `version_conflict`, `details.current_version`). Without it the change "
                          "applies to whatever version is current.",
              response_model=UserRead,
              responses=error_responses(*BODY_ERRORS, *AUTH_ERRORS, *NOT_FOUND, "version_conflict", "last_admin", "validation_error", "invalid_if_match"))
async def update_user(user_id: str, body: UserUpdate, request: Request, response: Response, uow: UoWDep,
                      actor: Scoped("users:write"), expected: IfMatch = None) -> UserRead:
    user = await auth_service.access_user(session=uow.session, tenant_id=actor.tenant_id, user_id=user_id)
    user = await auth_actions.do_update_user(
        uow, actor=actor, user=user, display_name=body.display_name, locale=body.locale, role=body.role,
        is_active=body.is_active, expected_version=expected, ip=client_ip(request))
    await uow.commit()
    set_etag(response, user.version)
    return auth_service.user_read(user)


@router.delete("/{user_id}", status_code=204, summary="Deactivate a user and sign them out everywhere",
               responses=error_responses(*AUTH_ERRORS, *NOT_FOUND, "last_admin"))
async def deactivate_user(user_id: str, request: Request, uow: UoWDep, actor: Scoped("users:write")) -> Response:
    user = await auth_service.access_user(session=uow.session, tenant_id=actor.tenant_id, user_id=user_id)
    await auth_actions.do_deactivate_user(uow, actor=actor, user=user, ip=client_ip(request))
    await uow.commit()
    return Response(status_code=204)
