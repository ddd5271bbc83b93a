"""Routing engine benchmark: 1,000 agents, 50 queues, 20,000 tasks, on SQLite and on PostgreSQL.

For each database and each of ``--runs`` runs, on a fresh database:
  * throughput: 20,000 waiting tasks, 1,000 available agents with 20 chat slots each; routing passes (the
    persistent engine exactly as the node's loop runs it: lock, decide, write offers, commit) until every
    task is offered. Reports offers persisted per second, and the pure decision rate (``policies.route``
    alone, in memory, same data, with a warm eligibility cache);
  * latency: tasks arrive one at a time (each committed on its own) while agents are free; each arrival is
    followed by a routing pass, as the loop does when the task-created event wakes it (no housekeeping, so
    the node's agent cache is not re-read: it is kept by the passes' own offers). Reports the time from the
    task's commit (ready) to its offer's commit, p50 and p99, after ``--warmup`` arrivals (the first arrival
    of each queue × language combination fills an eligibility-cache entry: the task-free part of the queue's
    expression once per queue, then the language test over the ~100 agents with that skill).
Like a node's start-up (``Runtime.start``), each run checkpoints SQLite's WAL from a background thread and the
process freezes its start-up heap out of the garbage collector (once); ``--baseline`` runs without both and
with SQLite's default auto-checkpoint (1,000 pages), to compare back to back with the configuration before.
Also runs ``kefu routing simulate`` once for a reference point. Medians over runs are printed with the core
count. Usage: ``.venv/bin/python bench/routing.py [--runs 3] [--tasks 20000] [--agents 1000] [--queues 50]
[--latency-tasks 500] [--databases sqlite postgres] [--latency-only] [--baseline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from kefu.auth.models import User  # noqa: E402
from kefu.core import db  # noqa: E402
from kefu.core.clock import utcnow  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402
from kefu.core.settings import Settings  # noqa: E402
from kefu.routing import actions, policies, service  # noqa: E402
from kefu.routing.models import AgentProfile, Offer, Task  # noqa: E402
from kefu.routing.schemas import QueueCreate, TargetIn, WorkflowCreate  # noqa: E402
from kefu.runtime import build_runtime, freeze_startup_heap  # noqa: E402
from kefu.tenants.models import Tenant  # noqa: E402

PG_ADMIN = os.environ.get("KEFU_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


async def setup_tenant(runtime, *, agents: int, queues: int, seed: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """A tenant with ``agents`` available agents (5 of the ``queues`` skills each) and one queue per skill."""
    rng = random.Random(seed)
    now = utcnow()
    tenant_id = new_id("ten")
    async with runtime.sessionmaker() as session:
        await session.execute(insert(Tenant), [{"id": tenant_id, "slug": f"bench-{uuid.uuid4().hex[:10]}",
                                                "name": "bench", "default_locale": "zh", "settings": {},
                                                "created_at": now}])
        users = [{"id": new_id("usr"), "tenant_id": tenant_id, "email": f"a{i}-{uuid.uuid4().hex[:8]}@bench.test",
                  "display_name": f"agent {i}", "role": "agent", "locale": "zh", "password_hash": "-",
                  "is_active": True, "version": 1, "created_at": now, "updated_at": now} for i in range(agents)]
        await session.execute(insert(User), users)
        await session.execute(insert(AgentProfile), [{
            "user_id": u["id"], "tenant_id": tenant_id,
            "skills": {f"s{k}": rng.randint(1, 3) for k in rng.sample(range(queues), 5)},
            "languages": ["zh", "en"] if rng.random() < 0.5 else ["zh"], "groups": [], "vip": rng.random() < 0.1,
            "attributes": {}, "capacities": {"voice": 1, "chat": 20, "email": 10}, "presence": "available",
            "presence_reason": None, "presence_since": now, "last_offered_at": None, "version": 1,
            "created_at": now, "updated_at": now} for u in users])
        await session.commit()
    uow = runtime.unit_of_work()
    try:
        queue_ids = []
        for k in range(queues):
            queue = await actions.do_create_queue(uow, tenant_id=tenant_id, data=QueueCreate(
                name=f"q{k}", target_expression=f"skills.s{k} >= 1 AND languages HAS task.language",
                offer_timeout_seconds=3600))
            queue_ids.append(queue.id)
        everyone = await actions.do_create_queue(uow, tenant_id=tenant_id, data=QueueCreate(
            name="all", offer_timeout_seconds=3600))
        await actions.do_create_workflow(uow, tenant_id=tenant_id, data=WorkflowCreate(
            name="bench", is_default=True, default_targets=[TargetIn(queue_id=everyone.id)],
            filters=[{"name": f"c{k}", "expression": f"category == 'c{k}'",  # type: ignore[list-item]
                      # Specialists first; when they are all full, overflow at once instead of after 30 s.
                      "targets": [{"queue_id": queue_ids[k], "timeout_seconds": 30, "skip_if_no_agents": True},
                                  {"queue_id": everyone.id}]}
                     for k in range(queues)]))
        await uow.commit()
    finally:
        await uow.session.close()
    return tenant_id, queues


def task_rows(tenant_id: str, count: int, queues: int, rng: random.Random) -> list[dict]:
    now = utcnow()
    return [{"id": new_id("tsk"), "tenant_id": tenant_id, "conversation_id": None, "live_conversation_id": None,
             "contact_id": None, "channel": "chat", "status": "waiting", "priority": rng.choice((0, 0, 0, 5)),
             "attributes": {"category": f"c{rng.randrange(queues)}", "language": rng.choice(("zh", "en"))},
             "enriched": True, "declined": {}, "offer_count": 0, "version": 1,
             "created_at": now + timedelta(microseconds=i), "updated_at": now} for i in range(count)]


async def throughput(runtime, *, agents: int, queues: int, tasks: int, seed: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    tenant_id, _ = await setup_tenant(runtime, agents=agents, queues=queues, seed=seed)
    rng = random.Random(seed)
    async with runtime.sessionmaker() as session:
        rows = task_rows(tenant_id, tasks, queues, rng)
        for start in range(0, len(rows), 2000):
            await session.execute(insert(Task), rows[start:start + 2000])
        await session.commit()
    pure = await pure_rate(runtime, tenant_id)
    made = 0
    started = time.perf_counter()
    while True:
        uow = runtime.unit_of_work()
        try:
            step = await actions.route_tenant(uow, tenant_id=tenant_id)
            await uow.commit()
        finally:
            await uow.session.close()
        made += step
        if step == 0:
            break
    elapsed = time.perf_counter() - started
    async with runtime.sessionmaker() as session:
        offers = await session.scalar(select(func.count()).select_from(Offer).where(Offer.tenant_id == tenant_id))
    assert offers == made == tasks, (offers, made, tasks)
    return made / elapsed, pure


async def pure_rate(runtime, tenant_id: str) -> float:  # type: ignore[no-untyped-def]
    """Decisions per second of ``policies.route`` alone on the same agents, queues and tasks (no I/O)."""
    async with runtime.sessionmaker() as session:
        profiles = list(await session.scalars(select(AgentProfile).where(AgentProfile.tenant_id == tenant_id)))
        _, queue_views, workflows, default = await service.routing_config(session=session, tenant_id=tenant_id)
        rows = list(await session.scalars(select(Task).where(Task.tenant_id == tenant_id, Task.status == "waiting")))
    agents = {p.user_id: policies.AgentView(p.user_id, service.agent_subject(p), "available",
                                            service.capacities_of(p.capacities), {}) for p in profiles}
    tasks = [policies.TaskView(t.id, t.channel, t.priority, t.attributes, t.created_at.timestamp()) for t in rows]
    matcher = policies.Matcher()
    rates = []
    for _ in range(2):  # first with an empty eligibility cache, then warm (as a running node is)
        for agent in agents.values():
            agent.load = {}
            agent.last_offered_at = 0.0
        started = time.perf_counter()
        decided = 0
        for start in range(0, len(tasks), actions.PASS_LIMIT):
            result = policies.route(tasks=tasks[start:start + actions.PASS_LIMIT], agents=agents,
                                    queues=queue_views, workflows=workflows, default_workflow_id=default,
                                    now=time.time(), matcher=matcher)
            decided += len(result.decisions)
        rates.append(decided / (time.perf_counter() - started))
    return rates[-1]


async def latency(runtime, *, agents: int, queues: int, count: int, seed: int,  # type: ignore[no-untyped-def]
                  warmup: int) -> list[float]:
    tenant_id, _ = await setup_tenant(runtime, agents=agents, queues=queues, seed=seed + 1000)
    rng = random.Random(seed)
    samples = []
    for index in range(warmup + count):
        async with runtime.sessionmaker() as session:
            await session.execute(insert(Task), task_rows(tenant_id, 1, queues, rng))
            await session.commit()
        ready = time.perf_counter()
        uow = runtime.unit_of_work()
        try:
            made = await actions.route_tenant(uow, tenant_id=tenant_id, housekeeping=False)  # an event-woken pass
            await uow.commit()
        finally:
            await uow.session.close()
        if index >= warmup:  # until the eligibility cache has seen most queue × language combinations
            samples.append((time.perf_counter() - ready) * 1000)
        assert made == 1
    return samples


async def one_run(url: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    runtime = build_runtime(Settings(database_url=url, environment="test", log_level="WARNING"))
    if not args.baseline:  # what Runtime.start does besides starting the bus and the outbox relay
        if runtime.checkpointer is not None:
            runtime.checkpointer.start()
        freeze_startup_heap()
    try:
        rate = pure = float("nan")
        if not args.latency_only:
            rate, pure = await throughput(runtime, agents=args.agents, queues=args.queues, tasks=args.tasks,
                                          seed=seed)
        samples = await latency(runtime, agents=args.agents, queues=args.queues, count=args.latency_tasks, seed=seed,
                                warmup=args.warmup)
    finally:
        if runtime.checkpointer is not None:
            runtime.checkpointer.stop()
        await runtime.engine.dispose()
    return {"persisted_per_s": rate, "decisions_per_s": pure, "p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99)}


async def fresh_database(kind: str, folder: str) -> tuple[str, object]:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder}/bench-{uuid.uuid4().hex[:8]}.db"
        await asyncio.to_thread(upgrade, url)
        return url, None
    import asyncpg

    name = f"kefu_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    await asyncio.to_thread(upgrade, url)
    return url, name


async def drop_database(name: object) -> None:
    if name is None:
        return
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--latency-tasks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=200, help="arrivals routed before latency is measured")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput part and the simulator")
    parser.add_argument("--baseline", action="store_true",
                        help="no background WAL checkpoints, SQLite's default auto-checkpoint, no gc freeze")
    args = parser.parse_args()
    if args.baseline:
        db.SQLITE_AUTOCHECKPOINT_PAGES = 1000
    print(f"cores: {os.cpu_count()}  agents: {args.agents}  queues: {args.queues}  tasks: {args.tasks}  "
          f"runs: {args.runs} (medians){'  BASELINE' if args.baseline else ''}")
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.databases:
            runs = []
            for run in range(args.runs):
                url, handle = await fresh_database(kind, folder)
                try:
                    runs.append(await one_run(url, args, seed=run + 1))
                finally:
                    await drop_database(handle)
                print(f"  {kind} run {run + 1}: " + ", ".join(f"{k}={v:,.1f}" for k, v in runs[-1].items())
                      + f"  (load average {os.getloadavg()[0]:.1f})", flush=True)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{kind:>8}: offers persisted/s {med['persisted_per_s']:,.0f} | pure decisions/s "
                  f"{med['decisions_per_s']:,.0f} | ready→offer p50 {med['p50_ms']:.2f} ms, p99 {med['p99_ms']:.2f} ms")
    if args.latency_only:
        return
    from kefu.routing.simulation import SimulationConfig, simulate

    started = time.perf_counter()
    result = simulate(SimulationConfig(agents=50, arrival_rate_per_hour=540, aht_seconds=300, hours=100, seed=1))
    elapsed = time.perf_counter() - started
    print(f"simulate: 50 agents, 540/h, AHT 300 s, 100 h: {result['offered']:,} contacts in {elapsed:.1f} s "
          f"({result['offered'] / elapsed:,.0f} simulated contacts/s); ASA {result['asa_seconds']} s, "
          f"P(wait) {result['p_wait']}, SL {result['service_level']}, occupancy {result['occupancy']}")


if __name__ == "__main__":
    asyncio.run(main())
