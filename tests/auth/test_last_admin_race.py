"""Two admins demoting each other at the same moment must leave one admin, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

from kefu.auth import actions as auth_actions
from kefu.auth import service as auth_service
from kefu.core.errors import Conflict
from kefu.runtime import build_runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.schemas import TenantCreate
from tests.conftest import close_runtime, make_settings


async def test_concurrent_demotions_keep_one_admin(db_url: str) -> None:
    rt = build_runtime(make_settings(db_url))
    try:
        uow = rt.unit_of_work()
        try:
            slug = f"race-{uuid.uuid4().hex[:10]}"
            tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=slug))
            admins = [await auth_actions.do_create_user(uow, tenant_id=tenant.id, email=f"{slug}-{i}@example.test",
                                                        display_name=f"admin {i}", role="admin",
                                                        password="correct-horse-battery") for i in range(2)]
            await uow.commit()
        finally:
            await uow.session.close()

        async def demote(actor_index: int) -> None:
            me, other = admins[actor_index], admins[1 - actor_index]
            uow = rt.unit_of_work()
            try:
                target = await auth_service.access_user(session=uow.session, tenant_id=tenant.id, user_id=other.id)
                await auth_actions.do_update_user(uow, actor=auth_service.principal_of(me), user=target, role="agent")
                await uow.commit()
            finally:
                await uow.session.close()

        results = await asyncio.gather(demote(0), demote(1), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 1, results
        assert isinstance(failures[0], Conflict) and failures[0].code == "last_admin"
        async with rt.sessionmaker() as session:
            assert await auth_service.count_active_admins(session=session, tenant_id=tenant.id) == 1
    finally:
        await close_runtime(rt)
