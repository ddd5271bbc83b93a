"""Annotated dependencies shared by every route: runtime, unit of work, caller, scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from kefu.auth import service as auth_service
from kefu.auth.schemas import Principal
from kefu.core.errors import Forbidden, Unauthenticated, ValidationFailed
from kefu.events.uow import UnitOfWork
from kefu.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    """One unit of work per request; routes commit it explicitly before answering (durability rule)."""
    uow = runtime.unit_of_work()
    try:
        yield uow
    finally:
        await uow.session.close()


# Closed when the route returns, before the response is sent: a route that only read still has its transaction
# open, which on SQLite holds the write lock (``BEGIN IMMEDIATE``), and the Idempotency-Key middleware stores the
# answer from its own session while the response is being sent. With the default (request) scope that store
# waited for a lock its own request held, for the whole busy timeout.
UoWDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def get_principal(request: Request, runtime: RuntimeDep) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("unauthenticated")
    async with runtime.sessionmaker() as session:
        principal = await auth_service.authenticate(session=session, token=token)
        await session.commit()
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[..., Principal]:
    """Dependency: the caller must hold ``scope`` (users through their role, API keys directly)."""

    async def _check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(scope):
            if principal.kind == "api_key":
                raise Forbidden("insufficient_scope", scope=scope)
            raise Forbidden("forbidden")
        return principal

    return _check


def Scoped(scope: str) -> type[Principal]:  # noqa: N802 - reads like a type in signatures
    """``actor: Scoped("conversations:write")`` in a route signature."""
    return Annotated[Principal, Depends(require(scope))]  # type: ignore[return-value]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def if_match_version(
    if_match: Annotated[str | None, Header(description='Expected version, e.g. `"3"`; stale → 409 version_conflict',
                                           max_length=40)] = None,
) -> int | None:
    """Parse ``If-Match: "3"`` (also ``3`` and ``W/"3"``); absent or ``*`` means "whatever is current"."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value in ("", "*"):
        return None
    value = value.removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 12:
        raise ValidationFailed("invalid_if_match", details={"header": "If-Match"})
    return int(value)


IfMatch = Annotated[int | None, Depends(if_match_version)]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'
