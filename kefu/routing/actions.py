"""Writes of the routing domain: configuration, presence, tasks, offers, transfers and the routing pass.

Exactly once, on every node. A task is offered only by the pass that holds its row lock (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so concurrent nodes split the waiting tasks instead of queueing on them). An
agent's capacity is consumed only after the pass has locked the chosen agents' rows (in id order, so passes
cannot deadlock) and re-read their presence and load under that lock; a decision that no longer fits is
dropped and the task waits for the next pass. SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway. Every
other write of a task (accept, reject, expiry, transfer, release, manual assignment, attribute update) first
takes the task's row lock and decides on the row as it is then (``_lock_task``); offers change by conditional
UPDATEs on their status, so an accept racing an expiry, a transfer or a release has exactly one winner. Lock
order everywhere: the conversation, then its task, then the task's offers, then agents (the pass: tasks, then
the chosen agents in id order, then the conversations of auto-accepted offers, skipping those locked). The
conversation comes first because the conversation actions write its row before they sync its task. A manual
assignment also takes its agent's row lock and writes that row, as a pass does, so a pass
confirming the same agent re-reads the agent's load (``_claim_agent``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.contacts import service as contact_service
from kefu.core.bulk import insert_rows
from kefu.core.clock import isoformat, utcnow
from kefu.core.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed, check_version
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork
from kefu.routing import policies, service
from kefu.routing.cache import AgentCache, cache_for, epoch
from kefu.routing.expressions import Expression, ExpressionError, parse
from kefu.routing.models import AgentProfile, Offer, PresenceChange, Queue, Task, Workflow
from kefu.routing.schemas import AgentProfileUpdate, QueueCreate, QueueUpdate, WorkflowCreate, WorkflowUpdate

log = logging.getLogger("kefu.routing")

PASS_LIMIT = 500  # waiting tasks considered per tenant per pass
MISSED_OFFER_REASON = "missed_offer"

# The statistics push keeps an eligibility cache per tenant of its own (the routing pass uses the agent cache's).
_STATS_MATCHERS: dict[str, policies.Matcher] = {}


def _stats_matcher(tenant_id: str) -> policies.Matcher:
    found = _STATS_MATCHERS.get(tenant_id)
    if found is None:
        if len(_STATS_MATCHERS) > 10_000:
            _STATS_MATCHERS.clear()
        found = _STATS_MATCHERS[tenant_id] = policies.Matcher()
    return found


def _at(epoch_seconds: float) -> datetime | None:
    return datetime.fromtimestamp(epoch_seconds, UTC) if epoch_seconds else None


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]


def _touch(uow: UnitOfWork, tenant_id: str, *agent_ids: str | None) -> None:
    """This write changes these agents' presence, profile or load: the node's cache re-reads them next pass."""
    cache_for(uow.session, tenant_id).mark(*agent_ids)


async def _lock_task_row(session: AsyncSession, task_id: str) -> None:
    """PostgreSQL: take a task's row lock (SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    if _is_postgres(session):
        await session.execute(select(Task.id).where(Task.id == task_id).with_for_update())


async def _lock_task(session: AsyncSession, task: Task) -> Task:
    """Take the task's row lock and reload the task, so that the write decides on its current row.

    The caller may have read the task before another transaction (an accept, a pass, a transfer) changed
    it; under the lock nobody else can change it until we commit."""
    if _is_postgres(session):
        await session.execute(select(Task).where(Task.id == task.id).with_for_update()
                              .execution_options(populate_existing=True))
    return task


async def _lock_conversation(session: AsyncSession, tenant_id: str, conversation_id: str | None) -> None:
    """PostgreSQL: take a conversation's row lock before its task's, for a write that changes both (accept,
    transfer). Conversation actions write the conversation row, then lock its task (``do_sync_conversation``);
    taking the two in the other order would let PostgreSQL abort one of the two writers as a deadlock."""
    if conversation_id is None or not _is_postgres(session):
        return
    from kefu.conversations import service as conversation_service

    conversation = await conversation_service.access_conversation(session=session, tenant_id=tenant_id,
                                                                  conversation_id=conversation_id)
    await session.refresh(conversation, with_for_update=True)


async def _claim_agent(session: AsyncSession, agent_id: str | None) -> None:
    """A manual assignment takes the agent's row lock, as a routing pass does, and writes the row (a no-op
    value): a pass that locks this agent after us sees a newer row version than its snapshot and re-reads the
    agent's load (``_confirm``), so it does not offer on top of the capacity this assignment takes; a pass
    that locked the agent first finishes before we go on."""
    if agent_id and _is_postgres(session):
        await session.execute(update(_A).where(_A.c.user_id == agent_id)
                              .values(last_offered_at=_A.c.last_offered_at))


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
    profile.version += 1  # the agent cache re-reads the attributes of a changed version
    profile.updated_at = now
    await session.flush()
    _touch(uow, tenant_id, profile.user_id)
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
    _touch(uow, profile.tenant_id, profile.user_id)
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

def _emit_task(uow: UnitOfWork, task: Task | dict[str, Any], type_: str = ev.ROUTING_TASK_UPDATED, *,
               previous_agent_id: str | None = None) -> None:
    get = task.get if isinstance(task, dict) else lambda k: getattr(task, k)  # type: ignore[union-attr]
    # The conversation id travels in the data only: the envelope's conversation_id marks the conversation's
    # own timeline events, which routing's bookkeeping is not part of.
    data: dict[str, Any] = {"task": {
        "id": get("id"), "conversation_id": get("conversation_id"), "status": get("status"),
        "queue_id": get("queue_id"), "agent_id": get("agent_id"), "priority": get("priority"),
        "channel": get("channel")}}
    if previous_agent_id is not None and previous_agent_id != get("agent_id"):
        data["task"]["previous_agent_id"] = previous_agent_id  # whose capacity this change freed (agent caches)
    uow.emit(type_, tenant_id=get("tenant_id"), data=data)


def task_values(*, tenant_id: str, channel: str, priority: int = 0, attributes: dict[str, Any] | None = None,
                conversation_id: str | None = None, contact_id: str | None = None, workflow_id: str | None = None,
                status: str = "waiting", agent_id: str | None = None, enriched: bool = False,
                now: datetime | None = None) -> dict[str, Any]:
    """A new task's column values (for an ORM ``Task`` or a multi-row INSERT)."""
    now = now or utcnow()
    return {"id": new_id("tsk"), "tenant_id": tenant_id, "conversation_id": conversation_id,
            "live_conversation_id": conversation_id, "contact_id": contact_id, "channel": channel, "status": status,
            "priority": priority, "attributes": attributes or {}, "enriched": enriched, "workflow_id": workflow_id,
            "agent_id": agent_id, "declined": {}, "offer_count": 0, "created_at": now,
            "assigned_at": now if status == "assigned" else None,
            "wait_seconds": 0.0 if status == "assigned" else None, "version": 1, "updated_at": now}


def new_task(**fields: Any) -> Task:
    """A new ``Task`` (``task_values`` says which fields it takes)."""
    return Task(**task_values(**fields))


def _conversation_attributes(conversation: Any) -> dict[str, Any]:
    return {"channel": policies.channel_of(conversation.channel), "conversation_channel": conversation.channel,
            "language": conversation.locale, "inbox_id": conversation.inbox_id}


def _new_conversation_task(conversation: Any, now: datetime | None = None) -> dict[str, Any]:
    return task_values(tenant_id=conversation.tenant_id, channel=policies.channel_of(conversation.channel),
                       priority=conversation.priority or 0, attributes=_conversation_attributes(conversation),
                       conversation_id=conversation.id, contact_id=conversation.contact_id, now=now)


def enqueue_new_conversation(uow: UnitOfWork, *, conversation: Any) -> Task:
    """Create the task of a conversation that was just started queue-owned (no query: it cannot have one yet).

    Contact details (VIP level, the agent who served them last) are added by the routing pass, off the chat hot
    path. No event of its own: the conversation's ``conversation.created`` already wakes the routing loops (one
    outbox row less per new chat).
    """
    task = Task(**_new_conversation_task(conversation))
    uow.session.add(task)
    return task


_tasks = Task.__table__


async def insert_new_conversation_tasks(uow: UnitOfWork, conversations: Sequence[Any]) -> None:
    """``enqueue_new_conversation`` for a batch of conversations just started queue-owned, as one multi-row
    INSERT (the widget's group commit opens up to a few hundred at once)."""
    now = utcnow()
    await insert_rows(uow.session, _tasks, [_new_conversation_task(c, now) for c in conversations])


async def do_enqueue_conversation(uow: UnitOfWork, *, conversation: Any) -> Task:
    """Make sure a queue-owned conversation has a live task (a conversation never gets a second one)."""
    existing = await service.live_task_of(session=uow.session, tenant_id=conversation.tenant_id,
                                          conversation_id=conversation.id)
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
    """Cancel the task's pending offers (the caller holds the task's row lock). Conditional on ``pending``: an
    offer accepted, rejected or expired meanwhile keeps its outcome."""
    canceled = (await uow.session.execute(
        update(Offer).where(Offer.task_id == task.id, Offer.status == "pending")
        .values(status="canceled", responded_at=now)
        .returning(Offer.id, Offer.tenant_id, Offer.task_id, Offer.agent_id, Offer.queue_id, Offer.status,
                   Offer.created_at, Offer.expires_at),
        execution_options={"synchronize_session": "fetch"})).all()
    for row in canceled:
        _emit_offer(uow, dict(row._mapping), task.conversation_id)
    _touch(uow, task.tenant_id, *(row.agent_id for row in canceled))


def _end(task: Task, *, status: str, reason: str, now: datetime) -> None:
    task.status = status
    task.end_reason = reason
    task.ended_at = now
    task.live_conversation_id = None
    task.version += 1
    task.updated_at = now


async def do_release_task(uow: UnitOfWork, *, task: Task, reason: str, now: datetime | None = None,
                          locked: bool = False) -> Task:
    """End a task: unanswered → canceled (``abandoned`` if the customer's conversation ended), answered →
    wrap-up for the queue's ``wrapup_seconds`` (the capacity stays taken), then completed.

    Decided on the task's row under its lock (``locked``: the caller took it): a release racing an accept
    ends the task as answered if the accept committed first, else the accept finds its offer canceled."""
    now = now or utcnow()
    if not locked:
        await _lock_task(uow.session, task)
    _touch(uow, task.tenant_id, task.agent_id)
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
    """Give a task to an agent by hand (the caller holds the task's row lock); counts against capacity."""
    now = utcnow()
    previous = task.agent_id
    _touch(uow, task.tenant_id, previous, agent_id)
    await _claim_agent(uow.session, agent_id)
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
    _emit_task(uow, task, previous_agent_id=previous)


async def do_sync_conversation(uow: UnitOfWork, *, tenant_id: str, conversation: Any) -> Task | None:
    """Bring the conversation's task in line with who owns the conversation now.

    Called explicitly by the conversation actions after a change of status, owner or assignee: a queue-owned
    open conversation has a waiting task; an agent-owned one has a task assigned to that agent (a manual
    assignment counts against capacity too); a resolved or closed one releases its task; a bot-owned one
    has none. The live task is read under its row lock, so the change is decided on its current state.
    """
    if conversation.tenant_id != tenant_id:
        raise NotFound("conversation_not_found")
    session = uow.session
    task = await service.live_task_of(session=session, tenant_id=tenant_id, conversation_id=conversation.id,
                                      lock=True)
    if conversation.status in ("resolved", "closed"):
        if task is not None:
            await do_release_task(uow, task=task, reason=conversation.status, locked=True)
        return task
    if conversation.owner_kind == "agent" and conversation.assignee_id:
        if task is None:
            task = new_task(tenant_id=conversation.tenant_id, channel=policies.channel_of(conversation.channel),
                            priority=conversation.priority or 0, attributes=_conversation_attributes(conversation),
                            conversation_id=conversation.id, contact_id=conversation.contact_id, status="assigned",
                            agent_id=conversation.assignee_id, enriched=True)
            await _claim_agent(session, task.agent_id)
            session.add(task)
            await session.flush()
            _touch(uow, task.tenant_id, task.agent_id)
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
        await do_release_task(uow, task=task, reason="bot", locked=True)
    return task


async def do_sync_conversations(uow: UnitOfWork, *, conversations: Sequence[Any]) -> None:
    for conversation in conversations:
        await do_sync_conversation(uow, tenant_id=conversation.tenant_id, conversation=conversation)


async def do_update_task(uow: UnitOfWork, *, task: Task, attributes: dict[str, Any] | None = None,
                         priority: int | None = None, expected_version: int | None = None) -> Task:
    """Merge attributes into a task (e.g. the bot's intent and emotion) or change its priority; the next pass
    routes it by the new values."""
    await _lock_task(uow.session, task)
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


async def do_update_conversation_task(uow: UnitOfWork, *, tenant_id: str, conversation_id: str,
                                      attributes: dict[str, Any]) -> Task | None:
    """For other domains (the bot's handoff): add routing attributes to a conversation's live task, if any."""
    task = await service.live_task_of(session=uow.session, tenant_id=tenant_id, conversation_id=conversation_id)
    if task is None or task.status not in service.LIVE:
        return None
    return await do_update_task(uow, task=task, attributes=attributes)


async def do_transfer_task(uow: UnitOfWork, *, task: Task, queue_id: str | None, agent_id: str | None,
                           default_locale: str = "en") -> Task:
    """Move a live task to another queue, or offer it to one agent; the conversation goes back to waiting.

    Decided on the task as the caller read it: if it changed since (an accept, a reject, a release or another
    transfer committed meanwhile), ``version_conflict`` and nothing changes; the caller reloads and decides again.
    """
    session = uow.session
    if (queue_id is None) == (agent_id is None):
        raise ValidationFailed("invalid_transfer", details={"fields": ["queue_id", "agent_id"]})
    seen = (task.version, task.status, task.agent_id)
    await _lock_conversation(session, task.tenant_id, task.conversation_id)  # lock order: conversation, task
    await _lock_task(session, task)
    if (task.version, task.status, task.agent_id) != seen:
        raise PreconditionFailed(details={"current_version": task.version}, current_version=task.version)
    if task.status not in service.LIVE:
        raise Conflict("task_not_active", details={"status": task.status}, state=task.status)
    if queue_id is not None:
        await service.access_queue(session=session, tenant_id=task.tenant_id, queue_id=queue_id)
    if agent_id is not None:
        await service.access_agent(session=session, tenant_id=task.tenant_id, agent_id=agent_id)
    now = utcnow()
    previous = task.agent_id
    _touch(uow, task.tenant_id, previous)
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
    _emit_task(uow, task, previous_agent_id=previous)
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
            # The hub sends an offer only to this user's sockets and to supervisors (kefu/realtime/audience.py).
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
    if not force and _is_postgres(session):  # (the pass locks the conversations of auto-accepted offers itself)
        conversation_id = await session.scalar(select(Task.conversation_id).where(Task.id == offer.task_id))
        await _lock_conversation(session, offer.tenant_id, conversation_id)
    await _lock_task_row(session, offer.task_id)  # lock order: conversation, task, then offer
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
    await _lock_task_row(session, offer.task_id)  # lock order: task, then offer
    won = await session.execute(update(Offer).where(Offer.id == offer.id, Offer.status == "pending")
                                .values(status=status, responded_at=now))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        if status == "rejected":
            raise Conflict("offer_not_pending", details={"status": "changed"}, state="changed")
        return None
    offer.status, offer.responded_at = status, now
    _touch(uow, offer.tenant_id, offer.agent_id)
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
    if _is_postgres(session):  # offers whose task a transfer, release or accept holds are left for later
        query = query.join(Task, Task.id == Offer.task_id).with_for_update(skip_locked=True, of=(Offer, Task))
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
    finished = (await uow.session.execute(
        update(Task).where(Task.tenant_id == tenant_id, Task.status == "wrapping", Task.wrapup_until <= now)
        .values(status="completed", updated_at=now)
        .returning(Task.id, Task.tenant_id, Task.conversation_id, Task.status, Task.queue_id, Task.agent_id,
                   Task.priority, Task.channel))).all()
    for row in finished:  # the agent's capacity is free again: other nodes' caches learn it from this event
        _emit_task(uow, dict(row._mapping))
    _touch(uow, tenant_id, *{row.agent_id for row in finished})


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


# The pass runs Core statements on the tables (the ORM's bulk machinery costs more than the SQL for one task).
_T, _A, _O = Task.__table__, AgentProfile.__table__, Offer.__table__
_TASK_COLUMNS = tuple(_T.c[name] for name in (
    "id", "tenant_id", "conversation_id", "contact_id", "channel", "priority", "attributes", "enriched",
    "workflow_id", "queue_id", "step", "pinned_queue_id", "pinned_agent_id", "preferred_agent_id", "declined",
    "created_at", "offer_count"))
_OFFER_TASK = (update(_T).where(_T.c.id == bindparam("b_id"))
               .values(status="offered", agent_id=bindparam("b_agent"), queue_id=bindparam("b_queue"),
                       step=bindparam("b_step"), offer_count=_T.c.offer_count + 1, updated_at=bindparam("b_now")))
_MOVE_TASK = update(_T).where(_T.c.id == bindparam("b_id")).values(queue_id=bindparam("b_queue"),
                                                                   step=bindparam("b_step"))
_AGENT_IDS = bindparam("agent_ids", expanding=True)
_AGENTS_NOW = (select(_A.c.user_id, _A.c.presence, _A.c.version, _T.c.channel, func.count(_T.c.id))
               .select_from(_A.outerjoin(_T, and_(_T.c.tenant_id == _A.c.tenant_id, _T.c.agent_id == _A.c.user_id,
                                                  _T.c.status.in_(service.LOADED))))
               .where(_A.c.user_id.in_(_AGENT_IDS))
               .group_by(_A.c.user_id, _A.c.presence, _A.c.version, _T.c.channel))
_LOADED_SQL = ", ".join(f"'{status}'" for status in service.LOADED)
_PG_LOCK_AND_READ = text(
    "SELECT a.user_id, a.presence, a.version, "
    "a.xmin = (SELECT b.xmin FROM routing_agents b WHERE b.user_id = a.user_id) AS unchanged, "
    + ", ".join(f"(SELECT count(*) FROM routing_tasks t WHERE t.tenant_id = a.tenant_id AND t.agent_id = a.user_id"
                f" AND t.status IN ({_LOADED_SQL}) AND t.channel = '{channel}')"
                for channel in policies.CHANNELS)
    + " FROM routing_agents a WHERE a.user_id = ANY(CAST(:agent_ids AS varchar[])) ORDER BY a.user_id FOR UPDATE OF a")
# SQLite (writers serialised): mark the chosen agents offered and read their state in one statement; the
# few whose decisions are then dropped get their last offer back (_RESTORE_OFFERED).
_SQLITE_OFFER_AND_READ = text(
    "UPDATE routing_agents SET last_offered_at = :now WHERE user_id IN :agent_ids "
    "RETURNING user_id, presence, version, "
    + ", ".join(f"(SELECT count(*) FROM routing_tasks t WHERE t.tenant_id = routing_agents.tenant_id"
                f" AND t.agent_id = routing_agents.user_id AND t.status IN ({_LOADED_SQL}) AND t.channel = '{channel}')"
                for channel in policies.CHANNELS)).bindparams(bindparam("agent_ids", expanding=True),
                                                              bindparam("now", type_=_A.c.last_offered_at.type))
_RESTORE_OFFERED = (update(_A).where(_A.c.user_id == bindparam("b_id"))
                    .values(last_offered_at=bindparam("b_last", type_=_A.c.last_offered_at.type)))
_INSERT_OFFERS = insert(_O)
# PostgreSQL: the three writes of a pass (tasks offered, offers, agents' last offer) as one statement.
_PG_OFFER = text("""
WITH d AS (
  SELECT * FROM unnest(CAST(:task_ids AS varchar[]), CAST(:agent_ids AS varchar[]), CAST(:queue_ids AS varchar[]),
                       CAST(:steps AS integer[]), CAST(:offer_ids AS varchar[]), CAST(:expires AS timestamptz[]))
         AS d(task_id, agent_id, queue_id, step, offer_id, expires_at)),
t AS (UPDATE routing_tasks SET status = 'offered', agent_id = d.agent_id, queue_id = d.queue_id, step = d.step,
             offer_count = routing_tasks.offer_count + 1, updated_at = CAST(:now AS timestamptz)
      FROM d WHERE routing_tasks.id = d.task_id),
a AS (UPDATE routing_agents SET last_offered_at = CAST(:now AS timestamptz)
      WHERE user_id IN (SELECT agent_id FROM d))
INSERT INTO routing_offers (id, tenant_id, task_id, agent_id, queue_id, status, created_at, expires_at, responded_at)
SELECT offer_id, CAST(:tenant AS varchar), task_id, agent_id, queue_id, 'pending', CAST(:now AS timestamptz),
       expires_at, NULL FROM d""")
_WAITING: dict[tuple[int, bool], Any] = {}


def _waiting_query(postgres: bool) -> Any:
    """The best waiting tasks of a tenant (``:tenant``), with the configuration stamp; built once per limit."""
    found = _WAITING.get((PASS_LIMIT, postgres))
    if found is None:
        tenant = bindparam("tenant")
        found = (select(*_TASK_COLUMNS, *_config_stamp(tenant))
                 .where(_T.c.tenant_id == tenant, _T.c.status == "waiting")
                 .order_by(_T.c.priority.desc(), _T.c.created_at, _T.c.id).limit(PASS_LIMIT))
        if postgres:
            found = found.with_for_update(skip_locked=True, of=_T)
        _WAITING[(PASS_LIMIT, postgres)] = found
    return found


def _config_stamp(tenant_id: Any) -> Any:
    """Changes whenever a queue or workflow of the tenant is created or saved (read with the waiting tasks)."""
    return (select(func.count(Queue.id)).where(Queue.tenant_id == tenant_id).scalar_subquery(),
            select(func.sum(Queue.version)).where(Queue.tenant_id == tenant_id).scalar_subquery(),
            select(func.count(Workflow.id)).where(Workflow.tenant_id == tenant_id).scalar_subquery(),
            select(func.sum(Workflow.version)).where(Workflow.tenant_id == tenant_id).scalar_subquery())


async def _config_snapshot(session: AsyncSession, cache: AgentCache, stamp: tuple[Any, ...]) -> tuple[
        dict[str, policies.QueueView], dict[str, policies.WorkflowView], str | None]:
    if cache.config is not None and cache.config[0] == stamp:
        return cache.config[1]  # type: ignore[no-any-return]
    _queues, queue_views, workflows, default = await service.routing_config(session=session, tenant_id=cache.tenant_id)
    cache.config = (stamp, (queue_views, workflows, default))
    return queue_views, workflows, default


async def _confirm(session: AsyncSession, cache: AgentCache, decisions: list[policies.Decision],
                   channels: dict[str, str], now_at: datetime) -> tuple[list[policies.Decision], bool]:
    """Lock the chosen agents (in id order, so concurrent passes cannot deadlock), re-read their presence,
    profile version and load now that no other pass can change them, and keep only the decisions that still
    fit. The cache takes what was read (plus the offers kept); returns (kept decisions, whether any dropped).

    Another node may have given one of these agents work since the cache last heard of it. On PostgreSQL
    the lock and the read are one statement: its loads come from the statement's snapshot, which misses a pass
    that committed after the snapshot was taken (or that we waited for). Every pass updates the agent rows it
    offers to, so such a pass shows as a newer row version under the lock than in the snapshot (``xmin``
    differs); only for those agents are the loads read again, in a statement after the lock, where READ
    COMMITTED shows that pass. SQLite's BEGIN IMMEDIATE serialises writers; there the read is the UPDATE that
    records the chosen agents' last offer (undone for an agent whose decisions are all dropped).
    """
    now = now_at.timestamp()
    chosen = sorted({d.agent_id for d in decisions})
    conn = await session.connection()
    fresh: dict[str, tuple[str, int]] = {}
    loads: dict[str, dict[str, int]] = {}
    again: list[str] = []
    postgres = _is_postgres(session)
    statement = _PG_LOCK_AND_READ if postgres else _SQLITE_OFFER_AND_READ
    params: dict[str, Any] = {"agent_ids": chosen} if postgres else {"agent_ids": chosen, "now": now_at}
    for user_id, presence, version, *rest in (await conn.execute(statement, params)).all():
        if postgres:
            unchanged, counts = rest[0], rest[1:]
            if not unchanged:
                again.append(user_id)
        else:
            counts = rest
        fresh[user_id] = (presence, version)
        loads[user_id] = {c: n for c, n in zip(policies.CHANNELS, counts, strict=True) if n}
    if again:
        for user_id in again:
            loads.pop(user_id, None)
        for user_id, presence, version, channel, count in (await conn.execute(
                _AGENTS_NOW, {"agent_ids": again})).all():
            fresh[user_id] = (presence, version)
            if channel is not None:
                loads.setdefault(user_id, {})[channel] = count
    kept: list[policies.Decision] = []
    counted: dict[str, dict[str, int]] = {a: dict(loads.get(a, {})) for a in chosen}
    stale: list[str] = []
    for decision in decisions:
        presence, version = fresh.get(decision.agent_id, ("offline", None))
        agent = cache.agents.get(decision.agent_id)
        if agent is None or version != cache.versions.get(decision.agent_id):
            stale.append(decision.agent_id)  # profile changed: re-read it before deciding for it again
            continue
        channel = channels[decision.task_id]
        load = counted[decision.agent_id]
        if presence == "available" and load.get(channel, 0) < agent.capacities.get(channel, 0):
            load[channel] = load.get(channel, 0) + 1
            kept.append(decision)
    made: dict[str, int] = {}
    for decision in kept:
        made[decision.agent_id] = made.get(decision.agent_id, 0) + 1
    if not postgres:
        restore = [{"b_id": a, "b_last": _at(cache.idle_since(a, 0.0))} for a in chosen if a in fresh and not made.get(a)]
        if restore:
            await conn.execute(_RESTORE_OFFERED, restore)
    for agent_id in chosen:
        if agent_id in stale or agent_id not in fresh:
            continue
        agent = cache.agents[agent_id]
        agent.presence = fresh[agent_id][0]
        agent.load = counted[agent_id]
        if made.get(agent_id):
            agent.last_offered_at = now
        else:  # nothing kept: forget the offer the decision pretended (the stored last offer stays)
            agent.last_offered_at = cache.idle_since(agent_id, agent.last_offered_at)
        cache.rekey(agent_id)
    if stale or len(fresh) < len(chosen):
        await cache.reload(session, [a for a in chosen if a in stale or a not in fresh])
    return kept, len(kept) < len(decisions)


_LOCK_CONVERSATIONS = text("SELECT id FROM conversations WHERE id = ANY(CAST(:ids AS varchar[])) ORDER BY id "
                           "FOR UPDATE SKIP LOCKED")


async def _lock_auto_accepted(session: AsyncSession, cache: AgentCache, decisions: list[policies.Decision],
                              queue_views: dict[str, policies.QueueView],
                              by_id: dict[str, dict[str, Any]]) -> list[policies.Decision]:
    """PostgreSQL: lock the conversations that auto-accepted offers will assign, skipping those another
    transaction holds, and drop those decisions (the task waits for the next pass). The pass already holds
    the tasks' locks, so waiting here for a conversation action that waits for one of those tasks would be
    a deadlock. The dropped decisions' agents are re-read at the next pass (the cache counted the offer)."""
    wanted = {by_id[d.task_id]["conversation_id"] for d in decisions
              if d.queue_id in queue_views and queue_views[d.queue_id].auto_accept and by_id[d.task_id]["conversation_id"]}
    if not wanted:
        return decisions
    conn = await session.connection()
    locked = set((await conn.execute(_LOCK_CONVERSATIONS, {"ids": sorted(wanted)})).scalars())
    skipped = wanted - locked
    cache.mark(*(d.agent_id for d in decisions if by_id[d.task_id]["conversation_id"] in skipped))
    return [d for d in decisions if by_id[d.task_id]["conversation_id"] not in skipped]


async def route_tenant(uow: UnitOfWork, *, tenant_id: str, now: datetime | None = None,
                       default_locale: str = "en", housekeeping: bool = True) -> int:
    """One routing pass for a tenant inside the caller's transaction; returns the number of offers made.

    Expires lapsed offers and finishes wrap-ups (``housekeeping``), then places every waiting task it could
    lock in its active workflow target (whether or not an agent is free: a queue counts its waiting tasks
    even while everybody is away) and offers those ``policies.route`` decides, on the node's agent cache,
    confirming each chosen agent's presence and capacity under a row lock. The caller commits.
    """
    session = uow.session
    now = now or utcnow()
    cache = cache_for(session, tenant_id)
    if housekeeping:  # the loop's timer passes; passes woken by an event only route
        await _expire_offers(uow, tenant_id, now)
        await _finish_wrapups(uow, tenant_id, now)
    conn = await session.connection()
    fetched = (await conn.execute(_waiting_query(_is_postgres(session)), {"tenant": tenant_id})).all()
    if not fetched:
        return 0
    width = len(_TASK_COLUMNS)
    stamp = tuple(fetched[0][width:])
    rows = [dict(zip(_TASK_COLUMNS_KEYS, r[:width], strict=True)) for r in fetched]
    enriched = await _enrich(session, tenant_id, rows)
    if enriched:
        await session.execute(update(Task), enriched)
    queue_views, workflows, default_workflow = await _config_snapshot(session, cache, stamp)
    await cache.refresh(session, full_due=housekeeping)
    tasks = [policies.TaskView(
        r["id"], r["channel"], r["priority"], r["attributes"] or {}, epoch(r["created_at"]), r["workflow_id"],
        r["pinned_queue_id"], r["pinned_agent_id"], r["preferred_agent_id"],
        {k: float(v) for k, v in (r["declined"] or {}).items()}, r["queue_id"], r["step"]) for r in rows]
    by_id = {r["id"]: r for r in rows}
    channels = {r["id"]: r["channel"] for r in rows}
    placements: dict[str, policies.Placement] = {}
    decisions: list[policies.Decision] = []
    todo = tasks
    stamp_now = now.timestamp()
    for _attempt in range(3):
        result = policies.route(tasks=todo, agents=cache.agents, queues=queue_views, workflows=workflows,
                                default_workflow_id=default_workflow, now=stamp_now, matcher=cache.matcher,
                                idle_order=cache.idle_order())
        placements.update(result.placements)
        if not result.decisions:
            break
        kept, dropped = await _confirm(session, cache, result.decisions, channels, now)
        decisions.extend(kept)
        if not dropped:
            break
        done = {d.task_id for d in kept}
        todo = [t for t in todo if t.id not in done]  # decide again with what the locks showed
    if _is_postgres(session) and any(queue_views[d.queue_id].auto_accept for d in decisions
                                     if d.queue_id in queue_views):
        decisions = await _lock_auto_accepted(session, cache, decisions, queue_views, by_id)
    decided = {d.task_id for d in decisions}
    moved = [{"b_id": p.task_id, "b_queue": p.queue_id, "b_step": p.step} for p in placements.values()
             if p.task_id not in decided and (p.queue_id, p.step) != (by_id[p.task_id]["queue_id"],
                                                                      by_id[p.task_id]["step"])]
    if moved:  # where each task waits now (a queue counts its waiting tasks even while nobody is available)
        await conn.execute(_MOVE_TASK, moved)
    if not decisions:
        return 0
    offers: list[dict[str, Any]] = []
    task_updates: list[dict[str, Any]] = []
    auto: list[str] = []
    for decision in decisions:
        queue = queue_views.get(decision.queue_id or "")
        timeout = queue.offer_timeout_seconds if queue is not None else 30.0
        offer = {"id": new_id("off"), "tenant_id": tenant_id, "task_id": decision.task_id,
                 "agent_id": decision.agent_id, "queue_id": decision.queue_id, "status": "pending",
                 "created_at": now, "expires_at": now + timedelta(seconds=timeout), "responded_at": None}
        offers.append(offer)
        task_updates.append({"b_id": decision.task_id, "b_agent": decision.agent_id, "b_queue": decision.queue_id,
                             "b_step": decision.step, "b_now": now})
        if queue is not None and queue.auto_accept:
            auto.append(offer["id"])
    if _is_postgres(session):  # one round trip instead of three
        await conn.execute(_PG_OFFER, {
            "task_ids": [o["task_id"] for o in offers], "agent_ids": [o["agent_id"] for o in offers],
            "queue_ids": [o["queue_id"] for o in offers], "steps": [d.step for d in decisions],
            "offer_ids": [o["id"] for o in offers], "expires": [o["expires_at"] for o in offers],
            "now": now, "tenant": tenant_id})
    else:  # the agents' last offer was written when they were confirmed
        await conn.execute(_OFFER_TASK, task_updates)
        await conn.execute(_INSERT_OFFERS, offers)
    for offer in offers:
        row = by_id[offer["task_id"]]
        _emit_offer(uow, offer, row["conversation_id"], ev.ROUTING_OFFER_CREATED)
    for offer_id in auto:
        offer_row = await session.get(Offer, offer_id)
        assert offer_row is not None
        await do_accept_offer(uow, offer=offer_row, agent_id=offer_row.agent_id, now=now, force=True,
                              default_locale=default_locale)
    return len(offers)


_TASK_COLUMNS_KEYS = tuple(c.key for c in _TASK_COLUMNS)


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
        except Exception:
            # One tenant's failure (bad data, a deadlock) must not stop the others: the loop retries the same
            # order every tick, so re-raising would starve every tenant after this one. Its pass rolls back.
            cache_for(uow.session, tenant_id).invalidate()  # it may count offers that were rolled back
            log.exception("routing pass failed for tenant %s", tenant_id, extra={"tenant_id": tenant_id})
        except BaseException:
            cache_for(uow.session, tenant_id).invalidate()
            raise
        finally:
            await uow.session.close()
    return made



# --- statistics pushed to supervisors ----------------------------------------------------------------------

_LAST_STATS = "routing.last_stats"  # runtime.extras key: the figures this node last sent, per tenant


async def publish_stats(runtime: Any, *, previous: set[str]) -> set[str]:
    """Emit ``routing.queue.stats`` for tenants with live tasks (and once more when they go quiet), only when
    the figures changed since this node last sent them; returns the tenants that were active.

    What was last sent is the node's own (``runtime.extras``): kept per process, another node in the process
    (the test suite runs several) sending the same figures silenced this one, whose supervisors never got them.
    It is recorded once committed, so a failed commit is sent again on the next pass; one tenant's failure
    does not stop the others'."""
    last_sent: dict[str, Any] = runtime.extras.setdefault(_LAST_STATS, {})
    async with runtime.sessionmaker() as session:
        active = set((await session.scalars(
            select(Task.tenant_id).where(Task.status.in_(service.LIVE)).distinct())).all())
    for tenant_id in sorted(active | previous):
        uow = runtime.unit_of_work()
        try:
            stats = await service.queue_stats(session=uow.session, tenant_id=tenant_id,
                                              matcher=_stats_matcher(tenant_id))
            figures = [q.model_dump(exclude={"longest_wait_seconds"}) for q in stats.queues]
            if not figures or last_sent.get(tenant_id) == figures:
                continue
            uow.emit(ev.ROUTING_QUEUE_STATS, tenant_id=tenant_id,
                     data={"audience": "supervisors", "stats": stats.model_dump(mode="json")})
            await uow.commit()
            last_sent[tenant_id] = figures
        except Exception:
            log.exception("queue stats of a tenant failed; the next pass tries again", extra={"tenant_id": tenant_id})
        finally:
            await uow.session.close()
    return active
