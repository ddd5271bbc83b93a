"""Driving the persistent engine directly (actions + a simulated clock) on a database of the test's own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from kefu.core.clock import utcnow
from kefu.routing import actions as routing_actions
from kefu.routing import service as routing_service
from kefu.routing.models import Offer, Task
from kefu.routing.schemas import AgentProfileUpdate, Capacities, QueueCreate, TargetIn, WorkflowCreate
from kefu.runtime import Runtime
from tests.factories import TenantFixture, create_user


class Engine:
    """One tenant's routing, driven step by step; ``now`` is a simulated clock the test advances."""

    def __init__(self, runtime: Runtime, tenant: TenantFixture) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.now: datetime = utcnow()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def run(self, fn):  # type: ignore[no-untyped-def]
        """Run ``fn(uow)`` in one unit of work and commit it."""
        uow = self.runtime.unit_of_work()
        try:
            result = await fn(uow)
            await uow.commit()
            return result
        finally:
            await uow.session.close()

    async def read(self, fn):  # type: ignore[no-untyped-def]
        async with self.runtime.sessionmaker() as session:
            return await fn(session)

    async def agent(self, *, chat: int = 1, presence: str = "available", user_id: str | None = None,
                    **profile: Any) -> str:
        user_id = user_id or (await create_user(self.runtime, self.tenant.id, "agent")).id

        async def go(uow):  # type: ignore[no-untyped-def]
            data = AgentProfileUpdate(capacities=Capacities(chat=chat), languages=["zh"], **profile)
            found, _ = await routing_actions.do_upsert_agent(uow, tenant_id=self.tenant.id, agent_id=user_id, data=data)
            await routing_actions.do_set_presence(uow, profile=found, presence=presence)

        await self.run(go)
        return user_id

    async def presence(self, agent_id: str, presence: str, reason: str | None = None) -> None:
        async def go(uow):  # type: ignore[no-untyped-def]
            profile = await routing_service.access_agent(session=uow.session, tenant_id=self.tenant.id,
                                                         agent_id=agent_id)
            await routing_actions.do_set_presence(uow, profile=profile, presence=presence, reason=reason)

        await self.run(go)

    async def queue(self, **fields: Any) -> str:
        data = QueueCreate(name=fields.pop("name", "queue"), **fields)
        return (await self.run(lambda uow: routing_actions.do_create_queue(uow, tenant_id=self.tenant.id, data=data))).id

    async def workflow(self, *targets: dict[str, Any], filters: list[dict[str, Any]] | None = None,
                       sticky_seconds: int = 0) -> str:
        data = WorkflowCreate(name="wf", is_default=True, sticky_seconds=sticky_seconds, filters=filters or [],
                              default_targets=[TargetIn(**t) for t in targets])
        return (await self.run(lambda uow: routing_actions.do_create_workflow(
            uow, tenant_id=self.tenant.id, data=data))).id

    async def task(self, *, priority: int = 0, **attributes: Any) -> str:
        created = self.now
        return (await self.run(lambda uow: routing_actions.do_create_task(
            uow, tenant_id=self.tenant.id, priority=priority, attributes=attributes, now=created))).id

    async def route(self) -> int:
        return await self.run(lambda uow: routing_actions.route_tenant(uow, tenant_id=self.tenant.id, now=self.now))

    async def offers(self, status: str | None = "pending") -> list[Offer]:
        async def go(session):  # type: ignore[no-untyped-def]
            query = select(Offer).where(Offer.tenant_id == self.tenant.id).order_by(Offer.created_at, Offer.id)
            if status:
                query = query.where(Offer.status == status)
            return list((await session.scalars(query)).all())

        return await self.read(go)

    async def offer_of(self, task_id: str) -> Offer:
        [offer] = [o for o in await self.offers() if o.task_id == task_id]
        return offer

    async def get_task(self, task_id: str) -> Task:
        return await self.read(lambda s: s.get(Task, task_id))

    async def accept(self, offer: Offer, agent_id: str | None = None) -> Task:
        async def go(uow):  # type: ignore[no-untyped-def]
            found = await uow.session.get(Offer, offer.id)
            return await routing_actions.do_accept_offer(uow, offer=found, agent_id=agent_id or offer.agent_id,
                                                         now=self.now)

        return await self.run(go)

    async def reject(self, offer: Offer, agent_id: str | None = None) -> Task:
        async def go(uow):  # type: ignore[no-untyped-def]
            found = await uow.session.get(Offer, offer.id)
            return await routing_actions.do_reject_offer(uow, offer=found, agent_id=agent_id or offer.agent_id,
                                                         now=self.now)

        return await self.run(go)

    async def release(self, task_id: str, reason: str = "resolved") -> Task:
        async def go(uow):  # type: ignore[no-untyped-def]
            found = await uow.session.get(Task, task_id)
            return await routing_actions.do_release_task(uow, task=found, reason=reason, now=self.now)

        return await self.run(go)

    async def transfer(self, task_id: str, *, queue_id: str | None = None, agent_id: str | None = None) -> Task:
        async def go(uow):  # type: ignore[no-untyped-def]
            found = await uow.session.get(Task, task_id)
            return await routing_actions.do_transfer_task(uow, task=found, queue_id=queue_id, agent_id=agent_id)

        return await self.run(go)

    async def loads(self) -> dict[str, dict[str, int]]:
        return await self.read(lambda s: routing_service.agent_loads(session=s, tenant_id=self.tenant.id))
