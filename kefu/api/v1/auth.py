"""REST routes: login, logout and the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from kefu.api.deps import CurrentPrincipal, RuntimeDep, UoWDep, bearer_token
from kefu.auth import actions as auth_actions
from kefu.core.clock import isoformat
from kefu.core.errors import Unauthenticated

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

ERRORS = {401: {"description": "invalid_credentials, account_disabled"}, 429: {"description": "login_rate_limited"}}


class LoginRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "agent@demo.kefu.local", "password": "kefu-agent-demo"}]})


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: str
    user_id: str
    tenant_id: str
    role: str
    locale: str
    display_name: str


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login", summary="Log in with email and password; returns a bearer session token",
             response_model=LoginResponse, responses=ERRORS)
async def login(body: LoginRequest, request: Request, uow: UoWDep, runtime: RuntimeDep) -> LoginResponse:
    try:
        user, token, auth_session = await auth_actions.do_login(
            uow, settings=runtime.settings, email=body.email, password=body.password, ip=client_ip(request))
    except Unauthenticated:
        await uow.commit()  # the failed attempt must be counted even though the request fails
        raise
    await uow.commit()
    return LoginResponse(token=token, expires_at=isoformat(auth_session.expires_at) or "", user_id=user.id,
                         tenant_id=user.tenant_id, role=user.role, locale=user.locale, display_name=user.display_name)


@router.post("/logout", summary="Revoke the current session token", status_code=204,
             responses={401: {"description": "invalid_token"}})
async def logout(request: Request, principal: CurrentPrincipal, uow: UoWDep) -> None:
    token = bearer_token(request)
    if principal.kind == "user" and token:
        await auth_actions.do_logout(uow, token=token)
        await uow.commit()
