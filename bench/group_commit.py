"""Group commit in process: CPU per transaction of widget messages, and what one hot-path statement costs.

No sockets and no other load: this isolates the committer's own cost, in particular its fixed cost per
transaction (a batch of 1 message), which decides the cycle time and so the latency of the chat round trip
(bench/chat_roundtrip.py). The event loop thread's share is printed apart: on SQLite a large batch's writes
and its commit run on the connection's worker thread (kefu/core/sqlite_inline.py). Also times one
``SELECT … WHERE id IN (…)`` written the ways the code can write it, and the id generator every message and
event uses.
Prints medians of ``--runs`` batches per size with the machine's core count; a fresh SQLite file per run.
The process collects garbage as ``kefu serve`` does (``kefu.runtime.prepare_serving_process``).

``--instructions`` counts instead of timing: it runs the batches under valgrind's callgrind (Debian package
``valgrind``) twice per size, with ``--runs`` and three times as many transactions, and prints the difference
per transaction and per message: CPU instructions of every thread, which other load on the machine does not
change, so two trees compare in one run each (slow: about a minute per size).
Usage: ``.venv/bin/python bench/group_commit.py [--sizes 1 20 200] [--runs 8] [--instructions | --opening]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, select  # noqa: E402

from kefu.channels import actions as channel_actions  # noqa: E402
from kefu.channels import visitor_tokens  # noqa: E402
from kefu.channels.models import Inbox  # noqa: E402
from kefu.channels.schemas import InboxCreate, WidgetSessionCreate  # noqa: E402
from kefu.core.db import run_core  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402
from kefu.core.settings import Settings  # noqa: E402
from kefu.runtime import Runtime, build_runtime, prepare_serving_process  # noqa: E402
from kefu.tenants import actions as tenant_actions  # noqa: E402
from kefu.tenants.schemas import TenantCreate  # noqa: E402

BODY = "您好，我的订单 202611220001 什么时候发货？Where is my parcel? " * 2


async def widget_visitors(runtime: Runtime, count: int) -> list[visitor_tokens.VisitorClaims]:
    """A tenant with one web chat inbox and ``count`` widget visitors (their sessions' claims)."""
    uow = runtime.unit_of_work()
    tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug="bench", name="Bench"))
    inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="web"))
    claims = []
    for _ in range(count):
        widget = await channel_actions.do_start_widget_session(
            uow, settings=runtime.settings, data=WidgetSessionCreate(inbox_id=inbox.id), locale="zh")
        claims.append(visitor_tokens.verify(runtime.settings.secret_key, widget.visitor_token))
    await uow.commit()
    await uow.session.close()
    return claims


async def batches(size: int, runs: int, opening: bool = False) -> tuple[list[float], list[float]]:
    """CPU milliseconds of each of ``runs`` group-commit transactions of ``size`` widget messages (after one
    warm-up transaction that also opens the conversations): the whole process's, and the event loop thread's
    alone (on SQLite the batch's writes and commit run on the connection's worker thread). With ``opening``
    every message is a new visitor's first: each opens a conversation and its routing task."""
    directory = Path(tempfile.mkdtemp(prefix="kefu-gc-"))
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    runtime = build_runtime(Settings(database_url=url, environment="development"))
    try:
        claims = await widget_visitors(runtime, size * (runs + 1) if opening else size)
        cpu, loop_cpu = [], []
        for run in range(runs + 1):
            group = claims[run * size:(run + 1) * size] if opening else claims
            posts = [channel_actions.VisitorPost(claims=c, body=BODY, client_message_id=f"{run}-{i}")
                     for i, c in enumerate(group)]
            started, loop_started = time.process_time(), time.thread_time()
            await runtime.committer.run_batched_many(channel_actions.do_post_visitor_messages, posts)
            if run:  # the first one opens the conversations
                cpu.append((time.process_time() - started) * 1000)
                loop_cpu.append((time.thread_time() - loop_started) * 1000)
        return cpu, loop_cpu
    finally:
        await runtime.stop()
        shutil.rmtree(directory, ignore_errors=True)


def instructions(size: int, runs: int) -> float:
    """CPU instructions per transaction of ``size`` messages: callgrind's total for ``3 * runs`` transactions
    less its total for ``runs`` (start-up, migrations and set-up cancel out), over ``2 * runs``."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")

    def total(count: int) -> int:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
             "--only-batches", str(size), str(count)],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        return int(re.search(r"Collected : (\d+)", done.stderr).group(1))  # type: ignore[union-attr]

    return (total(3 * runs) - total(runs)) / (2 * runs)


async def statement_costs(calls: int) -> dict[str, float]:
    """CPU microseconds per call of one small select on the committer's inline connection, written five ways
(``run_core`` skips SQLAlchemy's execution there, kefu/core/inline_statements.py)."""
    directory = Path(tempfile.mkdtemp(prefix="kefu-stmt-"))
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    runtime = build_runtime(Settings(database_url=url, environment="development"))
    ids = ["inb_a", "inb_b"]
    table = Inbox.__table__
    prebuilt = select(table.c.id, table.c.tenant_id).where(table.c.id.in_(bindparam("ids", expanding=True)))
    results: dict[str, float] = {}
    try:
        async with runtime.committer._sessionmaker() as session:  # the inline engine on SQLite
            connection = await session.connection()
            raw = (await connection.get_raw_connection()).driver_connection

            async def raw_call() -> object:
                async with raw.execute("SELECT id, tenant_id FROM inboxes WHERE id IN (?, ?)", ids) as cursor:
                    return await cursor.fetchall()

            ways = {
                "ORM entity select, built per call": lambda: session.scalars(select(Inbox).where(Inbox.id.in_(ids))),
                "ORM column select, built per call": lambda: session.execute(
                    select(Inbox.id, Inbox.tenant_id).where(Inbox.id.in_(ids))),
                "pre-built Core statement, SQLAlchemy": lambda: connection.execute(prebuilt, {"ids": ids}),
                "pre-built, run_core on the committer's": lambda: run_core(session, prebuilt, {"ids": ids}),
                "raw driver call": raw_call,
            }
            for name, call in ways.items():
                for _ in range(50):
                    await call()
                started = time.process_time()
                for _ in range(calls):
                    await call()
                results[name] = (time.process_time() - started) / calls * 1e6
    finally:
        await runtime.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20, 200])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--instructions", action="store_true", help="count CPU instructions under callgrind")
    parser.add_argument("--opening", action="store_true",
                        help="every message is a new visitor's first: it opens a conversation (timing only)")
    parser.add_argument("--only-batches", nargs=2, type=int, metavar=("SIZE", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.opening and args.instructions:
        parser.error("--opening is measured by timing only")
    prepare_serving_process()
    if args.only_batches:  # one process counted by --instructions
        await batches(*args.only_batches)
        return
    if args.instructions:
        print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  runs: {args.runs} and {3 * args.runs}")
        for size in args.sizes:
            count = instructions(size, args.runs)
            print(f"  transaction of {size:4d} widget messages: {count / 1e3:9.0f} k instructions"
                  f" ({count / size / 1e3:6.0f} k per message)")
        return
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  runs: {args.runs}  load: {os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        cpu, loop_cpu = await batches(size, args.runs, args.opening)
        median, loop_median = statistics.median(cpu), statistics.median(loop_cpu)
        kind = "first messages" if args.opening else "widget messages"
        print(f"  transaction of {size:4d} {kind}: median CPU {median:6.2f} ms"
              f" ({median * 1000 / size:6.0f} µs per message), of it the event loop's thread {loop_median:6.2f} ms"
              f" ({loop_median * 1000 / size:6.0f} µs per message)")
    for name, micros in (await statement_costs(args.calls)).items():
        print(f"  {name:38s} {micros:6.1f} µs CPU per call")
    started = time.process_time()
    for _ in range(100_000):  # one per message and per event of every batch
        new_id("msg")
    print(f"  {'new_id (kefu.core.ids)':38s} {(time.process_time() - started) * 10:6.2f} µs CPU per id")


if __name__ == "__main__":
    asyncio.run(main())
