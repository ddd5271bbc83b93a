"""The DomainError hierarchy: a stable ``code`` per failure, mapped to HTTP by ``kefu.api.errors``.

Domain code raises these and never knows about HTTP; the status is a hint the web layer uses.
Messages are looked up by code in the i18n catalogue, so a code added here needs an entry there.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, code: str | None = None, *, details: dict[str, Any] | None = None, **params: Any):
        self.code = code or self.code
        self.details = details or {}
        self.params = params
        super().__init__(self.code)


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 422


class NotFound(DomainError):
    """Also used for objects of another tenant, so ids leak nothing."""

    code = "not_found"
    status = 404


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class PreconditionFailed(DomainError):
    code = "version_conflict"
    status = 409


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


def check_version(current_version: int, expected_version: int | None) -> None:
    """Refuse a change made against a stale version (``If-Match``); ``None`` means "whatever is current"."""
    if expected_version is not None and expected_version != current_version:
        raise PreconditionFailed(details={"current_version": current_version}, current_version=current_version)
