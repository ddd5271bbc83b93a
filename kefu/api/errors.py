"""DomainError and framework errors → ``{"error": {code, message, details, request_id}}`` in zh/en."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from kefu.core.errors import DomainError
from kefu.core.i18n import negotiate, translate
from kefu.core.logging import request_id_var

log = logging.getLogger("kefu.api")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str | None


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


# HTTP status of each documented error code (DomainError classes carry the same statuses at run time).
STATUS_OF: dict[str, int] = {
    "malformed_json": 400, "invalid_encoding": 400, "invalid_idempotency_key": 400,
    "unauthenticated": 401, "invalid_token": 401, "invalid_credentials": 401, "account_disabled": 401,
    "invalid_visitor_token": 401, "invalid_identity_token": 401, "identity_token_expired": 401,
    "identity_token_replayed": 401,
    "forbidden": 403, "insufficient_scope": 403, "identity_verification_required": 403, "user_token_required": 403,
    "not_found": 404, "conversation_not_found": 404, "contact_not_found": 404, "inbox_not_found": 404,
    "merge_not_found": 404, "message_not_found": 404, "identity_not_found": 404, "user_not_found": 404, "api_key_not_found": 404,
    "version_conflict": 409, "invalid_status_transition": 409, "conversation_closed": 409, "identity_taken": 409,
    "contact_merged": 409, "merge_already_reverted": 409, "idempotency_in_progress": 409,
    "idempotency_replay_unavailable": 409, "email_taken": 409, "last_admin": 409,
    "payload_too_large": 413,
    "validation_error": 422, "invalid_cursor": 422, "invalid_if_match": 422, "invalid_assignee": 422,
    "empty_message": 422, "invalid_tag": 422, "merge_same_contact": 422, "idempotency_key_reused": 422,
    "password_too_short": 422, "current_password_required": 422, "current_password_incorrect": 422,
    "unknown_scope": 422, "expires_at_in_past": 422,
    "login_rate_limited": 429, "rate_limited": 429,
    # bot
    "bot_flow_not_found": 404, "bot_handoff_not_found": 404, "bot_flow_exists": 409, "bot_flow_invalid": 422,
    # commerce (orders)
    "order_not_found": 404, "connector_not_found": 404, "order_line_not_found": 404,
    "invalid_webhook_signature": 401,
    "order_already_shipped": 409, "order_closed": 409, "order_not_refundable": 409, "refund_exceeds_paid": 409,
    "return_not_eligible": 409, "price_protection_not_eligible": 409, "price_already_protected": 409,
    "order_action_in_progress": 409, "order_action_refused": 409, "webhook_in_progress": 409,
    "unknown_order_line": 422, "invalid_quantity": 422, "currency_mismatch": 422, "lookup_key_required": 422,
    "unknown_lookup_field": 422, "unknown_format": 422, "invalid_order_payload": 422,
    "invalid_webhook_payload": 422, "invalid_connector_config": 422,
    "order_system_unavailable": 503,
    # language understanding
    "nlu_intent_not_found": 404, "nlu_example_not_found": 404, "nlu_pattern_not_found": 404,
    "nlu_intent_exists": 409, "nlu_pattern_exists": 409, "nlu_reserved_intent": 422, "nlu_unknown_intent": 422,
    "nlu_invalid_pattern": 422, "nlu_too_many_examples": 422, "nlu_training_in_progress": 409,
    # knowledge base
    "kb_entry_not_found": 404, "kb_answer_not_found": 404, "kb_entry_key_taken": 409,
    "kb_invalid_transition": 409, "kb_invalid_validity": 422, "kb_import_too_large": 413, "kb_choice_not_offered": 422,
    # routing (ACD)
    "agent_not_found": 404, "queue_not_found": 404, "workflow_not_found": 404, "task_not_found": 404,
    "offer_not_found": 404, "offer_not_yours": 403, "offer_expired": 409, "offer_not_pending": 409,
    "task_not_active": 409, "invalid_expression": 422, "workflow_empty": 422, "workflow_cycle": 422,
    "invalid_target": 422, "invalid_transfer": 422,
    # workspace: attachments, CSAT, canned responses
    "attachment_not_found": 404, "csat_not_found": 404, "canned_response_not_found": 404,
    "conversation_not_resolved": 409, "csat_disabled": 409, "csat_locked": 409, "canned_shortcut_taken": 409,
    "attachment_too_large": 413, "attachment_quota_exceeded": 413, "unsupported_attachment_type": 415,
    "empty_attachment": 422, "invalid_attachment": 422, "canned_body_required": 422, "invalid_shortcut": 422,
    "unknown_disposition": 422, "disposition_not_allowed": 422, "invalid_disposition_code": 422,
    "disposition_not_found": 404, "disposition_code_taken": 409,
}
# Every authenticated route can answer these.
AUTH_ERRORS = ("unauthenticated", "invalid_token", "forbidden", "insufficient_scope")
# Every route with a JSON body can answer these (checked before routing).
BODY_ERRORS = ("malformed_json", "invalid_encoding", "invalid_idempotency_key", "payload_too_large")


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these error codes (plus ``validation_error``), grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, "validation_error"):
        found = by_status.setdefault(STATUS_OF[code], [])
        if code not in found:
            found.append(code)
    return {status: {"description": ", ".join(found), "model": ErrorResponse}
            for status, found in sorted(by_status.items())}


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
