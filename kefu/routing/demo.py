"""Routing for the demo shop: agent profiles with skills, three queues (售前, 售后, VIP) and a default workflow,
so that ``make run`` routes a chat that the bot hands over to the demo agent.

The queues auto-accept: the workspace shows the assigned conversation at once, and a demo agent who is not
watching an offer is never marked away for missing it."""

from __future__ import annotations

from sqlalchemy import select

from kefu.auth import service as auth_service
from kefu.events.uow import UnitOfWork
from kefu.routing import actions
from kefu.routing.models import Queue
from kefu.routing.schemas import AgentProfileUpdate, Capacities, FilterIn, QueueCreate, TargetIn, WorkflowCreate

# email -> (skills, groups, vip, available at start)
PROFILES = {
    "agent@demo.kefu.local": ({"presales": 2, "returns": 3, "large_appliance": 2}, ["售前", "售后"], True, True),
    "agent2@demo.kefu.local": ({"presales": 3, "returns": 1}, ["售前"], False, False),
    "supervisor@demo.kefu.local": ({"presales": 1, "returns": 2, "complaints": 3}, ["售后", "VIP"], True, False),
}
AFTER_SALES_INTENTS = ["return_exchange", "refund_status", "cancel_order", "complaint", "track_order",
                       "change_address", "price_protection", "invoice"]


async def seed_routing(uow: UnitOfWork, *, tenant_id: str) -> bool:
    """Create the demo routing once (a tenant that has queues is left alone); returns whether it did."""
    session = uow.session
    if (await session.scalars(select(Queue.id).where(Queue.tenant_id == tenant_id).limit(1))).first():
        return False
    users = {u.email: u for u in await auth_service.list_users(session=session, tenant_id=tenant_id, limit=100)}
    for email, (skills, groups, vip, available) in PROFILES.items():
        user = users.get(email)
        if user is None:
            continue
        profile, _ = await actions.do_upsert_agent(uow, tenant_id=tenant_id, agent_id=user.id, data=AgentProfileUpdate(
            skills=skills, languages=["zh", "en"], groups=groups, vip=vip, capacities=Capacities(voice=1, chat=5,
                                                                                               email=10)))
        if available:
            await actions.do_set_presence(uow, profile=profile, presence="available")
    presales = await actions.do_create_queue(uow, tenant_id=tenant_id, data=QueueCreate(
        name="售前 Pre-sales", target_expression="skills.presales >= 1", wrapup_seconds=10, auto_accept=True))
    after_sales = await actions.do_create_queue(uow, tenant_id=tenant_id, data=QueueCreate(
        name="售后 After-sales", target_expression="skills.returns >= 1 AND languages HAS task.language",
        wrapup_seconds=15, auto_accept=True))
    vip = await actions.do_create_queue(uow, tenant_id=tenant_id, data=QueueCreate(
        name="VIP 专属", target_expression="vip == true", sl_target_seconds=10, sl_goal_percent=90,
        auto_accept=True))
    await actions.do_create_workflow(uow, tenant_id=tenant_id, data=WorkflowCreate(
        name="默认路由 Default routing", is_default=True, sticky_seconds=30,
        filters=[
            FilterIn(name="VIP customers", expression="vip_level >= 3",
                     targets=[TargetIn(queue_id=vip.id, priority=10, timeout_seconds=30),
                              TargetIn(queue_id=after_sales.id, priority=10)]),
            FilterIn(name="Angry or after-sales", expression=f"emotion == 'angry' OR intent IN {AFTER_SALES_INTENTS!r}"
                     .replace('"', "'"),
                     targets=[TargetIn(queue_id=after_sales.id, timeout_seconds=60),
                              TargetIn(queue_id=presales.id)]),
        ],
        default_targets=[TargetIn(queue_id=presales.id, timeout_seconds=30), TargetIn(queue_id=after_sales.id)]))
    return True
