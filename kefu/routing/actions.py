"""Writes of the routing domain: configuration, presence, tasks, offers, transfers and the routing pass.

Exactly once, on every node. A task is offered only by the pass that holds its row lock (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so concurrent nodes split the waiting tasks instead of queueing on them). An
agent's capacity is consumed only after the pass has locked the chosen agents' rows (in id order, so passes
cannot deadlock) and re-read their presence and load under that lock; a decision that no longer fits is
dropped and the task waits for the next pass. SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway. Every
other change of a task or offer is a conditional UPDATE on its current status, so an accept racing an
expiry (or two accepts) has exactly one winner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.contacts import service as contact_service
from kefu.core.clock import isoformat, utcnow
from kefu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed, check_version
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork
from kefu.routing import policies, service
from kefu.routing.expressions import Expression, ExpressionError, parse
from kefu.routing.models import AgentProfile, Offer, PresenceChange, Queue, Task, Workflow
from kefu.routing.schemas import AgentProfileUpdate, QueueCreate, QueueUpdate, WorkflowCreate, WorkflowUpdate

PASS_LIMIT = 500  # waiting tasks considered per tenant per pass
MISSED_OFFER_REASON = "missed_offer"

# One Matcher per tenant and process: agents' eligibility per expression is cached across passes.
_MATCHERS: dict[str, policies.Matcher] = {}


def matcher_for(tenant_id: str) -> policies.Matcher:
    found = _MATCHERS.get(tenant_id)
    if found is None:
        if len(_MATCHERS) > 10_000:
            _MATCHERS.clear()
        found = _MATCHERS[tenant_id] = policies.Matcher()
    return found


def _epoch(dt: datetime | None) -> float:
    return dt.timestamp() if dt is not None else 0.0


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]


# --- validation --------------------------------------------------------------------------------------------

def check_expression(text: str | None, field: str, *, required: bool = False) -> Expression | None:
    """Parse an expression about to be saved; a malformed one is refused saying where it breaks."""
    if not text and not required:
        return None
    try:
        return parse(text or "")
    except ExpressionError as exc:
        raise ValidationFailed("invalid_expression", details={"field": field, "position": exc.position,
                                                              "reason": exc.reason},
                               field=field, position=exc.position) from None


async def _check_workflow(session: AsyncSession, *, tenant_id: str, workflow_id: str | None,
                          data: WorkflowCreate | WorkflowUpdate) -> None:
    if not data.filters and not data.default_targets:
        raise ValidationFailed("workflow_empty", details={"field": "default_targets"})
    queue_ids = set((await session.scalars(select(Queue.id).where(Queue.tenant_id == tenant_id))).all())
    workflows = {w.id: w for w in await session.scalars(select(Workflow).where(Workflow.tenant_id == tenant_id))}
    groups = [(f"filters[{i}]", f.targets) for i, f in enumerate(data.filters)]
    groups.append(("default_targets", data.default_targets))
    for i, item in enumerate(data.filters):
        check_expression(item.expression, f"filters[{i}].expression")
        if not item.targets:
            raise ValidationFailed("workflow_empty", details={"field": f"filters[{i}].targets"})
    refs: set[str] = set()
    for where, targets in groups:
        for j, target in enumerate(targets):
            field = f"{where}.targets[{j}]" if where != "default_targets" else f"default_targets[{j}]"
            if (target.queue_id is None) == (target.workflow_id is None):
                raise ValidationFailed("invalid_target", details={"field": field})
            if target.queue_id is not None and target.queue_id not in queue_ids:
                raise NotFound("queue_not_found", details={"field": f"{field}.queue_id", "queue_id": target.queue_id})
            if target.workflow_id is not None:
                if target.workflow_id != workflow_id and target.workflow_id not in workflows:
                    raise NotFound("workflow_not_found",
                                   details={"field": f"{field}.workflow_id", "workflow_id": target.workflow_id})
                refs.add(target.workflow_id)
            check_expression(target.expression, f"{field}.expression")
    me = workflow_id or "(new)"
    graph: dict[str, set[str]] = {
        w.id: policies.workflow_references(
            [service.target_view(t) for f in w.filters or [] for t in f["targets"]]
            + [service.target_view(t) for t in w.default_targets or []])
        for w in workflows.values()}
    graph[me] = refs
    cycle = policies.find_cycle(graph, me)
    if cycle is not None:
        raise ValidationFailed("workflow_cycle", details={"cycle": cycle})


# --- agents and presence -----------------------------------------------------------------------------------

async def do_upsert_agent(uow: UnitOfWork, *, tenant_id: str, agent_id: str, data: AgentProfileUpdate,
                          expected_version: int | None = None) -> tuple[AgentProfile, bool]:
    """Create or update the routing profile of a user; returns (profile, created)."""
    session = uow.session
    user = await service.access_user_for_agent(session=session, tenant_id=tenant_id, agent_id=agent_id)
    profile = await session.get(AgentProfile, user.id, with_for_update=_is_postgres(session))
    now = utcnow()
    created = profile is None
    if profile is None:
        profile = AgentProfile(user_id=user.id, tenant_id=tenant_id, skills={}, languages=[], groups=[], vip=False,
                               attributes={}, capacities=dict(policies.DEFAULT_CAPACITIES), presence="offline",
                               presence_since=now, version=0, created_at=now, updated_at=now)
        session.add(profile)
    else:
        check_version(profile.version, expected_version)
    for field in ("skills", "languages", "groups", "vip", "attributes"):
        value = getattr(data, field)
        if value is not None:
            setattr(profile, field, value)
    if data.capacities is not None:
        profile.capacities = data.capacities.model_dump()
    profile.version += 1  # also invalidates cached eligibility (the matcher's signature)
    profile.updated_at = now
    await session.flush()
    _emit_agent(uow, profile)
    return profile, created


def _emit_agent(uow: UnitOfWork, profile: AgentProfile) -> None:
    uow.emit(ev.ROUTING_AGENT_UPDATED, tenant_id=profile.tenant_id,
             data={"agent": {"agent_id": profile.user_id, "presence": profile.presence,
                             "presence_reason": profile.presence_reason, "version": profile.version}})


async def do_set_presence(uow: UnitOfWork, *, profile: AgentProfile, presence: str, reason: str | None = None,
                          note: str | None = None) -> AgentProfile:
    """Change an agent's presence and record it in the history (for not-ready reports)."""
    if presence not in policies.PRESENCES:
        raise ValidationFailed("validation_error", details={"field": "presence"})
    reason = reason if presence != "available" else None
    if profile.presence == presence and profile.presence_reason == reason:
        return profile
    now = utcnow()
    await uow.session.execute(update(AgentProfile).where(AgentProfile.user_id == profile.user_id)
                              .values(presence=presence, presence_reason=reason, presence_since=now, updated_at=now))
    profile.presence, profile.presence_reason, profile.presence_since, profile.updated_at = presence, reason, now, now
    uow.session.add(PresenceChange(tenant_id=profile.tenant_id, agent_id=profile.user_id, presence=presence,
                                   reason=reason, at=now, note=note))
    await uow.session.flush()
    _emit_agent(uow, profile)
    return profile


# --- queues and workflows ----------------------------------------------------------------------------------

async def do_create_queue(uow: UnitOfWork, *, tenant_id: str, data: QueueCreate) -> Queue:
    check_expression(data.target_expression, "target_expression")
    now = utcnow()
    queue = Queue(id=new_id("que"), tenant_id=tenant_id, name=data.name, target_expression=data.target_expression or None,
                  offer_timeout_seconds=data.offer_timeout_seconds, auto_accept=data.auto_accept,
                  wrapup_seconds=data.wrapup_seconds, sl_target_seconds=data.sl_target_seconds,
                  sl_goal_percent=data.sl_goal_percent, version=1, created_at=now, updated_at=now)
    uow.session.add(queue)
    await uow.session.flush()
    return queue


async def do_update_queue(uow: UnitOfWork, *, queue: Queue, data: QueueUpdate,
                          expected_version: int | None = None) -> Queue:
    check_version(queue.version, expected_version)
    changes = data.model_dump(exclude_unset=True)
    if "target_expression" in changes:
        check_expression(changes["target_expression"], "target_expression")
        changes["target_expression"] = changes["target_expression"] or None
    for field, value in changes.items():
        if value is None and field != "target_expression":
            raise ValidationFailed("validation_error", details={"field": field})
        setattr(queue, field, value)
    queue.version += 1
    queue.updated_at = utcnow()
    await uow.session.flush()
    return queue


async def _clear_other_defaults(session: AsyncSession, tenant_id: str, keep_id: str) -> None:
    await session.execute(update(Workflow).where(Workflow.tenant_id == tenant_id, Workflow.id != keep_id,
                                                 Workflow.is_default.is_(True))
                          .values(is_default=False, version=Workflow.version + 1, updated_at=utcnow()))


def _dump_targets(targets: Sequence[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True) for t in targets]


async def do_create_workflow(uow: UnitOfWork, *, tenant_id: str, data: WorkflowCreate) -> Workflow:
    await _check_workflow(uow.session, tenant_id=tenant_id, workflow_id=None, data=data)
    now = utcnow()
    workflow = Workflow(id=new_id("wf"), tenant_id=tenant_id, name=data.name, is_default=data.is_default,
                        filters=[{"name": f.name, "expression": f.expression, "targets": _dump_targets(f.targets)}
                                 for f in data.filters],
                        default_targets=_dump_targets(data.default_targets), sticky_seconds=data.sticky_seconds,
                        version=1, created_at=now, updated_at=now)
    uow.session.add(workflow)
    await uow.session.flush()
    if workflow.is_default:
        await _clear_other_defaults(uow.session, tenant_id, workflow.id)
    return workflow


async def do_update_workflow(uow: UnitOfWork, *, workflow: Workflow, data: WorkflowUpdate,
                             expected_version: int | None = None) -> Workflow:
    check_version(workflow.version, expected_version)
    await _check_workflow(uow.session, tenant_id=workflow.tenant_id, workflow_id=workflow.id, data=data)
    workflow.name = data.name
    workflow.is_default = data.is_default
    workflow.filters = [{"name": f.name, "expression": f.expression, "targets": _dump_targets(f.targets)}
                        for f in data.filters]
    workflow.default_targets = _dump_targets(data.default_targets)
    workflow.sticky_seconds = data.sticky_seconds
    workflow.version += 1
    workflow.updated_at = utcnow()
    await uow.session.flush()
    if workflow.is_default:
        await _clear_other_defaults(uow.session, workflow.tenant_id, workflow.id)
    return workflow


# --- tasks -------------------------------------------------------------------------------------------------

def _emit_task(uow: UnitOfWork, task: Task | dict[str, Any], type_: str = ev.ROUTING_TASK_UPDATED) -> None:
    get = task.get if isinstance(task, dict) else lambda k: getattr(task, k)  # type: ignore[union-attr]
    # The conversation id travels in the data only: the envelope's conversation_id marks the conversation's
    # own timeline events, which routing's bookkeeping is not part of.
    uow.emit(type_, tenant_id=get("tenant_id"),
             data={"task": {"id": get("id"), "conversation_id": get("conversation_id"), "status": get("status"),
                            "queue_id": get("queue_id"), "agent_id": get("agent_id"), "priority": get("priority"),
                            "channel": get("channel")}})


def new_task(*, tenant_id: str, channel: str, priority: int = 0, attributes: dict[str, Any] | None = None,
             conversation_id: str | None = None, contact_id: str | None = None, workflow_id: str | None = None,
             status: str = "waiting", agent_id: str | None = None, enriched: bool = False,
             now: datetime | None = None) -> Task:
    now = now or utcnow()
    return Task(id=new_id("tsk"), tenant_id=tenant_id, conversation_id=conversation_id,
                live_conversation_id=conversation_id, contact_id=contact_id, channel=channel, status=status,
                priority=priority, attributes=attributes or {}, enriched=enriched, workflow_id=workflow_id,
                agent_id=agent_id, declined={}, offer_count=0, created_at=now,
                assigned_at=now if status == "assigned" else None, wait_seconds=0.0 if status == "assigned" else None,
                version=1, updated_at=now)


def _conversation_attributes(conversation: Any) -> dict[str, Any]:
    return {"channel": policies.channel_of(conversation.channel), "conversation_channel": conversation.channel,
            "language": conversation.locale, "inbox_id": conversation.inbox_id}


def enqueue_new_conversation(uow: UnitOfWork, *, conversation: Any) -> Task:
    """Create the task of a conversation that was just started queue-owned (no query: it cannot have one yet).

    Synchronous so that batch writers (widget group commit) can call it per conversation; contact details
    (VIP level, the agent who served them last) are added by the routing pass, off the chat hot path. No
    event of its own: the conversation's ``conversation.created`` already wakes the routing loops (one
    outbox row less per new chat).
    """
    task = new_task(tenant_id=conversation.tenant_id, channel=policies.channel_of(conversation.channel),
                    priority=conversation.priority or 0, attributes=_conversation_attributes(conversation),
                    conversation_id=conversation.id, contact_id=conversation.contact_id)
    uow.session.add(task)
    return task


async def do_enqueue_conversation(uow: UnitOfWork, *, conversation: Any) -> Task:
    """Make sure a queue-owned conversation has a live task (a conversation never gets a second one)."""
    existing = await service.live_task_of(session=uow.session, conversation_id=conversation.id)
    if existing is not None:
        return existing
    task = enqueue_new_conversation(uow, conversation=conversation)
    await uow.session.flush()
    _emit_task(uow, task, ev.ROUTING_TASK_CREATED)
    return task


async def do_create_task(uow: UnitOfWork, *, tenant_id: str, channel: str = "chat", priority: int = 0,
                         attributes: dict[str, Any] | None = None, workflow_id: str | None = None,
                         now: datetime | None = None) -> Task:
    """Create a task that is not a conversation (a ticket or call handed over by an integration)."""
    task = new_task(tenant_id=tenant_id, channel=channel, priority=priority, attributes=attributes,
                    workflow_id=workflow_id, enriched=True, now=now)
    task.live_conversation_id = None
    uow.session.add(task)
    _emit_task(uow, task, ev.ROUTING_TASK_CREATED)
    await uow.session.flush()
    return task


async def _cancel_pending_offers(uow: UnitOfWork, task: Task, now: datetime) -> None:
    offers = list(await uow.session.scalars(select(Offer).where(Offer.task_id == task.id, Offer.status == "pending")))
    for offer in offers:
        offer.status = "canceled"
        offer.responded_at = now
        _emit_offer(uow, offer, task.conversation_id)


def _end(task: Task, *, status: str, reason: str, now: datetime) -> None:
    task.status = status
    task.end_reason = reason
    task.ended_at = now
    task.live_conversation_id = None
    task.version += 1
    task.updated_at = now


async def do_release_task(uow: UnitOfWork, *, task: Task, reason: str, now: datetime | None = None) -> Task:
    """End a task: unanswered → canceled (``abandoned`` if the customer's conversation ended), answered →
    wrap-up for the queue's ``wrapup_seconds`` (the capacity stays taken), then completed."""
    now = now or utcnow()
    if task.status in ("waiting", "offered"):
        await _cancel_pending_offers(uow, task, now)
        _end(task, status="canceled", reason="abandoned" if reason in ("resolved", "closed") else reason, now=now)
    elif task.status == "assigned":
        queue = await uow.session.get(Queue, task.queue_id) if task.queue_id else None
        wrapup = queue.wrapup_seconds if queue is not None else 0
        if wrapup > 0:
            _end(task, status="wrapping", reason=reason, now=now)
            task.wrapup_until = now + timedelta(seconds=wrapup)
        else:
            _end(task, status="completed", reason=reason, now=now)
    else:
        return task
    await uow.session.flush()
    _emit_task(uow, task)
    return task


async def _assign_directly(uow: UnitOfWork, task: Task, agent_id: str) -> None:
    now = utcnow()
    await _cancel_pending_offers(uow, task, now)
    task.status = "assigned"
    task.agent_id = agent_id
    if task.assigned_at is None:
        task.assigned_at = now
        task.wait_seconds = max(0.0, (now - task.created_at).total_seconds())
    task.pinned_agent_id = None
    task.version += 1
    task.updated_at = now
    await uow.session.flush()
    _emit_task(uow, task)


async def do_sync_conversation(uow: UnitOfWork, *, conversation: Any) -> Task | None:
    """Bring the conversation's task in line with who owns the conversation now.

    Called explicitly by the conversation actions after a change of status, owner or assignee: a queue-owned
    open conversation has a waiting task; an agent-owned one has a task assigned to that agent (a manual
    assignment counts against capacity too); a resolved or closed one releases its task; a bot-owned one
    has none.
    """
    session = uow.session
    task = await service.live_task_of(session=session, conversation_id=conversation.id)
    if conversation.status in ("resolved", "closed"):
        if task is not None:
            await do_release_task(uow, task=task, reason=conversation.status)
        return task
    if conversation.owner_kind == "agent" and conversation.assignee_id:
        if task is None:
            task = new_task(tenant_id=conversation.tenant_id, channel=policies.channel_of(conversation.channel),
                            priority=conversation.priority or 0, attributes=_conversation_attributes(conversation),
                            conversation_id=conversation.id, contact_id=conversation.contact_id, status="assigned",
                            agent_id=conversation.assignee_id, enriched=True)
            session.add(task)
            await session.flush()
            _emit_task(uow, task, ev.ROUTING_TASK_CREATED)
        elif task.status != "assigned" or task.agent_id != conversation.assignee_id:
            await _assign_directly(uow, task, conversation.assignee_id)
        return task
    if conversation.owner_kind == "queue":
        if task is None:
            return await do_enqueue_conversation(uow, conversation=conversation)
        if task.status == "waiting" and task.priority != (conversation.priority or 0):
            task.priority = conversation.priority or 0  # e.g. a bot handoff of an angry customer jumps ahead
            task.version += 1
            await session.flush()
            _emit_task(uow, task)
        return task
    if conversation.owner_kind == "bot" and task is not None:
        await do_release_task(uow, task=task, reason="bot")
    return task


async def do_sync_conversations(uow: UnitOfWork, *, conversations: Sequence[Any]) -> None:
    for conversation in conversations:
        await do_sync_conversation(uow, conversation=conversation)


async def do_update_task(uow: UnitOfWork, *, task: Task, attributes: dict[str, Any] | None = None,
                         priority: int | None = None, expected_version: int | None = None) -> Task:
    """Merge attributes into a task (e.g. the bot's intent and emotion) or change its priority; the next pass
    routes it by the new values."""
    check_version(task.version, expected_version)
    if task.status not in service.LIVE:
        raise Conflict("task_not_active", details={"status": task.status}, state=task.status)
    if attributes:
        task.attributes = {**(task.attributes or {}), **attributes}
    if priority is not None:
        task.priority = priority
    task.version += 1
    task.updated_at = utcnow()
    await uow.session.flush()
    _emit_task(uow, task)
    return task


async def do_update_conversation_task(uow: UnitOfWork, *, conversation_id: str,
                                      attributes: dict[str, Any]) -> Task | None:
    """For other domains (the bot's handoff): add routing attributes to a conversation's live task, if any."""
    task = await service.live_task_of(session=uow.session, conversation_id=conversation_id)
    if task is None or task.status not in service.LIVE:
        return None
    return await do_update_task(uow, task=task, attributes=attributes)


async def do_transfer_task(uow: UnitOfWork, *, task: Task, queue_id: str | None, agent_id: str | None,
                           default_locale: str = "en") -> Task:
    """Move a live task to another queue, or offer it to one agent; the conversation goes back to waiting."""
    session = uow.session
    if (queue_id is None) == (agent_id is None):
        raise ValidationFailed("invalid_transfer", details={"fields": ["queue_id", "agent_id"]})
    if task.status not in service.LIVE:
        raise Conflict("task_not_active", details={"status": task.status}, state=task.status)
    if queue_id is not None:
        await service.access_queue(session=session, tenant_id=task.tenant_id, queue_id=queue_id)
    if agent_id is not None:
        await service.access_agent(session=session, tenant_id=task.tenant_id, agent_id=agent_id)
    now = utcnow()
    await _cancel_pending_offers(uow, task, now)
    task.status = "waiting"
    task.agent_id = None
    task.assigned_at = None
    task.pinned_queue_id = queue_id or task.pinned_queue_id
    task.pinned_agent_id = agent_id
    if queue_id is not None:
        task.queue_id = queue_id
        task.step = None
    task.version += 1
    task.updated_at = now
    await session.flush()
    _emit_task(uow, task)
    if task.conversation_id is not None:
        from kefu.conversations import actions as conversation_actions
        from kefu.conversations import service as conversation_service

        conversation = await conversation_service.access_conversation(
            session=session, tenant_id=task.tenant_id, conversation_id=task.conversation_id)
        if conversation.assignee_id is not None or conversation.owner_kind != "queue":
            await conversation_actions.do_update_conversation(
                uow, conversation=conversation, changes={"assignee_id": None}, default_locale=default_locale)
    return task


# --- offers ------------------------------------------------------------------------------------------------

def _offer_data(offer: Offer | dict[str, Any], conversation_id: str | None) -> dict[str, Any]:
    get = offer.get if isinstance(offer, dict) else lambda k: getattr(offer, k)  # type: ignore[union-attr]
    return {"offer": {"id": get("id"), "task_id": get("task_id"), "agent_id": get("agent_id"),
                      "queue_id": get("queue_id"), "status": get("status"),
                      "created_at": isoformat(get("created_at")), "expires_at": isoformat(get("expires_at"))},
            # The agent WebSocket receives every event of the tenant: clients show an offer only to this user.
            "agent_id": get("agent_id"), "conversation_id": conversation_id}


def _emit_offer(uow: UnitOfWork, offer: Offer | dict[str, Any], conversation_id: str | None,
                type_: str = ev.ROUTING_OFFER_UPDATED) -> None:
    tenant_id = offer["tenant_id"] if isinstance(offer, dict) else offer.tenant_id
    uow.emit(type_, tenant_id=tenant_id, data=_offer_data(offer, conversation_id))  # see _emit_task


async def do_accept_offer(uow: UnitOfWork, *, offer: Offer, agent_id: str | None, default_locale: str = "en",
                          now: datetime | None = None, force: bool = False) -> Task:
    """Accept an offer: the task is assigned and its conversation given to the agent.

    Only the offered agent may accept (``force`` is the auto-accept path of the routing pass).
    """
    session = uow.session
    now = now or utcnow()
    if not force and offer.agent_id != agent_id:
        raise Forbidden("offer_not_yours")
    if offer.status != "pending":
        raise Conflict("offer_not_pending", details={"status": offer.status}, state=offer.status)
    if offer.expires_at <= now:
        raise Conflict("offer_expired", details={"expires_at": offer.expires_at.isoformat()})
    won = await session.execute(update(Offer).where(Offer.id == offer.id, Offer.status == "pending")
                                .values(status="accepted", responded_at=now))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("offer_not_pending", details={"status": "changed"}, state="changed")
    created_at = await session.scalar(select(Task.created_at).where(Task.id == offer.task_id))
    wait = max(0.0, (now - created_at).total_seconds()) if created_at is not None else None
    claimed = await session.execute(
        update(Task).where(Task.id == offer.task_id, Task.status == "offered", Task.agent_id == offer.agent_id)
        .values(status="assigned", assigned_at=now, wait_seconds=wait, pinned_agent_id=None,
                version=Task.version + 1, updated_at=now))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("offer_not_pending", details={"status": "task_changed"}, state="task_changed")
    offer.status, offer.responded_at = "accepted", now
    task = await session.get(Task, offer.task_id, populate_existing=True)
    assert task is not None
    _emit_offer(uow, offer, task.conversation_id)
    _emit_task(uow, task)
    if task.conversation_id is not None:
        from kefu.conversations import actions as conversation_actions
        from kefu.conversations import service as conversation_service

        conversation = await conversation_service.access_conversation(
            session=session, tenant_id=task.tenant_id, conversation_id=task.conversation_id)
        if conversation.assignee_id != offer.agent_id:
            await conversation_actions.do_update_conversation(
                uow, conversation=conversation, changes={"assignee_id": offer.agent_id},
                default_locale=default_locale)
    return task


async def do_reject_offer(uow: UnitOfWork, *, offer: Offer, agent_id: str | None, now: datetime | None = None,
                          status: str = "rejected") -> Task | None:
    """Reject (or time out) an offer: the task waits again and is not offered to this agent for a while."""
    session = uow.session
    now = now or utcnow()
    if status == "rejected":
        if offer.agent_id != agent_id:
            raise Forbidden("offer_not_yours")
        if offer.status != "pending":
            raise Conflict("offer_not_pending", details={"status": offer.status}, state=offer.status)
        if offer.expires_at <= now:
            raise Conflict("offer_expired", details={"expires_at": offer.expires_at.isoformat()})
    won = await session.execute(update(Offer).where(Offer.id == offer.id, Offer.status == "pending")
                                .values(status=status, responded_at=now))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        if status == "rejected":
            raise Conflict("offer_not_pending", details={"status": "changed"}, state="changed")
        return None
    offer.status, offer.responded_at = status, now
    task = await session.get(Task, offer.task_id, populate_existing=True)
    assert task is not None
    if task.status == "offered" and task.agent_id == offer.agent_id:
        declined = dict(task.declined or {})
        declined[offer.agent_id] = now.timestamp() + policies.DECLINE_COOLDOWN_SECONDS
        task.declined = declined
        task.status = "waiting"
        task.agent_id = None
        task.pinned_agent_id = None  # a transfer to this agent failed: back to the workflow or queue
        task.version += 1
        task.updated_at = now
    await session.flush()
    _emit_offer(uow, offer, task.conversation_id)
    _emit_task(uow, task)
    return task


# --- the routing pass --------------------------------------------------------------------------------------

async def tenants_with_work(session: AsyncSession) -> list[str]:
    """Tenants with waiting tasks, pending offers or finished wrap-ups (what a pass has to look at)."""
    waiting = select(Task.tenant_id).where(Task.status.in_(("waiting", "wrapping"))).distinct()
    offers = select(Offer.tenant_id).where(Offer.status == "pending").distinct()
    return sorted(set((await session.scalars(waiting)).all()) | set((await session.scalars(offers)).all()))


async def _expire_offers(uow: UnitOfWork, tenant_id: str, now: datetime) -> int:
    session = uow.session
    query = (select(Offer).where(Offer.tenant_id == tenant_id, Offer.status == "pending", Offer.expires_at <= now)
             .order_by(Offer.expires_at).limit(PASS_LIMIT))
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    expired = list(await session.scalars(query))
    missed: set[str] = set()
    for offer in expired:
        task = await do_reject_offer(uow, offer=offer, agent_id=offer.agent_id, now=now, status="timed_out")
        if task is not None:
            missed.add(offer.agent_id)
    for agent_id in sorted(missed):
        # Like a missed call: an agent who lets offers lapse is probably away, so stop offering them work.
        profile = await session.get(AgentProfile, agent_id)
        if profile is not None and profile.presence == "available":
            await do_set_presence(uow, profile=profile, presence="away", reason=MISSED_OFFER_REASON)
    return len(expired)


async def _finish_wrapups(uow: UnitOfWork, tenant_id: str, now: datetime) -> None:
    await uow.session.execute(update(Task).where(Task.tenant_id == tenant_id, Task.status == "wrapping",
                                                 Task.wrapup_until <= now)
                              .values(status="completed", updated_at=now))


async def _enrich(session: AsyncSession, tenant_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add what the conversation did not know: the contact's VIP level and the agent who served them last."""
    fresh = [r for r in rows if not r["enriched"]]
    if not fresh:
        return []
    contact_ids = {r["contact_id"] for r in fresh if r["contact_id"]}
    contacts = await contact_service.current_contacts(session=session, tenant_id=tenant_id,
                                                      contact_ids=contact_ids) if contact_ids else {}
    last_agent: dict[str, str] = {}
    if contact_ids:
        served = await session.execute(
            select(Task.contact_id, Task.agent_id, Task.assigned_at)
            .where(Task.tenant_id == tenant_id, Task.contact_id.in_(contact_ids), Task.assigned_at.is_not(None),
                   Task.agent_id.is_not(None))
            .order_by(Task.assigned_at))
        for contact_id, agent_id, _at in served.all():
            last_agent[contact_id] = agent_id
    updates = []
    for row in fresh:
        contact = contacts.get(row["contact_id"]) if row["contact_id"] else None
        attributes = dict(row["attributes"] or {})
        if contact is not None:
            attributes.setdefault("vip_level", contact.vip_level)
            for key, value in (contact.attributes or {}).items():
                attributes.setdefault(f"contact_{key}", value)
        attributes.setdefault("vip_level", 0)
        row["attributes"] = attributes
        row["preferred_agent_id"] = last_agent.get(row["contact_id"]) if row["contact_id"] else None
        row["enriched"] = True
        updates.append({"id": row["id"], "attributes": attributes, "enriched": True,
                        "preferred_agent_id": row["preferred_agent_id"]})
    return updates


_TASK_COLUMNS = (Task.id, Task.tenant_id, Task.conversation_id, Task.contact_id, Task.channel, Task.priority,
                 Task.attributes, Task.enriched, Task.workflow_id, Task.queue_id, Task.step, Task.pinned_queue_id,
                 Task.pinned_agent_id, Task.preferred_agent_id, Task.declined, Task.created_at, Task.offer_count)
_AGENT_COLUMNS = (AgentProfile.user_id, AgentProfile.presence, AgentProfile.skills, AgentProfile.languages,
                  AgentProfile.groups, AgentProfile.vip, AgentProfile.attributes, AgentProfile.capacities,
                  AgentProfile.last_offered_at, AgentProfile.version)


# Per-process caches of what changes rarely: agents' attributes (by profile version) and the routing
# configuration (by a stamp of the queue and workflow tables). Each pass reads only the small dynamic part.
_AGENT_STATIC: dict[str, dict[str, tuple[int, dict[str, Any], dict[str, int]]]] = {}
_CONFIG: dict[str, tuple[Any, Any]] = {}


async def _agent_snapshot(session: AsyncSession, tenant_id: str) -> dict[str, tuple[str, int, float, dict[str, Any],
                                                                                   dict[str, int]]]:
    """Non-offline agents: user id -> (presence, version, last offer epoch, expression subject, capacities)."""
    dynamic = (await session.execute(
        select(AgentProfile.user_id, AgentProfile.presence, AgentProfile.version, AgentProfile.last_offered_at)
        .where(AgentProfile.tenant_id == tenant_id, AgentProfile.presence != "offline"))).all()
    static = _AGENT_STATIC.setdefault(tenant_id, {})
    stale = [user_id for user_id, _p, version, _l in dynamic if static.get(user_id, (None,))[0] != version]
    for start in range(0, len(stale), 500):
        for row in (await session.execute(select(*_AGENT_COLUMNS).where(
                AgentProfile.user_id.in_(stale[start:start + 500])))).all():
            static[row.user_id] = (row.version, service.agent_subject(row), service.capacities_of(row.capacities))
    out = {}
    for user_id, presence, version, last_offered in dynamic:
        cached = static.get(user_id)
        if cached is None or cached[0] != version:  # changed between the two reads: skip it this pass
            continue
        out[user_id] = (presence, version, _epoch(last_offered), cached[1], cached[2])
    return out


async def _config_snapshot(session: AsyncSession, tenant_id: str) -> tuple[
        dict[str, policies.QueueView], dict[str, policies.WorkflowView], str | None]:
    stamp = tuple((await session.execute(select(
        select(func.count(Queue.id)).where(Queue.tenant_id == tenant_id).scalar_subquery(),
        select(func.sum(Queue.version)).where(Queue.tenant_id == tenant_id).scalar_subquery(),
        select(func.count(Workflow.id)).where(Workflow.tenant_id == tenant_id).scalar_subquery(),
        select(func.sum(Workflow.version)).where(Workflow.tenant_id == tenant_id).scalar_subquery(),
    ))).one())
    cached = _CONFIG.get(tenant_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    _queues, queue_views, workflows, default = await service.routing_config(session=session, tenant_id=tenant_id)
    if len(_CONFIG) > 10_000:
        _CONFIG.clear()
    _CONFIG[tenant_id] = (stamp, (queue_views, workflows, default))
    return queue_views, workflows, default


async def _confirm_capacity(session: AsyncSession, tenant_id: str,
                            decisions: list[policies.Decision]) -> list[policies.Decision]:
    """Lock the chosen agents (in id order, so concurrent passes cannot deadlock), re-read their presence and
    load now that no other pass can change them, and keep only the decisions that still fit.

    Another node may have given one of these agents work since our snapshot; that pass committed before we
    got the lock, so READ COMMITTED shows it here. Dropped tasks stay waiting for the next pass.
    """
    chosen = sorted({d.agent_id for d in decisions})
    rows = (await session.execute(
        select(AgentProfile.user_id, AgentProfile.presence, AgentProfile.capacities)
        .where(AgentProfile.user_id.in_(chosen)).order_by(AgentProfile.user_id).with_for_update())).all()
    fresh = {user_id: (presence, service.capacities_of(capacities)) for user_id, presence, capacities in rows}
    loads = await service.agent_loads(session=session, tenant_id=tenant_id, agent_ids=chosen)
    task_channels = dict((await session.execute(
        select(Task.id, Task.channel).where(Task.id.in_([d.task_id for d in decisions])))).all())
    kept = []
    for decision in decisions:
        presence, capacities = fresh.get(decision.agent_id, ("offline", {}))
        channel = task_channels.get(decision.task_id, "chat")
        load = loads.setdefault(decision.agent_id, {})
        if presence == "available" and load.get(channel, 0) < capacities.get(channel, 0):
            load[channel] = load.get(channel, 0) + 1
            kept.append(decision)
    return kept


async def route_tenant(uow: UnitOfWork, *, tenant_id: str, now: datetime | None = None,
                       default_locale: str = "en", housekeeping: bool = True) -> int:
    """One routing pass for a tenant inside the caller's transaction; returns the number of offers made.

    Expires lapsed offers and finishes wrap-ups (``housekeeping``), then offers the waiting tasks it could
    lock as ``policies.route`` decides, confirming each chosen agent's capacity under a row lock. The caller
    commits.
    """
    session = uow.session
    now = now or utcnow()
    postgres = _is_postgres(session)
    if housekeeping:  # the loop's timer passes; passes woken by an event only route
        await _expire_offers(uow, tenant_id, now)
        await _finish_wrapups(uow, tenant_id, now)
    query = (select(*_TASK_COLUMNS).where(Task.tenant_id == tenant_id, Task.status == "waiting")
             .order_by(Task.priority.desc(), Task.created_at, Task.id).limit(PASS_LIMIT))
    if postgres:
        query = query.with_for_update(skip_locked=True, of=Task)
    rows = [dict(r._mapping) for r in (await session.execute(query)).all()]
    if not rows:
        return 0
    enriched = await _enrich(session, tenant_id, rows)
    if enriched:
        await session.execute(update(Task), enriched)
    profiles = await _agent_snapshot(session, tenant_id)
    available = {user_id for user_id, p in profiles.items() if p[0] == "available"}
    if not available:
        return 0
    loads = await service.agent_loads(session=session, tenant_id=tenant_id)
    matcher = matcher_for(tenant_id)
    matcher.reset(frozenset((user_id, p[1]) for user_id, p in profiles.items()))
    agents = {user_id: policies.AgentView(
        user_id, subject, presence if user_id in available else "locked", capacities,
        dict(loads.get(user_id, {})), last_offered)
        for user_id, (presence, _version, last_offered, subject, capacities) in profiles.items()}
    queue_views, workflows, default_workflow = await _config_snapshot(session, tenant_id)
    tasks = [policies.TaskView(
        r["id"], r["channel"], r["priority"], r["attributes"] or {}, _epoch(r["created_at"]), r["workflow_id"],
        r["pinned_queue_id"], r["pinned_agent_id"], r["preferred_agent_id"],
        {k: float(v) for k, v in (r["declined"] or {}).items()}, r["queue_id"], r["step"]) for r in rows]
    result = policies.route(tasks=tasks, agents=agents, queues=queue_views, workflows=workflows,
                            default_workflow_id=default_workflow, now=now.timestamp(), matcher=matcher)
    by_id = {r["id"]: r for r in rows}
    decided = {d.task_id for d in result.decisions}
    moved = [{"id": p.task_id, "queue_id": p.queue_id, "step": p.step} for p in result.placements.values()
             if p.task_id not in decided and (p.queue_id, p.step) != (by_id[p.task_id]["queue_id"],
                                                                      by_id[p.task_id]["step"])]
    if moved:
        await session.execute(update(Task), moved)
    if not result.decisions:
        return 0
    if postgres:
        decisions = await _confirm_capacity(session, tenant_id, result.decisions)
        if not decisions:
            return 0
        result.decisions = decisions
    offers: list[dict[str, Any]] = []
    task_updates: list[dict[str, Any]] = []
    auto: list[str] = []
    for decision in result.decisions:
        row = by_id[decision.task_id]
        queue = queue_views.get(decision.queue_id or "")
        timeout = queue.offer_timeout_seconds if queue is not None else 30.0
        offer = {"id": new_id("off"), "tenant_id": tenant_id, "task_id": decision.task_id,
                 "agent_id": decision.agent_id, "queue_id": decision.queue_id, "status": "pending",
                 "created_at": now, "expires_at": now + timedelta(seconds=timeout), "responded_at": None}
        offers.append(offer)
        task_updates.append({"id": decision.task_id, "status": "offered", "agent_id": decision.agent_id,
                             "queue_id": decision.queue_id, "step": decision.step,
                             "offer_count": row["offer_count"] + 1, "updated_at": now})
        if queue is not None and queue.auto_accept:
            auto.append(offer["id"])
    await session.execute(update(Task), task_updates)
    await session.execute(insert(Offer), offers)
    await session.execute(update(AgentProfile), [
        {"user_id": agent_id, "last_offered_at": now} for agent_id in sorted({d.agent_id for d in result.decisions})])
    for offer in offers:
        row = by_id[offer["task_id"]]
        _emit_offer(uow, offer, row["conversation_id"], ev.ROUTING_OFFER_CREATED)
    for offer_id in auto:
        offer_row = await session.get(Offer, offer_id)
        assert offer_row is not None
        await do_accept_offer(uow, offer=offer_row, agent_id=offer_row.agent_id, now=now, force=True,
                              default_locale=default_locale)
    return len(offers)


async def route_once(runtime: Any, *, tenant_ids: list[str] | None = None, now: datetime | None = None,
                     housekeeping: bool = True) -> int:
    """Run a pass for every tenant with work (or the ones named), one transaction each; returns the offers made."""
    if tenant_ids is None:
        async with runtime.sessionmaker() as session:
            tenant_ids = await tenants_with_work(session)
    made = 0
    for tenant_id in tenant_ids:
        uow = runtime.unit_of_work()
        try:
            made += await route_tenant(uow, tenant_id=tenant_id, now=now, housekeeping=housekeeping,
                                       default_locale=runtime.settings.default_locale)
            await uow.commit()
        finally:
            await uow.session.close()
    return made



# --- statistics pushed to supervisors ----------------------------------------------------------------------

_LAST_STATS: dict[str, Any] = {}


async def publish_stats(runtime: Any, *, previous: set[str]) -> set[str]:
    """Emit ``routing.queue.stats`` for tenants with live tasks (and once more when they go quiet), only when
    the figures changed since this node last sent them; returns the tenants that were active."""
    async with runtime.sessionmaker() as session:
        active = set((await session.scalars(
            select(Task.tenant_id).where(Task.status.in_(service.LIVE)).distinct())).all())
    for tenant_id in sorted(active | previous):
        uow = runtime.unit_of_work()
        try:
            stats = await service.queue_stats(session=uow.session, tenant_id=tenant_id,
                                              matcher=matcher_for(tenant_id))
            figures = [q.model_dump(exclude={"longest_wait_seconds"}) for q in stats.queues]
            if not figures or _LAST_STATS.get(tenant_id) == figures:
                continue
            _LAST_STATS[tenant_id] = figures
            uow.emit(ev.ROUTING_QUEUE_STATS, tenant_id=tenant_id,
                     data={"audience": "supervisors", "stats": stats.model_dump(mode="json")})
            await uow.commit()
        finally:
            await uow.session.close()
    return active
