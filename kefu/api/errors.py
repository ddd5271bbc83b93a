"""DomainError and framework errors → ``{"error": {code, message, details, request_id}}`` in zh/en."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kefu.core.errors import DomainError
from kefu.core.i18n import negotiate, translate
from kefu.core.logging import request_id_var

log = logging.getLogger("kefu.api")


def request_locale(request: Request) -> str:
    """Accept-Language first, then the signed-in user's setting, then the deployment default."""
    header = request.headers.get("accept-language")
    principal = getattr(request.state, "principal", None)
    default = getattr(principal, "locale", None) or request.app.state.runtime.settings.default_locale
    return negotiate(header, default) if header else default


def error_body(code: str, lang: str, *, details: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": translate(code, lang, **params),
            "details": details or {},
            "request_id": request_id_var.get(),
        }
    }


def error_response(request: Request, status: int, code: str, *, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None, **params: Any) -> JSONResponse:
    return JSONResponse(error_body(code, request_locale(request), details=details, **params), status_code=status,
                          headers=headers)


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Echoing the offending input could leak PII into responses and logs; keep location and reason only.
    return [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.params["retry_after"])} if "retry_after" in exc.params else None
        return error_response(request, exc.status, exc.code, details=exc.details, headers=headers, **exc.params)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(request, 400, "malformed_json")
        return error_response(request, 422, "validation_error", details={"errors": _clean_validation_errors(errors)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "route_not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden",
                413: "payload_too_large", 415: "unsupported_media_type"}.get(exc.status_code)
        if code is None:
            code = "malformed_json" if exc.status_code == 400 else "error"
        limit = request.app.state.runtime.settings.max_body_bytes
        return error_response(request, exc.status_code, code, headers=getattr(exc, "headers", None), limit=limit)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(request, 500, "internal_error")
