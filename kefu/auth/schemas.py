"""Who is calling (``Principal``) and the auth, user and API key request/response shapes.

Read models list their fields explicitly, so a password or secret hash can never leak into a response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kefu.auth.policies import ROLE_SCOPES
from kefu.core.schemas import ReadModel

Role = Literal["admin", "supervisor", "agent"]
Locale = Literal["zh", "en"]

# No control characters (NUL in particular, which PostgreSQL text refuses).
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"


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
    # When the credential stops working on its own (session or key expiry); open sockets close then.
    expires_at: datetime | None = None

    @property
    def granted(self) -> frozenset[str]:
        return ROLE_SCOPES.get(self.role or "", frozenset()) if self.kind == "user" else self.scopes

    def can(self, scope: str) -> bool:
        return scope in self.granted

    @property
    def user_id(self) -> str | None:
        return self.id if self.kind == "user" else None


# --- login ---------------------------------------------------------------------------------------------

class LoginRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "agent@demo.kefu.local",
                                                                "password": "kefu-agent-demo"}]})


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: str
    user_id: str
    tenant_id: str
    role: str
    locale: str
    display_name: str


# --- users ---------------------------------------------------------------------------------------------

class UserBase(BaseModel):
    display_name: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)
    locale: Locale = "zh"


class UserCreate(UserBase):
    email: str = Field(min_length=3, max_length=254, pattern=_EMAIL)
    role: Role
    # Length rules live in the action (code password_too_short), so only an upper bound here.
    password: str = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "email": "xiaomei@shop.example", "display_name": "小美", "role": "agent",
        "password": "a-long-initial-password", "locale": "zh"}]})


class UserUpdate(BaseModel):
    """Fields left out (or null) stay as they are."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=_PRINTABLE)
    locale: Locale | None = None
    role: Role | None = None
    is_active: bool | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "supervisor"},
                                                              {"display_name": "小美 (夜班)", "locale": "en"}]})


class UserRead(ReadModel):
    id: str
    email: str
    display_name: str
    role: Role
    locale: str
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class MeRead(UserRead):
    tenant_id: str
    scopes: list[str] = Field(description="What this user's role allows, as API scopes")


class MeUpdate(BaseModel):
    """Changing the password needs the current one and signs out every other session of the user."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=_PRINTABLE)
    locale: Locale | None = None
    current_password: str | None = Field(default=None, min_length=1, max_length=1000)
    new_password: str | None = Field(default=None, min_length=1, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"locale": "en"},
        {"current_password": "correct-horse-battery", "new_password": "another-long-passphrase"}]})


# --- API keys ------------------------------------------------------------------------------------------

class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)
    # Checked against the known scopes in the action (code unknown_scope), so plain strings here.
    scopes: list[str] = Field(min_length=1, max_length=64)
    expires_at: AwareDatetime | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "ERP sync", "scopes": ["contacts:read", "conversations:read"],
        "expires_at": "2027-01-01T00:00:00Z"}]})


class ApiKeyRead(ReadModel):
    id: str
    name: str
    scopes: list[str]
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    token: str = Field(description="The full key `kefu_<id>_<secret>`; shown only in this response")
