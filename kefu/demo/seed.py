"""Seeding the demo shop: a tenant with an admin, a supervisor, two agents and a web chat inbox.

Idempotent: running it again finds the existing tenant and prints the same logins.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from kefu.auth import actions as auth_actions
from kefu.auth.models import User
from kefu.bot import actions as bot_actions
from kefu.bot import service as bot_service
from kefu.bot.schemas import BotSettingsBase
from kefu.channels import actions as channel_actions
from kefu.channels.models import Inbox
from kefu.channels.schemas import InboxCreate, InboxSettings
from kefu.knowledge import demo as knowledge_demo
from kefu.routing import demo as routing_demo
from kefu.runtime import Runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants import service as tenant_service
from kefu.tenants.schemas import TenantCreate

DEMO_SLUG = "demo-shop"
DEMO_USERS = (
    ("admin@demo.kefu.local", "店长 Admin", "admin", "kefu-admin-demo"),
    ("supervisor@demo.kefu.local", "主管 Supervisor", "supervisor", "kefu-supervisor-demo"),
    ("agent@demo.kefu.local", "小美 Agent", "agent", "kefu-agent-demo"),
    ("agent2@demo.kefu.local", "小王 Agent", "agent", "kefu-agent2-demo"),
)


@dataclass
class DemoInfo:
    tenant_id: str
    inbox_id: str
    inbox_secret: str
    users: tuple[tuple[str, str, str, str], ...]
    created: bool


async def seed_demo(runtime: Runtime) -> DemoInfo:
    uow = runtime.unit_of_work()
    try:
        tenant = await tenant_service.get_by_slug(session=uow.session, slug=DEMO_SLUG)
        created = tenant is None
        if tenant is None:
            tenant = await tenant_actions.do_create_tenant(
                uow, data=TenantCreate(slug=DEMO_SLUG, name="Kefu 演示商城 Demo Shop", default_locale="zh"))
            await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(
                name="演示商城在线客服 Demo shop chat",
                settings=InboxSettings(greeting_zh="您好，欢迎光临 Kefu 演示商城！请问有什么可以帮您？",
                                       greeting_en="Hi, welcome to the Kefu demo shop! How can we help?")))
            for email, name, role, password in DEMO_USERS:
                await auth_actions.do_create_user(uow, tenant_id=tenant.id, email=email, display_name=name,
                                                  role=role, password=password, locale="zh")
        else:
            existing = set((await uow.session.scalars(select(User.email).where(User.tenant_id == tenant.id))).all())
            for email, name, role, password in DEMO_USERS:
                if email not in existing:
                    await auth_actions.do_create_user(uow, tenant_id=tenant.id, email=email, display_name=name,
                                                      role=role, password=password, locale="zh")
        inbox = (await uow.session.scalars(
            select(Inbox).where(Inbox.tenant_id == tenant.id).order_by(Inbox.id).limit(1))).one()
        # The demo chat starts with the bot (once; an admin who switches it off later is not overruled).
        _, bot_settings = await bot_service.access_settings(session=uow.session, tenant_id=tenant.id,
                                                            inbox_id=inbox.id)
        if bot_settings is None:
            await bot_actions.do_update_settings(uow, tenant_id=tenant.id, inbox_id=inbox.id, row=None,
                                                 data=BotSettingsBase(enabled=True, default_language="zh"),
                                                 expected_version=None)
        await knowledge_demo.seed_demo_kb(uow, tenant_id=tenant.id)
        await routing_demo.seed_routing(uow, tenant_id=tenant.id)
        await uow.commit()
    finally:
        await uow.session.close()
    from kefu.integrations.commerce.demo_shop import seed_demo_customers

    await seed_demo_customers(runtime, tenant.id)  # the demo shop's first customers as contacts (idempotent)
    return DemoInfo(tenant.id, inbox.id, inbox.identity_secret, DEMO_USERS, created)
