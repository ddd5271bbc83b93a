"""A discrete-event simulation of the contact center on a simulated clock, deciding with the real engine.

Poisson arrivals, exponential handle times and (optionally) exponential customer patience; every routing
decision is ``policies.route`` (the function the persistent engine calls), with offers accepted at once.
Used by ``kefu routing simulate``, by ``bench/routing.py`` and by the Erlang C comparison test.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any

from kefu.routing import policies

QUEUE_ID = "que_sim"
WORKFLOW_ID = "wf_sim"


@dataclass(frozen=True)
class SimulationConfig:
    agents: int
    arrival_rate_per_hour: float
    aht_seconds: float
    hours: float
    sl_target_seconds: float = 20.0
    patience_seconds: float | None = None  # mean patience; None = nobody abandons
    seed: int = 1
    warmup_hours: float = 0.0  # contacts arriving before this are served but not counted
    channel: str = "voice"


def simulate(config: SimulationConfig) -> dict[str, Any]:
    """Run the simulation; return offered, answered, abandoned, ASA, P(wait), service level and occupancy."""
    rng = random.Random(config.seed)
    capacities = {"voice": 0, "chat": 0, "email": 0, config.channel: 1}
    agents = {f"agt_{i:05d}": policies.AgentView(f"agt_{i:05d}", {"skills": {}}, "available", dict(capacities), {})
              for i in range(config.agents)}
    queues = {QUEUE_ID: policies.QueueView(QUEUE_ID, None, 30.0, True)}
    workflows = {WORKFLOW_ID: policies.WorkflowView(WORKFLOW_ID, (), (policies.Target(queue_id=QUEUE_ID),))}
    matcher = policies.Matcher()
    start = config.warmup_hours * 3600.0
    end = start + config.hours * 3600.0
    rate = config.arrival_rate_per_hour / 3600.0
    events: list[tuple[float, int, str, str]] = []
    seq = 0

    def push(at: float, kind: str, ref: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, ref))

    if rate > 0:
        push(rng.expovariate(rate), "arrival", "")
    waiting: dict[str, policies.TaskView] = {}
    assigned_to: dict[str, str] = {}
    offered = answered = abandoned = waited = within = 0
    wait_total = 0.0
    busy_time = 0.0
    busy_agents = 0
    last_time = start
    counter = 0
    while events:
        now, _, kind, ref = heapq.heappop(events)
        if now > start:
            span_start = max(last_time, start)
            busy_time += busy_agents * (min(now, end) - min(span_start, end)) if span_start < end else 0.0
            last_time = now
        if kind == "arrival":
            if now < end:
                counter += 1
                task_id = f"tsk_{counter:09d}"
                waiting[task_id] = policies.TaskView(task_id, config.channel, 0, {}, now)
                if config.patience_seconds:
                    push(now + rng.expovariate(1.0 / config.patience_seconds), "abandon", task_id)
                push(now + rng.expovariate(rate), "arrival", "")
        elif kind == "abandon":
            task = waiting.pop(ref, None)
            if task is not None and task.created_at >= start:
                offered += 1
                abandoned += 1
                waited += 1
        elif kind == "done":
            agent = agents[assigned_to.pop(ref)]
            agent.load[config.channel] -= 1
            busy_agents -= 1
        if waiting and busy_agents < config.agents:
            result = policies.route(tasks=list(waiting.values()), agents=agents, queues=queues, workflows=workflows,
                                    default_workflow_id=WORKFLOW_ID, now=now, matcher=matcher)
            for decision in result.decisions:
                task = waiting.pop(decision.task_id)
                assigned_to[task.id] = decision.agent_id
                busy_agents += 1
                push(now + rng.expovariate(1.0 / config.aht_seconds), "done", task.id)
                if task.created_at >= start:
                    wait = now - task.created_at
                    offered += 1
                    answered += 1
                    wait_total += wait
                    waited += wait > 1e-9
                    within += wait <= config.sl_target_seconds
    duration = config.hours * 3600.0
    return {
        "agents": config.agents, "arrival_rate_per_hour": config.arrival_rate_per_hour,
        "aht_seconds": config.aht_seconds, "hours": config.hours, "seed": config.seed,
        "offered": offered, "answered": answered, "abandoned": abandoned,
        "asa_seconds": round(wait_total / answered, 4) if answered else None,
        "p_wait": round(waited / offered, 6) if offered else None,
        "service_level": round(within / offered, 6) if offered else None,
        "abandonment_rate": round(abandoned / offered, 6) if offered else None,
        "occupancy": round(busy_time / (config.agents * duration), 6) if config.agents and duration else None,
        "sl_target_seconds": config.sl_target_seconds,
    }
