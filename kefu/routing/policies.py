"""The routing decision, as pure functions: which workflow target a task is in, which agents are eligible,
which tasks go first and which agent gets each.

The persistent engine (``actions.route_tenant``) and the simulator (``simulation.py``) both build these
plain views and call ``route``; nothing here touches the database or the clock, so a decision made in a test
on a simulated clock is the decision production makes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kefu.routing.expressions import Expression, ExpressionError, compiled, lookup, split_task_free

PRESENCES = ("available", "busy", "away", "offline")
CHANNELS = ("voice", "chat", "email")
DEFAULT_CAPACITIES = {"voice": 1, "chat": 5, "email": 10}
MAX_CAPACITY = 100
DECLINE_COOLDOWN_SECONDS = 60.0  # an agent who rejected or missed a task is not offered it again for a while
MAX_WORKFLOW_DEPTH = 8


def channel_of(conversation_channel: str) -> str:
    """Map a conversation channel to the capacity channel it consumes."""
    if conversation_channel in ("voice", "phone", "sip"):
        return "voice"
    if conversation_channel == "email":
        return "email"
    return "chat"


# --- views -------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class AgentView:
    """What routing knows about one agent; ``load`` is mutated as ``route`` hands out tasks."""

    id: str
    attributes: dict[str, Any]  # what expressions see: skills, languages, groups, vip, attributes, id
    presence: str
    capacities: dict[str, int]
    load: dict[str, int]
    last_offered_at: float = 0.0  # epoch seconds of the last offer; 0 = never (longest idle)

    def free(self, channel: str) -> int:
        return self.capacities.get(channel, 0) - self.load.get(channel, 0)

    def occupancy(self) -> float:
        total = sum(self.capacities.values()) or 1
        return sum(self.load.values()) / total

    def has_room(self) -> bool:
        return any(self.capacities.get(ch, 0) > self.load.get(ch, 0) for ch in self.capacities)


@dataclass(frozen=True, slots=True)
class QueueView:
    id: str
    expression: str | None
    offer_timeout_seconds: float = 30.0
    auto_accept: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """One step of a workflow filter; ``workflow_id`` instead of ``queue_id`` continues in another workflow."""

    queue_id: str | None = None
    workflow_id: str | None = None
    priority: int | None = None
    timeout_seconds: float | None = None  # measured from the task's creation
    expression: str | None = None  # extra agent condition; may reference task.*
    skip_if_no_agents: bool = False


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    expression: str
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class WorkflowView:
    id: str
    filters: tuple[Filter, ...]
    default_targets: tuple[Target, ...]
    sticky_seconds: float = 0.0


@dataclass(slots=True)
class TaskView:
    id: str
    channel: str
    priority: int
    attributes: dict[str, Any]
    created_at: float
    workflow_id: str | None = None
    pinned_queue_id: str | None = None
    pinned_agent_id: str | None = None
    preferred_agent_id: str | None = None
    declined: dict[str, float] = field(default_factory=dict)  # agent id -> epoch until which not to offer
    queue_id: str | None = None  # current step as stored (to report changes)
    step: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    task_id: str
    agent_id: str
    queue_id: str | None
    step: int | None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a task currently waits: its queue, step index and effective priority."""

    task_id: str
    queue_id: str | None
    step: int | None
    priority: int


@dataclass
class RouteResult:
    decisions: list[Decision]
    placements: dict[str, Placement]


def task_subject(task: TaskView) -> dict[str, Any]:
    """The dict that workflow filters and ``task.*`` paths read."""
    return {**task.attributes, "channel": task.channel, "priority": task.priority}


# --- workflows ---------------------------------------------------------------------------------------------

def targets_for(task: TaskView, workflows: dict[str, WorkflowView], workflow_id: str | None,
                subject: dict[str, Any] | None = None, depth: int = 0,
                matcher: Matcher | None = None) -> list[Target]:
    """The ordered targets of the first filter matching the task (else the defaults), delegations expanded."""
    workflow = workflows.get(workflow_id or "")
    if workflow is None or depth > MAX_WORKFLOW_DEPTH:
        return []
    subject = subject if subject is not None else task_subject(task)
    chosen = workflow.default_targets
    index = matcher.filter_index(workflow, subject) if matcher is not None else _first_filter(workflow, subject)
    if index is not None:
        chosen = workflow.filters[index].targets
    out: list[Target] = []
    for target in chosen:
        if target.workflow_id is not None:
            out.extend(targets_for(task, workflows, target.workflow_id, subject, depth + 1, matcher))
        else:
            out.append(target)
    return out


def _first_filter(workflow: WorkflowView, subject: dict[str, Any]) -> int | None:
    for index, item in enumerate(workflow.filters):
        if _safe_eval(item.expression, subject):
            return index
    return None


def _safe_eval(expression: str, subject: dict[str, Any]) -> bool:
    try:
        return compiled(expression).evaluate(subject, subject)
    except ExpressionError:
        return False


def workflow_references(targets: Iterable[Target]) -> set[str]:
    return {t.workflow_id for t in targets if t.workflow_id}


def find_cycle(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """Return a cycle through workflow delegations reachable from ``start`` (as a path), or None."""
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in on_path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        on_path.add(node)
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt)
            if found:
                return found
        on_path.discard(node)
        path.pop()
        done.add(node)
        return None

    return visit(start)


# --- eligibility -------------------------------------------------------------------------------------------

class Matcher:
    """Caches which agents an expression admits, per distinct values of the task attributes it reads.

    Agents' attributes change rarely and expressions are evaluated for every task, so the engine keeps one
    Matcher per tenant and calls ``reset`` when any agent's attributes change (``signature`` differs).
    """

    def __init__(self) -> None:
        self.signature: Any = None
        self._cache: dict[tuple[str, tuple[Any, ...]], frozenset[str]] = {}
        self._task_of: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}  # a task each entry was made for
        self._parsed: dict[str, Expression] = {}  # the (part of an) expression each entry evaluates
        self._filters: dict[tuple[Any, ...], int | None] = {}
        self._filter_paths: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}
        self._workflow_keys: dict[int, tuple[WorkflowView, tuple[str, ...]]] = {}

    def reset(self, signature: Any) -> None:
        if signature != self.signature:
            self.signature = signature
            self._cache.clear()
            self._task_of.clear()

    def update_agents(self, changed: Iterable[AgentView], removed: Iterable[str],
                      agents: dict[str, AgentView]) -> None:
        """Keep the cached eligibility exact after some agents' attributes changed, appeared or went away:
        only those agents are re-evaluated against each cached entry (a full recomputation costs one
        evaluation per agent for every entry)."""
        changed, removed = list(changed), set(removed)
        if len(changed) > max(50, len(agents) // 4):
            self._cache.clear()
            self._task_of.clear()
            return
        for key, found in list(self._cache.items()):
            parsed = self._parsed.get(key[0])
            if parsed is None:
                self._cache.pop(key, None)
                continue
            task = self._task_of.get(key, {})
            members = set(found) - removed
            for agent in changed:
                if parsed.evaluate(agent.attributes, task, agent.attributes):
                    members.add(agent.id)
                else:
                    members.discard(agent.id)
            self._cache[key] = frozenset(members)

    def filter_index(self, workflow: WorkflowView, subject: dict[str, Any]) -> int | None:
        """``_first_filter`` cached by the values of the task attributes the workflow's filters read."""
        known = self._workflow_keys.get(id(workflow))
        if known is None or known[0] is not workflow:  # ids are reused once an object is gone: check identity
            if len(self._workflow_keys) > 1000:
                self._workflow_keys.clear()
            known = self._workflow_keys[id(workflow)] = (workflow, tuple(f.expression for f in workflow.filters))
        expressions = known[1]
        paths = self._filter_paths.get(expressions)
        if paths is None:
            collected: list[tuple[str, ...]] = []
            for text in expressions:
                try:
                    parsed = compiled(text)
                except ExpressionError:
                    continue
                collected.extend(parsed.subject_paths)
                collected.extend(parsed.task_paths)
            paths = self._filter_paths[expressions] = tuple(dict.fromkeys(collected))
        key = (expressions, tuple(_hashable(lookup(subject, p)) for p in paths))
        if key not in self._filters:
            if len(self._filters) > 50_000:
                self._filters.clear()
            self._filters[key] = _first_filter(workflow, subject)
        return self._filters[key]

    def matching(self, expression: str | None, task: dict[str, Any], agents: dict[str, AgentView]) -> frozenset[str] | None:
        """Agent ids the expression admits for this task; None means "every agent" (no expression)."""
        if not expression:
            return None
        try:
            parsed: Expression = compiled(expression)
        except ExpressionError:
            return frozenset()
        return self._matching(parsed, task, agents)

    def _matching(self, parsed: Expression, task: dict[str, Any], agents: dict[str, AgentView]) -> frozenset[str]:
        key = (parsed.source, tuple(_hashable(lookup(task, p)) for p in parsed.task_paths))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 50_000:
                self._cache.clear()
                self._task_of.clear()
            candidates: Iterable[AgentView] = agents.values()
            free, bound = split_task_free(parsed)
            if free is not None and bound is not None:
                # Only agents passing the task-free operands (cached once per expression) are evaluated for
                # this task's values: a new task value costs a fraction of one evaluation per agent.
                candidates = [agents[a] for a in self._matching(free, {}, agents) if a in agents]
                parsed_for_task = bound
            else:
                parsed_for_task = parsed
            found = frozenset(a.id for a in candidates
                              if parsed_for_task.evaluate(a.attributes, task, a.attributes))
            self._cache[key] = found
            self._task_of[key] = task
            self._parsed[parsed.source] = parsed
        return found


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


# --- the decision ------------------------------------------------------------------------------------------

def route(
    *,
    tasks: list[TaskView],
    agents: dict[str, AgentView],
    queues: dict[str, QueueView],
    workflows: dict[str, WorkflowView],
    default_workflow_id: str | None,
    now: float,
    matcher: Matcher | None = None,
    idle_order: Iterable[str] | None = None,
) -> RouteResult:
    """Decide offers for waiting ``tasks``: highest priority first, then oldest; longest-idle eligible agent.

    ``agents`` loads are updated in place for each decision, so capacity is respected within one call.
    ``idle_order``, if given, is the caller's incrementally kept list of the agents available with room, in
    the order below (saves sorting every agent on each call). Returns the decisions and, for every task, where
    it now waits (its active workflow target).
    """
    matcher = matcher or Matcher()
    # Agents free for anything, longest idle first, then least occupied; an agent who gets a task moves
    # to the back (a dict keeps insertion order, so this is a cheap rotating queue).
    if idle_order is None:
        idle_order = (a.id for a in sorted((a for a in agents.values() if a.presence == "available" and a.has_room()),
                                           key=lambda a: (a.last_offered_at, a.occupancy(), a.id)))
    order: dict[str, None] = dict.fromkeys(idle_order)
    exhausted: set[tuple[frozenset[str] | None, str]] = set()  # (allowed, channel) with no free agent left
    plans: list[tuple[int, float, str, TaskView, Placement, frozenset[str] | None, bool]] = []
    placements: dict[str, Placement] = {}
    for task in tasks:
        plan = _place(task, agents, queues, workflows, default_workflow_id, now, matcher, order)
        placements[task.id] = plan[0]
        plans.append((-plan[0].priority, task.created_at, task.id, task, plan[0], plan[1], plan[2]))
    plans.sort(key=lambda p: (p[0], p[1], p[2]))
    decisions: list[Decision] = []
    for _prio, _created, _id, task, placement, allowed, routable in plans:
        if not routable or not order or (allowed, task.channel) in exhausted:
            continue
        agent_id = _choose(task, allowed, agents, order, now)
        if agent_id is None:
            if not task.declined:  # capacity only shrinks within a call: the same candidates stay full
                exhausted.add((allowed, task.channel))
            continue
        agent = agents[agent_id]
        agent.load[task.channel] = agent.load.get(task.channel, 0) + 1
        agent.last_offered_at = now
        order.pop(agent_id, None)
        if agent.has_room():
            order[agent_id] = None
        decisions.append(Decision(task.id, agent_id, placement.queue_id, placement.step))
    return RouteResult(decisions, placements)


def _place(task: TaskView, agents: dict[str, AgentView], queues: dict[str, QueueView],
           workflows: dict[str, WorkflowView], default_workflow_id: str | None, now: float, matcher: Matcher,
           order: dict[str, None]) -> tuple[Placement, frozenset[str] | None, bool]:
    """Find the task's active target: (placement, agents allowed, whether it can be routed at all)."""
    subject = task_subject(task)
    if task.pinned_agent_id is not None:
        queue_id = task.pinned_queue_id or task.queue_id
        return Placement(task.id, queue_id, task.step, task.priority), frozenset({task.pinned_agent_id}), True
    if task.pinned_queue_id is not None:
        targets = [Target(queue_id=task.pinned_queue_id)]
    else:
        targets = targets_for(task, workflows, task.workflow_id or default_workflow_id, subject, matcher=matcher)
    age = now - task.created_at
    chosen: tuple[int, Target] | None = None
    for index, target in enumerate(targets):
        last = index == len(targets) - 1
        if target.timeout_seconds is not None and age >= target.timeout_seconds and not last:
            continue
        queue = queues.get(target.queue_id or "")
        if queue is None:
            continue
        if target.skip_if_no_agents and not last:
            allowed = _allowed(queue, target, subject, agents, matcher)
            if not any(_can_take(agents[a], task, now) for a in (allowed if allowed is not None else order)
                       if a in order):
                continue
        chosen = (index, target)
        break
    if chosen is None:
        return Placement(task.id, None, None, task.priority), frozenset(), False
    index, target = chosen
    queue = queues[target.queue_id or ""]
    priority = target.priority if target.priority is not None else task.priority
    allowed = _allowed(queue, target, subject, agents, matcher)
    workflow = workflows.get(task.workflow_id or default_workflow_id or "")
    sticky = workflow.sticky_seconds if workflow is not None else 0.0
    preferred = task.preferred_agent_id
    if preferred and age < sticky and preferred in agents and agents[preferred].presence != "offline" \
            and (allowed is None or preferred in allowed) and task.declined.get(preferred, 0.0) <= now:
        allowed = frozenset({preferred})
    return Placement(task.id, queue.id, index, priority), allowed, True


def _allowed(queue: QueueView, target: Target, subject: dict[str, Any], agents: dict[str, AgentView],
             matcher: Matcher) -> frozenset[str] | None:
    return _intersect(matcher.matching(queue.expression, subject, agents),
                      matcher.matching(target.expression, subject, agents))


def _can_take(agent: AgentView, task: TaskView, now: float) -> bool:
    return agent.presence == "available" and agent.free(task.channel) > 0 and task.declined.get(agent.id, 0.0) <= now


def _choose(task: TaskView, allowed: frozenset[str] | None, agents: dict[str, AgentView], order: dict[str, None],
            now: float) -> str | None:
    """The first agent in idle order who may and can take the task.

    Walking the idle order costs about len(order)/len(allowed) steps per hit; ranking the allowed agents
    costs len(allowed): the cheaper of the two is used, with the same answer.
    """
    if allowed is not None and len(allowed) * len(allowed) < len(order):
        best: tuple[float, float, str] | None = None
        for agent_id in allowed:
            agent = agents.get(agent_id)
            if agent is None or agent_id not in order or not _can_take(agent, task, now):
                continue
            key = (agent.last_offered_at, agent.occupancy(), agent_id)
            if best is None or key < best:
                best = key
        return best[2] if best else None
    for agent_id in order:
        if allowed is not None and agent_id not in allowed:
            continue
        if _can_take(agents[agent_id], task, now):
            return agent_id
    return None
