"""REST routes: login, logout and the signed-in user (``/auth/me``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from kefu.api.deps import CurrentPrincipal, RuntimeDep, UoWDep, bearer_token, client_ip
from kefu.api.errors import AUTH_ERRORS, BODY_ERRORS, error_responses
from kefu.auth import actions as auth_actions
from kefu.auth import service as auth_service
from kefu.auth.schemas import LoginRequest, LoginResponse, MeRead, MeUpdate, Principal
from kefu.core.clock import isoformat
from kefu.core.errors import Forbidden, Unauthenticated, ValidationFailed

if TYPE_CHECKING:
    from kefu.auth.models import User

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


async def _own_user(uow: UoWDep, principal: Principal) -> User:
    """The caller's own user row; API keys have none."""
    if principal.kind != "user":
        raise Forbidden("user_token_required")
    return await auth_service.access_user(session=uow.session, tenant_id=principal.tenant_id, user_id=principal.id)


@router.post("/login", summary="Log in with email and password; returns a bearer session token",
             response_model=LoginResponse,
             responses=error_responses(*BODY_ERRORS, "invalid_credentials", "account_disabled", "login_rate_limited", "validation_error"))
async def login(body: LoginRequest, request: Request, uow: UoWDep, runtime: RuntimeDep) -> LoginResponse:
    try:
        user, token, auth_session = await auth_actions.do_login(
            uow, settings=runtime.settings, email=body.email, password=body.password, ip=client_ip(request))
    except Unauthenticated:
        await uow.commit()  # the failed attempt (and its audit entry) must be kept even though the request fails
        raise
    await uow.commit()
    return LoginResponse(token=token, expires_at=isoformat(auth_session.expires_at) or "", user_id=user.id,
                         tenant_id=user.tenant_id, role=user.role, locale=user.locale, display_name=user.display_name)


@router.post("/logout", summary="Revoke the current session token", status_code=204,
             responses=error_responses("unauthenticated", "invalid_token"))
async def logout(request: Request, principal: CurrentPrincipal, uow: UoWDep) -> None:
    token = bearer_token(request)
    if principal.kind == "user" and token:
        await auth_actions.do_logout(uow, token=token, actor=principal, ip=client_ip(request))
        await uow.commit()


@router.get("/me", summary="The signed-in user, with the scopes their role grants", response_model=MeRead,
            responses=error_responses(*AUTH_ERRORS, "user_token_required"))
async def get_me(principal: CurrentPrincipal, uow: UoWDep) -> MeRead:
    return auth_service.me_read(await _own_user(uow, principal))


@router.patch("/me", summary="Change your display name, language or password", response_model=MeRead,
              responses=error_responses(*BODY_ERRORS, *AUTH_ERRORS, "user_token_required", "validation_error", "password_too_short", "current_password_required", "current_password_incorrect", "login_rate_limited"))
async def update_me(body: MeUpdate, request: Request, principal: CurrentPrincipal, uow: UoWDep,
                    runtime: RuntimeDep) -> MeRead:
    user = await _own_user(uow, principal)
    try:
        user = await auth_actions.do_update_own_profile(
            uow, settings=runtime.settings, actor=principal, user=user, display_name=body.display_name,
            locale=body.locale, current_password=body.current_password, new_password=body.new_password,
            current_token=bearer_token(request), ip=client_ip(request))
    except ValidationFailed as exc:
        if exc.code == "current_password_incorrect":
            await uow.commit()  # count the wrong guess towards the login rate limit
        raise
    await uow.commit()
    return auth_service.me_read(user)
