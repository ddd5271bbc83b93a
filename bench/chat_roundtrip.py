"""Chat round trip: N widget customers talk to agents through a real kefu node; compared to a bare echo.

For each N (default 100 and 1,000) and each of ``--runs`` runs, on a fresh SQLite database:
  * paced phase: every customer sends one message per second for ``--seconds``; agents answer each one at
    once. Reports customer→agent delivery latency (send → the agent's WebSocket receives it) p50/p99, and the
    reply latency back to the customer; also that p99 second by second through the window, which shows whether
    the node was still working off the start (every customer's first message opens a conversation, all of
    them in the warm-up's first second) or fell behind later;
  * saturation phase: every customer sends its next message as soon as the previous one is acknowledged
    (stored and committed); reports stored messages per second (customer messages + agent replies), and the
    server's CPU time per stored message (a figure other load on the machine hardly moves);
  * the same N connections against a bare echo server (closed loop) give the ceiling; the ratio is printed;
  * storage-free phase (``--phases storage-free``, not in the default set): the saturation phase against a node
    whose chat messages skip the database (``bench/storage_free_node.py``): what sockets, acknowledgements and
    the fan-out alone reach, so the share of the node's CPU that storage takes shows in one run;
  * writer-process phase (``--phases writer-process``, not in the default set): the saturation phase against a
    node whose chat batches are stored by a second process (``bench/writer_process_node.py``, a sketch).
The customers are spread over ``--client-procs`` processes (one Python process cannot drive 1,000 sockets
fast enough to saturate the server); the 4 agents run in this one. Latency is measured across processes on
the shared monotonic clock: a customer writes its send time into the client message id. The server's group
commit batch size and transaction time are read from its /metrics; ``--profile DIR`` samples the server with
py-spy (``pip install -e '.[bench]'``; ``BENCH_PROFILE_IDLE=1`` adds idle time, ``BENCH_PROFILE_GIL=1`` keeps only
the thread holding the GIL), and ``BENCH_DUMP=FILE`` writes every delivery as "seconds into the window,
latency" to find periodic stalls. Medians over runs are printed with the machine's core count.
Everything targets 127.0.0.1 and stops by itself.
Usage: ``.venv/bin/python bench/chat_roundtrip.py [--customers 100 1000] [--runs 3] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BODY = "您好，我的订单 202611220001 什么时候发货？Where is my parcel? " * 2  # ~200 bytes of JSON per frame
AGENTS = 4
# Seconds before measuring: every customer's first message opens a conversation and a routing task and the
# first answer assigns it, a one-off burst a node drains in a few seconds; the window measures steady state.
WARMUP = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def children_cpu_seconds(pid: int) -> float:
    """CPU time so far of the processes ``pid`` started (the writer process of ``--phases writer-process``)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += cpu_seconds(int(stat.parent.name))
    return total


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def wait_http(url: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1200):  # up to 2 minutes: start-up imports are slow on a busy 2-core machine
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def seed(database_url: str) -> tuple[str, list[tuple[str, str]]]:
    """Create a tenant, AGENTS agents and an inbox through the domain actions; return (inbox, logins)."""
    from kefu.auth import actions as auth_actions
    from kefu.channels import actions as channel_actions
    from kefu.channels.schemas import InboxCreate
    from kefu.core.migrate import upgrade
    from kefu.core.settings import Settings
    from kefu.runtime import build_runtime
    from kefu.tenants import actions as tenant_actions
    from kefu.tenants.schemas import TenantCreate

    await asyncio.to_thread(upgrade, database_url)
    runtime = build_runtime(Settings(database_url=database_url))
    uow = runtime.unit_of_work()
    tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug="bench", name="Bench shop"))
    inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="bench"))
    logins = []
    for i in range(AGENTS):
        email = f"agent{i}@bench.test"
        await auth_actions.do_create_user(uow, tenant_id=tenant.id, email=email, display_name=f"A{i}", role="agent",
                                          password="bench-password-1")
        logins.append((email, "bench-password-1"))
    await uow.commit()
    await uow.session.close()
    await runtime.engine.dispose()
    return inbox.id, logins


@dataclass(frozen=True)
class Window:
    """Times on the shared monotonic clock (``time.perf_counter`` is CLOCK_MONOTONIC on Linux, so the same in
    every process): customers start at ``go``, and only what happens in [t0, t1) is counted."""

    go: float
    t0: float
    t1: float

    def counts(self, t: float) -> bool:
        return self.t0 <= t < self.t1


def sent_at(client_id: str) -> float:
    """The send time a customer wrote into its client message id (``name.n.ns``), in seconds."""
    return int(client_id.rsplit(".", 1)[1]) / 1e9


@dataclass
class AgentStats:
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the window, latency)
    replies_acked: int = 0


async def register(ws, data: dict) -> dict:  # type: ignore[no-untyped-def]
    """Register; return the ``registered`` frame's data."""
    await ws.send(orjson.dumps({"type": "register", "id": uuid.uuid4().hex, "data": data}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame["type"] == "registered":
            return frame["data"]
        if frame["type"] == "error":
            raise RuntimeError(frame)


async def agent_loop(ws, stats: AgentStats, window: Window, index: int, user_id: str) -> None:  # type: ignore[no-untyped-def]
    """Answer at once every customer message of the conversations assigned to this agent, and of this agent's
    share (by hash) of the unassigned ones: the first answer assigns the conversation to whoever gave it."""
    async for raw in ws:
        now = time.perf_counter()
        if now >= window.t1 + 1:
            return
        frame = orjson.loads(raw)
        kind = frame["type"]
        if kind == "message.ack":
            stats.replies_acked += window.counts(now)
            continue
        if kind != "message.created":
            continue
        msg = frame["data"]["message"]
        if msg["sender_kind"] != "customer":
            continue
        conversation = msg["conversation_id"]
        assignee = frame["data"].get("conversation", {}).get("assignee_id")
        if assignee != user_id and (assignee is not None or hash(conversation) % AGENTS != index):
            continue  # another agent answers this conversation
        cid = msg["client_message_id"]
        if window.counts(now):
            stats.samples.append((now - window.t0, now - sent_at(cid)))
        await ws.send(orjson.dumps({"type": "message.send", "id": "r-" + cid,
                                    "data": {"conversation_id": conversation,
                                             "body": "好的，马上为您查询。OK, checking."}}).decode())


async def customer_loop(ws, result: dict, window: Window, mode: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """One widget customer: paced (1 msg/s), saturated (next send after the ack) or bare echo (closed loop)."""
    waiting: dict[str, asyncio.Future] = {}
    loop = asyncio.get_running_loop()

    async def reader() -> None:
        async for raw in ws:
            now = time.perf_counter()
            if mode == "echo":
                result["acked"] += window.counts(now)
                fut = waiting.pop("echo", None)
                if fut and not fut.done():
                    fut.set_result(None)
                continue
            frame = orjson.loads(raw)
            if frame["type"] == "message.ack":
                result["acked"] += window.counts(now)
                fut = waiting.pop(frame.get("id"), None)
                if fut and not fut.done():
                    fut.set_result(None)
            elif frame["type"] == "message.created":
                msg = frame["data"]["message"]
                cid = msg.get("client_message_id") or ""
                if msg["sender_kind"] == "agent" and cid.startswith("r-") and window.counts(now):
                    result["reply"].append(now - sent_at(cid[2:]))

    read_task = asyncio.create_task(reader())
    offset = hash(name) % 1000 / 1000 if mode == "paced" else 0.0  # spread the first sends over a second
    next_at = window.go + offset
    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    n = 0
    try:
        while time.perf_counter() < window.t1:
            n += 1
            cid = f"{name}.{n}.{time.perf_counter_ns()}"
            pending = loop.create_future()
            waiting["echo" if mode == "echo" else cid] = pending
            await ws.send(ECHO_PAYLOAD if mode == "echo" else
                          orjson.dumps({"type": "message.send", "id": cid, "data": {"body": BODY}}).decode())
            if mode == "paced":
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            else:
                try:
                    await asyncio.wait_for(pending, 10)
                except TimeoutError:
                    pass
    finally:
        read_task.cancel()


ECHO_PAYLOAD = orjson.dumps({"type": "message.send", "id": "x", "data": {"body": BODY}}).decode()


async def _customers(url: str, tokens: list[str | None], first: int, mode: str, pipe) -> None:  # type: ignore[no-untyped-def]
    sockets = []
    for i in range(0, len(tokens), 100):
        batch = await asyncio.gather(*(connect(url, compression=None, max_size=2**22) for _ in tokens[i:i + 100]))
        if mode != "echo":
            await asyncio.gather(*(register(ws, {"visitor_token": vt, "resume_from": None})
                                   for ws, vt in zip(batch, tokens[i:i + 100])))
        sockets.extend(batch)
    pipe.send("ready")
    window = Window(*await asyncio.to_thread(pipe.recv))
    result: dict = {"acked": 0, "reply": [], "cpu": 0.0}

    async def cpu_meter() -> None:
        await asyncio.sleep(max(0.0, window.t0 - time.perf_counter()))
        start = time.process_time()
        await asyncio.sleep(max(0.0, window.t1 - time.perf_counter()))
        result["cpu"] = time.process_time() - start

    meter = asyncio.create_task(cpu_meter())
    await asyncio.gather(*(customer_loop(ws, result, window, mode, f"c{first + i}") for i, ws in enumerate(sockets)),
                         return_exceptions=True)
    await meter
    pipe.send(result)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def customer_process(url: str, tokens: list[str | None], first: int, mode: str, pipe) -> None:  # type: ignore[no-untyped-def]
    """Entry point of one client process holding a share of the customers."""
    asyncio.run(_customers(url, tokens, first, mode, pipe))


async def run_customers(url: str, tokens: list[str | None], mode: str, procs: int, seconds: float,
                        on_window=None) -> tuple[Window, list[dict]]:  # type: ignore[no-untyped-def]
    """Spread the customers over ``procs`` processes, start them together, return the window and their results."""
    ctx = multiprocessing.get_context("spawn")
    share = -(-len(tokens) // procs)
    pipes, workers = [], []
    for k in range(procs):
        part = tokens[k * share:(k + 1) * share]
        if not part:
            break
        mine, theirs = ctx.Pipe()
        worker = ctx.Process(target=customer_process, args=(url, part, k * share, mode, theirs), daemon=True)
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    try:
        for pipe in pipes:
            if await asyncio.to_thread(pipe.recv) != "ready":
                raise RuntimeError("client process failed")
        go = time.perf_counter() + 0.5
        window = Window(go, go + WARMUP, go + WARMUP + seconds)  # warm-up, then the measured seconds
        for pipe in pipes:
            pipe.send((window.go, window.t0, window.t1))
        if on_window is not None:
            on_window(window)
        results = [await asyncio.to_thread(pipe.recv) for pipe in pipes]
        return window, results
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()


NODES = {"kefu": ["-m", "kefu.cli"], "storage-free": [str(ROOT / "bench" / "storage_free_node.py")],
         "writer-process": [str(ROOT / "bench" / "writer_process_node.py")]}


async def chat_run(n: int, seconds: float, paced: bool, procs: int, profile: Path | None = None,
                   node: str = "kefu") -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    inbox_id, logins = await seed(database_url)
    port = free_port()
    env = {**os.environ, "KEFU_DATABASE_URL": database_url, "KEFU_LOG_LEVEL": "WARNING",
           "KEFU_ENVIRONMENT": "development"}
    proc = subprocess.Popen([sys.executable, *NODES[node], "serve", "--no-migrate", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    agent_ws, tasks = [], []
    try:
        await wait_http(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            tokens = [(await client.post("/api/v1/auth/login", json={"email": e, "password": p})).json()["token"]
                      for e, p in logins]
            sem = asyncio.Semaphore(50)

            async def visitor() -> str:
                async with sem:
                    r = await client.post("/api/v1/widget/sessions", json={"inbox_id": inbox_id})
                    return r.json()["visitor_token"]

            visitor_tokens = await asyncio.gather(*(visitor() for _ in range(n)))
        agent_ids = []
        for token in tokens:
            ws = await connect(ws_base + "/api/v1/realtime", max_size=2**22, compression=None)
            agent_ids.append((await register(ws, {"token": token, "resume_from": None}))["user_id"])
            agent_ws.append(ws)
        stats = AgentStats()
        marks: dict[str, float] = {}

        def on_window(window: Window) -> None:
            tasks.extend(asyncio.create_task(agent_loop(ws, stats, window, i, agent_ids[i]))
                         for i, ws in enumerate(agent_ws))

            async def meter() -> None:
                await asyncio.sleep(max(0.0, window.t0 - time.perf_counter()))
                marks["server"], marks["agents"] = cpu_seconds(proc.pid), time.process_time()
                if node == "writer-process":  # a scan of /proc on the agents' loop: only where there is a writer
                    marks["writer"] = children_cpu_seconds(proc.pid)
                before = await server_totals(base)
                await asyncio.sleep(max(0.0, window.t1 - time.perf_counter()))
                marks["server"] = cpu_seconds(proc.pid) - marks["server"]
                if node == "writer-process":
                    marks["writer"] = children_cpu_seconds(proc.pid) - marks["writer"]
                marks["agents"] = time.process_time() - marks["agents"]
                after = await server_totals(base)
                batches = after["batches"] - before["batches"]
                marks["batch"] = (after["writes"] - before["writes"]) / max(1, batches)
                marks["commit_ms"] = (after["commit_seconds"] - before["commit_seconds"]) * 1000 / max(1, batches)
                marks["gc_share"] = sum(after[f"gc_seconds_{g}"] - before[f"gc_seconds_{g}"] for g in "012") / seconds
                marks["gc_collections"] = sum(after[f"gc_count_{g}"] - before[f"gc_count_{g}"] for g in "012")

            tasks.append(asyncio.create_task(meter()))
            if profile is not None:
                tasks.append(asyncio.create_task(record_profile(proc.pid, window, profile)))

        window, results = await run_customers(ws_base + "/api/v1/widget/ws", visitor_tokens,
                                               "paced" if paced else "saturated", procs, seconds, on_window)
        await asyncio.sleep(max(0.0, window.t1 + 0.2 - time.perf_counter()))
        for ws in agent_ws:
            await ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        acked = sum(r["acked"] for r in results)
        reply = [x for r in results for x in r["reply"]]
        to_agent = [latency for _, latency in stats.samples]
        if os.environ.get("BENCH_DUMP"):
            Path(os.environ["BENCH_DUMP"]).write_text("\n".join(f"{t:.4f} {lat:.4f}" for t, lat in stats.samples))
        return {"stored_per_s": (acked + stats.replies_acked) / seconds, "customer_msgs_per_s": acked / seconds,
                "p50_ms": pct(to_agent, 50) * 1000, "p99_ms": pct(to_agent, 99) * 1000,
                "p99_by_second_ms": [pct([lat for t, lat in stats.samples if int(t) == second], 99) * 1000
                                     for second in range(int(seconds))],
                "reply_p50_ms": pct(reply, 50) * 1000, "reply_p99_ms": pct(reply, 99) * 1000,
                "delivered": len(to_agent),
                # Server CPU per stored message: unlike msgs/s, barely moved by other load on the machine.
                "cpu_ms_per_msg": marks.get("server", float("nan")) * 1000 / max(1, acked + stats.replies_acked),
                "server_cpu_share": marks.get("server", float("nan")) / seconds,
                "writer_cpu_ms_per_msg": marks.get("writer", float("nan")) * 1000 / max(1, acked + stats.replies_acked),
                "writer_cpu_share": marks.get("writer", float("nan")) / seconds,
                "client_cpu_share": (sum(r["cpu"] for r in results) + marks.get("agents", 0.0)) / seconds,
                "batch": marks.get("batch", float("nan")), "commit_ms": marks.get("commit_ms", float("nan")),
                "gc_share": marks.get("gc_share", float("nan")),
                "gc_collections": marks.get("gc_collections", float("nan"))}
    finally:
        for ws in agent_ws:
            try:
                await ws.close()
            except Exception:
                pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


async def server_totals(base: str) -> dict[str, float]:
    """The server's group-commit transactions, their writes and seconds, and its garbage collections and the
    seconds they paused it (per generation) so far, from its /metrics."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        text = (await client.get("/metrics")).text
    names = {"kefu_group_commit_batch_size_count": "batches", "kefu_group_commit_batch_size_sum": "writes",
             "kefu_group_commit_seconds_sum": "commit_seconds", "kefu_gc_collections_total": "gc_count",
             "kefu_gc_pause_seconds_total": "gc_seconds"}
    totals = dict.fromkeys(["batches", "writes", "commit_seconds"] +
                           [f"gc_{kind}_{g}" for kind in ("count", "seconds") for g in "012"], 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = names.get(sample.name)
            if name is not None:
                generation = sample.labels.get("generation")
                totals[name if generation is None else f"{name}_{generation}"] = sample.value
    return totals


async def record_profile(pid: int, window: Window, out: Path) -> None:
    """Sample the server with py-spy during the measured window (collapsed stacks, for flame graphs)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    await asyncio.sleep(max(0.0, window.t0 - time.perf_counter()))
    duration = max(1, int(window.t1 - window.t0))
    process = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200", "--format", "raw",
        "--output", str(out), "--nonblocking", *(["--idle"] if os.environ.get("BENCH_PROFILE_IDLE") else []),
        *(["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else []), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await process.wait()


async def echo_run(kind: str, n: int, seconds: float, procs: int) -> float:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), kind, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        _, results = await run_customers(f"ws://127.0.0.1:{port}/", [None] * n, "echo", procs, seconds)
        return sum(r["acked"] for r in results) / seconds
    finally:
        proc.terminate()
        proc.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client-procs", type=int, default=2,
                        help="processes the simulated customers are spread over (agents stay in this one)")
    parser.add_argument("--phases", nargs="+", choices=["paced", "saturated", "storage-free", "writer-process", "echo"],
                        default=["paced", "saturated", "echo"])
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles of the server (first run)")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="seconds before the measured window")
    args = parser.parse_args()
    globals()["WARMUP"] = args.warmup
    procs = args.client_procs
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  runs: {args.runs}  seconds: {args.seconds}"
          f"  warm-up: {args.warmup}  client processes: {procs}  load: {os.getloadavg()[0]:.1f}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for n in args.customers:
        paced, sat, free, writer, echo_ws, echo_fa = [], [], [], [], [], []
        for run in range(args.runs):
            def profile_path(phase: str, n: int = n, run: int = run) -> Path | None:
                return args.profile / f"server-{phase}-n{n}.txt" if args.profile and run == 0 else None
            if "paced" in args.phases:
                paced.append(await chat_run(n, args.seconds, True, procs, profile_path("paced")))
            if "saturated" in args.phases:
                sat.append(await chat_run(n, args.seconds, False, procs, profile_path("saturated")))
            if "storage-free" in args.phases:
                free.append(await chat_run(n, args.seconds, False, procs, profile_path("storage-free"),
                                           node="storage-free"))
            if "writer-process" in args.phases:
                writer.append(await chat_run(n, args.seconds, False, procs, profile_path("writer-process"),
                                             node="writer-process"))
            if "echo" in args.phases:
                echo_ws.append(await echo_run("websockets", n, args.seconds, procs))
                echo_fa.append(await echo_run("fastapi", n, args.seconds, procs))
        med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
        print(f"\nN={n} customers, {AGENTS} agents (median of {args.runs}; load now {os.getloadavg()[0]:.1f})")
        if paced:
            print(f"  paced 1 msg/s each: customer→agent p50 {med(paced, 'p50_ms'):.1f} ms  p99 {med(paced, 'p99_ms'):.1f} ms;"
                  f" reply round trip p50 {med(paced, 'reply_p50_ms'):.1f} ms  p99 {med(paced, 'reply_p99_ms'):.1f} ms;"
                  f" stored {med(paced, 'stored_per_s'):.0f} msgs/s; server CPU {med(paced, 'cpu_ms_per_msg'):.2f} ms"
                  f" per stored message, busy {med(paced, 'server_cpu_share'):.0%} of a core; client"
                  f" {med(paced, 'client_cpu_share'):.0%}; commits of {med(paced, 'batch'):.1f} writes taking"
                  f" {med(paced, 'commit_ms'):.1f} ms; GC paused it {med(paced, 'gc_share'):.1%} of the time"
                  f" ({med(paced, 'gc_collections'):.0f} collections)")
            by_second = [statistics.median(r["p99_by_second_ms"][second] for r in paced)
                         for second in range(int(args.seconds))]
            print("  paced customer→agent p99 by second of the window (median over runs):",
                  " / ".join(f"{ms:.0f}" for ms in by_second), "ms")
        if sat:
            print(f"  saturated: stored {med(sat, 'stored_per_s'):.0f} msgs/s (customer {med(sat, 'customer_msgs_per_s'):.0f}/s"
                  f" + replies), customer→agent p99 {med(sat, 'p99_ms'):.1f} ms; server CPU"
                  f" {med(sat, 'cpu_ms_per_msg'):.2f} ms per stored message, busy {med(sat, 'server_cpu_share'):.0%}"
                  f" of a core; client {med(sat, 'client_cpu_share'):.0%}; commits of {med(sat, 'batch'):.1f} writes"
                  f" taking {med(sat, 'commit_ms'):.1f} ms; GC paused it {med(sat, 'gc_share'):.1%} of the time"
                  f" ({med(sat, 'gc_collections'):.0f} collections)")
        if free:
            print(f"  storage-free node, saturated: stored {med(free, 'stored_per_s'):.0f} msgs/s (customer"
                  f" {med(free, 'customer_msgs_per_s'):.0f}/s + replies), customer→agent p99 {med(free, 'p99_ms'):.1f} ms;"
                  f" server CPU {med(free, 'cpu_ms_per_msg'):.2f} ms per message, busy {med(free, 'server_cpu_share'):.0%}"
                  f" of a core; client {med(free, 'client_cpu_share'):.0%}")
            if sat:
                print(f"  storage's share of the node's CPU per stored message:"
                      f" {1 - med(free, 'cpu_ms_per_msg') / med(sat, 'cpu_ms_per_msg'):.0%}")
        if writer:
            print(f"  writer-process node, saturated: stored {med(writer, 'stored_per_s'):.0f} msgs/s (customer"
                  f" {med(writer, 'customer_msgs_per_s'):.0f}/s + replies), customer→agent p99"
                  f" {med(writer, 'p99_ms'):.1f} ms; node CPU {med(writer, 'cpu_ms_per_msg'):.2f} ms per message"
                  f" (busy {med(writer, 'server_cpu_share'):.0%} of a core), writer"
                  f" {med(writer, 'writer_cpu_ms_per_msg'):.2f} ms (busy {med(writer, 'writer_cpu_share'):.0%});"
                  f" client {med(writer, 'client_cpu_share'):.0%}")
        if echo_ws:
            print(f"  bare echo ceiling: websockets {statistics.median(echo_ws):.0f} msgs/s, uvicorn+FastAPI"
                  f" {statistics.median(echo_fa):.0f} msgs/s")
        for label, rows in (("chat", sat), ("writer-process", writer), ("storage-free", free)):
            if rows and echo_ws:
                rate = med(rows, "stored_per_s")
                print(f"  ratio {label}/echo: {rate / statistics.median(echo_ws):.0%} of websockets echo,"
                      f" {rate / statistics.median(echo_fa):.0%} of uvicorn+FastAPI echo")

if __name__ == "__main__":
    asyncio.run(main())
