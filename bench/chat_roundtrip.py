"""Chat round trip: N widget customers talk to agents through a real kefu node; compared to a bare echo.

For each N (default 100 and 1,000) and each of ``--runs`` runs, on a fresh SQLite database:
  * paced phase: every customer sends one message per second for ``--seconds``; agents answer each one at
    once. Reports customer→agent delivery latency (send → the agent's WebSocket receives it) p50/p99, and the
    reply latency back to the customer;
  * saturation phase: every customer sends its next message as soon as the previous one is acknowledged
    (stored and committed); reports stored messages per second (customer messages + agent replies), and the
    server's CPU time per stored message (a figure other load on the machine hardly moves);
  * the same N connections against a bare echo server (closed loop) give the ceiling; the ratio is printed.
Medians over runs are printed with the machine's core count. Everything targets 127.0.0.1 and stops by
itself. Usage: ``.venv/bin/python bench/chat_roundtrip.py [--customers 100 1000] [--runs 3] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
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
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BODY = "您好，我的订单 202611220001 什么时候发货？Where is my parcel? " * 2  # ~200 bytes of JSON per frame
AGENTS = 4


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


@dataclass
class Stats:
    sent_at: dict[str, float] = field(default_factory=dict)
    to_agent: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    acked: int = 0
    replies_acked: int = 0


async def register(ws, data: dict) -> None:  # type: ignore[no-untyped-def]
    await ws.send(orjson.dumps({"type": "register", "id": uuid.uuid4().hex, "data": data}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame["type"] == "registered":
            return
        if frame["type"] == "error":
            raise RuntimeError(frame)


async def agent_loop(ws, stats: Stats, stop: asyncio.Event, index: int) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        try:
            raw = await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            continue
        frame = orjson.loads(raw)
        if frame["type"] == "message.ack":
            stats.replies_acked += 1
            continue
        if frame["type"] != "message.created":
            continue
        msg = frame["data"]["message"]
        if msg["sender_kind"] != "customer":
            continue
        cid = msg["client_message_id"]
        sent = stats.sent_at.get(cid)
        conversation = msg["conversation_id"]
        if hash(conversation) % AGENTS != index:
            continue  # another agent answers this conversation
        if sent is not None:
            stats.to_agent.append(time.perf_counter() - sent)
        await ws.send(orjson.dumps({"type": "message.send", "id": "r-" + cid,
                                    "data": {"conversation_id": conversation, "body": "好的，马上为您查询。OK, checking."}}).decode())


async def customer_loop(ws, stats: Stats, stop: asyncio.Event, paced: bool, name: str) -> None:  # type: ignore[no-untyped-def]
    n = 0
    pending: asyncio.Future | None = None
    waiting: dict[str, asyncio.Future] = {}

    async def reader() -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "message.ack":
                stats.acked += 1
                fut = waiting.pop(frame.get("id"), None)
                if fut and not fut.done():
                    fut.set_result(None)
            elif frame["type"] == "message.created":
                msg = frame["data"]["message"]
                cid = msg.get("client_message_id") or ""
                if msg["sender_kind"] == "agent" and cid.startswith("r-") and cid[2:] in stats.sent_at:
                    stats.reply.append(time.perf_counter() - stats.sent_at[cid[2:]])

    read_task = asyncio.create_task(reader())
    if paced:
        await asyncio.sleep(hash(name) % 1000 / 1000)  # spread the first sends over a second
    next_at = time.perf_counter()
    try:
        while not stop.is_set():
            cid = f"{name}-{n}"
            n += 1
            pending = asyncio.get_running_loop().create_future()
            waiting[cid] = pending
            stats.sent_at[cid] = time.perf_counter()
            await ws.send(orjson.dumps({"type": "message.send", "id": cid, "data": {"body": BODY}}).decode())
            if paced:
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            else:
                try:
                    await asyncio.wait_for(pending, 10)
                except TimeoutError:
                    pass
    finally:
        read_task.cancel()


async def chat_run(n: int, seconds: float, paced: bool) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    inbox_id, logins = await seed(database_url)
    port = free_port()
    env = {**os.environ, "KEFU_DATABASE_URL": database_url, "KEFU_LOG_LEVEL": "WARNING",
           "KEFU_ENVIRONMENT": "development"}
    proc = subprocess.Popen([sys.executable, "-m", "kefu.cli", "serve", "--no-migrate", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    stats, stop = Stats(), asyncio.Event()
    sockets = []
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
        agent_ws = []
        for token in tokens:
            ws = await connect(ws_base + "/api/v1/realtime", max_size=2**22, compression=None)
            await register(ws, {"token": token, "resume_from": None})
            agent_ws.append(ws)
        customer_ws = []
        for i in range(0, n, 100):
            batch = await asyncio.gather(*(connect(ws_base + "/api/v1/widget/ws", compression=None)
                                           for _ in visitor_tokens[i:i + 100]))
            await asyncio.gather(*(register(ws, {"visitor_token": vt, "resume_from": None})
                                   for ws, vt in zip(batch, visitor_tokens[i:i + 100])))
            customer_ws.extend(batch)
        sockets = agent_ws + customer_ws
        tasks = [asyncio.create_task(agent_loop(ws, stats, stop, i)) for i, ws in enumerate(agent_ws)]
        tasks += [asyncio.create_task(customer_loop(ws, stats, stop, paced, f"c{i}"))
                  for i, ws in enumerate(customer_ws)]
        warmup = 2.0
        await asyncio.sleep(warmup)
        acked0, replies0, lat0 = stats.acked, stats.replies_acked, len(stats.to_agent)
        t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
        await asyncio.sleep(seconds)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        acked, replies = stats.acked - acked0, stats.replies_acked - replies0
        to_agent = stats.to_agent[lat0:]
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        reply = stats.reply
        return {"stored_per_s": (acked + replies) / elapsed, "customer_msgs_per_s": acked / elapsed,
                "p50_ms": pct(to_agent, 50) * 1000, "p99_ms": pct(to_agent, 99) * 1000,
                "reply_p50_ms": pct(reply, 50) * 1000, "reply_p99_ms": pct(reply, 99) * 1000,
                "delivered": len(to_agent),
                # Server CPU per stored message: unlike msgs/s, barely moved by other load on the machine.
                "cpu_ms_per_msg": cpu * 1000 / max(1, acked + replies), "server_cpu_share": cpu / elapsed}
    finally:
        for ws in sockets:
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


async def echo_run(kind: str, n: int, seconds: float) -> float:
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
        payload = orjson.dumps({"type": "message.send", "id": "x", "data": {"body": BODY}}).decode()
        sockets = []
        for i in range(0, n, 100):
            sockets += await asyncio.gather(*(connect(f"ws://127.0.0.1:{port}/", compression=None)
                                              for _ in range(min(100, n - i))))
        count = 0
        stop = asyncio.Event()

        async def loop(ws) -> None:  # type: ignore[no-untyped-def]
            nonlocal count
            while not stop.is_set():
                await ws.send(payload)
                await ws.recv()
                count += 1

        tasks = [asyncio.create_task(loop(ws)) for ws in sockets]
        await asyncio.sleep(1.0)
        c0, t0 = count, time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (count - c0) / (time.perf_counter() - t0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in sockets:
            await ws.close()
        return rate
    finally:
        proc.terminate()
        proc.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  runs: {args.runs}  seconds: {args.seconds}")
    for n in args.customers:
        paced, sat, echo_ws, echo_fa = [], [], [], []
        for _ in range(args.runs):
            paced.append(await chat_run(n, args.seconds, paced=True))
            sat.append(await chat_run(n, args.seconds, paced=False))
            echo_ws.append(await echo_run("websockets", n, args.seconds))
            echo_fa.append(await echo_run("fastapi", n, args.seconds))
        med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
        sat_rate = med(sat, "stored_per_s")
        print(f"\nN={n} customers, {AGENTS} agents (median of {args.runs})")
        print(f"  paced 1 msg/s each: customer→agent p50 {med(paced, 'p50_ms'):.1f} ms  p99 {med(paced, 'p99_ms'):.1f} ms;"
              f" reply round trip p50 {med(paced, 'reply_p50_ms'):.1f} ms  p99 {med(paced, 'reply_p99_ms'):.1f} ms;"
              f" stored {med(paced, 'stored_per_s'):.0f} msgs/s")
        print(f"  saturated: stored {sat_rate:.0f} msgs/s (customer {med(sat, 'customer_msgs_per_s'):.0f}/s + replies),"
              f" customer→agent p99 {med(sat, 'p99_ms'):.1f} ms; server CPU {med(sat, 'cpu_ms_per_msg'):.2f} ms"
              f" per stored message, server busy {med(sat, 'server_cpu_share'):.0%} of one core")
        print(f"  bare echo ceiling: websockets {statistics.median(echo_ws):.0f} msgs/s, uvicorn+FastAPI"
              f" {statistics.median(echo_fa):.0f} msgs/s")
        print(f"  ratio chat/echo: {sat_rate / statistics.median(echo_ws):.0%} of websockets echo,"
              f" {sat_rate / statistics.median(echo_fa):.0%} of uvicorn+FastAPI echo")


if __name__ == "__main__":
    asyncio.run(main())
