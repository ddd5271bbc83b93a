"""Reads of the routing domain; ``access_*`` load one object for a caller (other tenants' ids are "not found").

Also builds the plain views the pure decision code (``policies``) works on, and the live queue statistics.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.auth import service as auth_service
from kefu.core.clock import isoformat, utcnow
from kefu.core.db import get_scoped
from kefu.core.errors import NotFound
from kefu.routing import policies
from kefu.routing.models import AgentProfile, Offer, Queue, Task, Workflow
from kefu.routing.schemas import (
    AgentLoad,
    AgentProfileRead,
    OfferRead,
    QueueRead,
    QueueStats,
    StatsRead,
    TaskRead,
    WorkflowRead,
)

LIVE = ("waiting", "offered", "assigned")
LOADED = ("offered", "assigned", "wrapping")  # statuses that occupy an agent's capacity


async def access_user_for_agent(*, session: AsyncSession, tenant_id: str, agent_id: str) -> Any:
    """The user behind an agent id (agent ids are user ids), or ``agent_not_found``."""
    try:
        return await auth_service.access_user(session=session, tenant_id=tenant_id, user_id=agent_id)
    except NotFound:
        raise NotFound("agent_not_found") from None


async def access_agent(*, session: AsyncSession, tenant_id: str, agent_id: str) -> AgentProfile:
    return await get_scoped(session, AgentProfile, agent_id, tenant_id=tenant_id, code="agent_not_found", prefix="usr")


async def access_queue(*, session: AsyncSession, tenant_id: str, queue_id: str) -> Queue:
    return await get_scoped(session, Queue, queue_id, tenant_id=tenant_id, code="queue_not_found", prefix="que")


async def access_workflow(*, session: AsyncSession, tenant_id: str, workflow_id: str) -> Workflow:
    return await get_scoped(session, Workflow, workflow_id, tenant_id=tenant_id, code="workflow_not_found", prefix="wf")


async def access_task(*, session: AsyncSession, tenant_id: str, task_id: str) -> Task:
    return await get_scoped(session, Task, task_id, tenant_id=tenant_id, code="task_not_found", prefix="tsk")


async def access_offer(*, session: AsyncSession, tenant_id: str, offer_id: str) -> Offer:
    return await get_scoped(session, Offer, offer_id, tenant_id=tenant_id, code="offer_not_found", prefix="off")


async def live_task_of(*, session: AsyncSession, tenant_id: str, conversation_id: str,
                       lock: bool = False) -> Task | None:
    """The live task of one of the tenant's conversations, if any. ``lock``: take its row lock (PostgreSQL
    ``FOR UPDATE``) and reload it, for a write that must decide on the current row."""
    query = select(Task).where(Task.tenant_id == tenant_id, Task.live_conversation_id == conversation_id)
    if lock and session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(query)).first()


async def list_agents(*, session: AsyncSession, tenant_id: str, after_id: str | None, limit: int,
                      presence: str | None = None) -> list[AgentProfile]:
    query = select(AgentProfile).where(AgentProfile.tenant_id == tenant_id)
    if presence:
        query = query.where(AgentProfile.presence == presence)
    if after_id:
        query = query.where(AgentProfile.user_id > after_id)
    return list((await session.scalars(query.order_by(AgentProfile.user_id).limit(limit))).all())


async def agent_loads(*, session: AsyncSession, tenant_id: str,
                      agent_ids: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Tasks occupying each agent per channel (offered, assigned or in wrap-up)."""
    query = (select(Task.agent_id, Task.channel, func.count())
             .where(Task.tenant_id == tenant_id, Task.status.in_(LOADED), Task.agent_id.is_not(None))
             .group_by(Task.agent_id, Task.channel))
    if agent_ids is not None:
        query = query.where(Task.agent_id.in_(agent_ids))
    loads: dict[str, dict[str, int]] = {}
    for agent_id, channel, count in (await session.execute(query)).all():
        loads.setdefault(agent_id, {})[channel] = count
    return loads


def agent_read(profile: AgentProfile, load: dict[str, int] | None = None) -> AgentProfileRead:
    return AgentProfileRead(
        agent_id=profile.user_id, skills=profile.skills, languages=profile.languages, groups=profile.groups,
        vip=profile.vip, attributes=profile.attributes, capacities=profile.capacities, presence=profile.presence,
        presence_reason=profile.presence_reason, presence_since=profile.presence_since,
        last_offered_at=profile.last_offered_at, load=AgentLoad(**(load or {})), version=profile.version,
        created_at=profile.created_at, updated_at=profile.updated_at)


async def agent_reads(*, session: AsyncSession, tenant_id: str, profiles: list[AgentProfile]) -> list[AgentProfileRead]:
    loads = await agent_loads(session=session, tenant_id=tenant_id, agent_ids=[p.user_id for p in profiles])
    return [agent_read(p, loads.get(p.user_id)) for p in profiles]


async def list_queues(*, session: AsyncSession, tenant_id: str, after_id: str | None, limit: int) -> list[Queue]:
    query = select(Queue).where(Queue.tenant_id == tenant_id)
    if after_id:
        query = query.where(Queue.id > after_id)
    return list((await session.scalars(query.order_by(Queue.id).limit(limit))).all())


async def list_workflows(*, session: AsyncSession, tenant_id: str, after_id: str | None, limit: int) -> list[Workflow]:
    query = select(Workflow).where(Workflow.tenant_id == tenant_id)
    if after_id:
        query = query.where(Workflow.id > after_id)
    return list((await session.scalars(query.order_by(Workflow.id).limit(limit))).all())


async def list_tasks(*, session: AsyncSession, tenant_id: str, status: str | None, queue_id: str | None,
                     conversation_id: str | None, after_id: str | None, limit: int) -> list[Task]:
    query = select(Task).where(Task.tenant_id == tenant_id)
    if status:
        query = query.where(Task.status == status)
    if queue_id:
        query = query.where(Task.queue_id == queue_id)
    if conversation_id:
        query = query.where(Task.conversation_id == conversation_id)
    if after_id:
        query = query.where(Task.id > after_id)
    return list((await session.scalars(query.order_by(Task.id).limit(limit))).all())


async def list_offers(*, session: AsyncSession, tenant_id: str, agent_id: str | None, status: str | None,
                      task_id: str | None, after_id: str | None, limit: int) -> list[Offer]:
    query = select(Offer).where(Offer.tenant_id == tenant_id)
    if agent_id:
        query = query.where(Offer.agent_id == agent_id)
    if status:
        query = query.where(Offer.status == status)
    if task_id:
        query = query.where(Offer.task_id == task_id)
    if after_id:
        query = query.where(Offer.id > after_id)
    return list((await session.scalars(query.order_by(Offer.id).limit(limit))).all())


def queue_read(queue: Queue) -> QueueRead:
    return QueueRead.model_validate(queue)


def workflow_read(workflow: Workflow) -> WorkflowRead:
    return WorkflowRead.model_validate(workflow)


def task_read(task: Task) -> TaskRead:
    return TaskRead.model_validate(task)


def offer_read(offer: Offer) -> OfferRead:
    return OfferRead.model_validate(offer)


# --- views for the pure decision code ----------------------------------------------------------------------

def agent_subject(row: Any) -> dict[str, Any]:
    """What expressions see of an agent: its attributes first, then the named fields (which win)."""
    return {**(row.attributes or {}), "id": row.user_id, "skills": row.skills or {},
            "languages": row.languages or [], "groups": row.groups or [], "vip": bool(row.vip)}


def capacities_of(raw: dict[str, Any] | None) -> dict[str, int]:
    merged = dict(policies.DEFAULT_CAPACITIES)
    merged.update({k: int(v) for k, v in (raw or {}).items() if k in policies.CHANNELS})
    return merged


def queue_view(queue: Any) -> policies.QueueView:
    return policies.QueueView(queue.id, queue.target_expression, float(queue.offer_timeout_seconds),
                              bool(queue.auto_accept))


def target_view(raw: dict[str, Any]) -> policies.Target:
    return policies.Target(queue_id=raw.get("queue_id"), workflow_id=raw.get("workflow_id"),
                           priority=raw.get("priority"), timeout_seconds=raw.get("timeout_seconds"),
                           expression=raw.get("expression"), skip_if_no_agents=bool(raw.get("skip_if_no_agents")))


def workflow_view(workflow: Any) -> policies.WorkflowView:
    filters = tuple(policies.Filter(f["name"], f["expression"], tuple(target_view(t) for t in f["targets"]))
                    for f in workflow.filters or [])
    return policies.WorkflowView(workflow.id, filters, tuple(target_view(t) for t in workflow.default_targets or []),
                                 float(workflow.sticky_seconds or 0))


async def routing_config(*, session: AsyncSession, tenant_id: str) -> tuple[
        dict[str, Queue], dict[str, policies.QueueView], dict[str, policies.WorkflowView], str | None]:
    queues = {q.id: q for q in await session.scalars(select(Queue).where(Queue.tenant_id == tenant_id))}
    workflows = list(await session.scalars(select(Workflow).where(Workflow.tenant_id == tenant_id)
                                           .order_by(Workflow.id)))
    default = next((w.id for w in workflows if w.is_default), workflows[0].id if workflows else None)
    return (queues, {q.id: queue_view(q) for q in queues.values()},
            {w.id: workflow_view(w) for w in workflows}, default)


# --- statistics --------------------------------------------------------------------------------------------

async def queue_stats(*, session: AsyncSession, tenant_id: str, window_hours: float = 24.0,
                      queue_ids: list[str] | None = None, matcher: policies.Matcher | None = None) -> StatsRead:
    """Live figures per queue: waiting, longest wait, agents, service level, abandonment, ASA over the window."""
    now = utcnow()
    since = now - timedelta(hours=window_hours)
    queues = list(await session.scalars(select(Queue).where(Queue.tenant_id == tenant_id).order_by(Queue.id)))
    if queue_ids is not None:
        queues = [q for q in queues if q.id in queue_ids]
    live = (await session.execute(
        select(Task.queue_id, Task.status, func.count(), func.min(Task.created_at))
        .where(Task.tenant_id == tenant_id, Task.status.in_(LIVE)).group_by(Task.queue_id, Task.status))).all()
    # Answered and abandoned contacts of the window, aggregated in the database (a busy day is many rows).
    ended = {row[0]: row[1:] for row in (await session.execute(
        select(Task.queue_id,
               func.count(Task.assigned_at),
               func.coalesce(func.sum(Task.wait_seconds), 0.0),
               func.sum(case((Task.wait_seconds <= Queue.sl_target_seconds, 1), else_=0)),
               func.sum(case(((Task.assigned_at.is_(None)) & (Task.end_reason == "abandoned"), 1), else_=0)))
        .join(Queue, Queue.id == Task.queue_id)
        .where(Task.tenant_id == tenant_id, Task.created_at >= since)
        .group_by(Task.queue_id))).all()}
    profiles = list(await session.scalars(select(AgentProfile).where(AgentProfile.tenant_id == tenant_id,
                                                                     AgentProfile.presence != "offline")))
    loads = await agent_loads(session=session, tenant_id=tenant_id)
    agents = {p.user_id: policies.AgentView(p.user_id, agent_subject(p), p.presence, capacities_of(p.capacities),
                                            loads.get(p.user_id, {})) for p in profiles}
    matcher = matcher or policies.Matcher()
    matcher.reset(frozenset((p.user_id, p.version) for p in profiles))  # same signature as the routing pass
    out: list[QueueStats] = []
    for queue in queues:
        counts = {status: 0 for status in LIVE}
        oldest: datetime | None = None
        for queue_id, status, count, first in live:
            if queue_id == queue.id:
                counts[status] = count
                if status == "waiting" and first is not None:
                    oldest = first
        eligible = matcher.matching(queue.target_expression, {}, agents)
        members = [a for a in agents.values() if eligible is None or a.id in eligible]
        available = sum(1 for a in members if a.presence == "available" and any(a.free(c) > 0 for c in a.capacities))
        answered, wait_total, within, abandoned = ended.get(queue.id, (0, 0.0, 0, 0))
        answered, within, abandoned = int(answered or 0), int(within or 0), int(abandoned or 0)
        # Service level: answered within the target over all answered and abandoned contacts (the strictest of
        # the usual conventions; see docs/subsystems/routing.md).
        denominator = answered + abandoned
        out.append(QueueStats(
            queue_id=queue.id, name=queue.name, waiting=counts["waiting"], offered=counts["offered"],
            assigned=counts["assigned"],
            longest_wait_seconds=round((now - oldest).total_seconds(), 3) if oldest else 0.0,
            agents_eligible=len(members), agents_available=available, agents_busy=len(members) - available,
            answered=answered, abandoned=abandoned, answered_within_target=within,
            service_level=round(within / denominator, 4) if denominator else None,
            sl_target_seconds=queue.sl_target_seconds, sl_goal_percent=queue.sl_goal_percent,
            average_speed_of_answer_seconds=round(float(wait_total) / answered, 3) if answered else None,
            window_hours=window_hours))
    return StatsRead(generated_at=isoformat(now) or "", queues=out)
