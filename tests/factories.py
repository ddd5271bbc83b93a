"""Test data built through the domain actions (never hand-written SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kefu.auth import actions as auth_actions
from kefu.channels import actions as channel_actions
from kefu.channels.schemas import InboxCreate
from kefu.runtime import Runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.schemas import TenantCreate

PASSWORD = "correct-horse-battery"


@dataclass
class UserFixture:
    id: str
    email: str
    password: str
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TenantFixture:
    id: str
    slug: str
    admin: UserFixture
    supervisor: UserFixture
    agent: UserFixture
    inbox_id: str
    inbox_secret: str


async def create_user(runtime: Runtime, tenant_id: str, role: str, *, locale: str = "en") -> UserFixture:
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.test"
    uow = runtime.unit_of_work()
    try:
        user = await auth_actions.do_create_user(uow, tenant_id=tenant_id, email=email, display_name=f"{role} {email[:12]}",
                                                 role=role, password=PASSWORD, locale=locale)
        token, _ = await auth_actions.do_open_session(uow, user=user, settings=runtime.settings)
        await uow.commit()
    finally:
        await uow.session.close()
    return UserFixture(id=user.id, email=email, password=PASSWORD, token=token, role=role)


async def create_tenant(runtime: Runtime, *, require_identity: bool = False) -> TenantFixture:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    uow = runtime.unit_of_work()
    try:
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=f"Shop {slug}"))
        inbox = await channel_actions.do_create_inbox(
            uow, tenant_id=tenant.id, data=InboxCreate(name="Web chat", require_identity=require_identity))
        await uow.commit()
    finally:
        await uow.session.close()
    admin = await create_user(runtime, tenant.id, "admin")
    supervisor = await create_user(runtime, tenant.id, "supervisor")
    agent = await create_user(runtime, tenant.id, "agent")
    return TenantFixture(id=tenant.id, slug=slug, admin=admin, supervisor=supervisor, agent=agent,
                         inbox_id=inbox.id, inbox_secret=inbox.identity_secret)
