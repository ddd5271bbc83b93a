"""Who is calling (``Principal``) and the auth request/response shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kefu.auth.policies import ROLE_SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request: a user (by session) or an integration (by API key)."""

    kind: Literal["user", "api_key"]
    id: str
    tenant_id: str
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    locale: str = "en"
    display_name: str = ""

    @property
    def granted(self) -> frozenset[str]:
        return ROLE_SCOPES.get(self.role or "", frozenset()) if self.kind == "user" else self.scopes

    def can(self, scope: str) -> bool:
        return scope in self.granted

    @property
    def user_id(self) -> str | None:
        return self.id if self.kind == "user" else None
