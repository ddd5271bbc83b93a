"""A node that dies between commit and publish loses nothing: the event is replayed after restart and the
customer's retry with the same client id does not store the message twice."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from kefu.conversations.models import Message
from kefu.core.migrate import upgrade
from kefu.runtime import build_runtime
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import create_tenant
from tests.realtime.wsclient import agent_client, is_ack, is_message, start_visitor, visitor_client

pytestmark = pytest.mark.slow

KEFU = Path(sys.executable).with_name("kefu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``kefu serve`` as a real child process."""

    def __init__(self, database_url: str, port: int, log: Path, **env: str) -> None:
        self.port = port
        environ = {**os.environ, "KEFU_DATABASE_URL": database_url, "KEFU_ENVIRONMENT": "test",
                   "KEFU_SECRET_KEY": TEST_SECRET, "KEFU_LOG_LEVEL": "WARNING", **env}
        environ.pop("KEFU_REDIS_URL", None)
        self._log = log.open("ab")
        self.proc = subprocess.Popen([str(KEFU), "serve", "--no-migrate", "--port", str(port)], env=environ,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"kefu serve exited early with {self.proc.returncode}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("kefu serve did not become ready")

    async def exit_code(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self.proc.returncode is not None, "the process did not exit"
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


async def test_event_committed_before_crash_is_delivered_after_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    runtime = build_runtime(make_settings(url))
    try:
        tenant = await create_tenant(runtime)
        session = await start_visitor(runtime, tenant.inbox_id)
        log = tmp_path / "serve.log"

        port = free_port()
        faulty = ServeProcess(url, port, log, KEFU_FAULT_CRASH_AFTER_COMMIT="1")
        try:
            await faulty.ready()
            agent, registered, _ = await agent_client(faulty.ws_url, tenant.agent.token)
            last_seen = registered["data"]["last_event_id"]
            visitor, _, _ = await visitor_client(faulty.ws_url, session.visitor_token)
            await visitor.send({"type": "message.send", "id": "crash-1", "data": {"body": "下单后能改地址吗？"}})
            assert await faulty.exit_code() == 70, log.read_text()
            code, frames = await visitor.closed()
            assert not [f for f in frames if f["type"] == "message.ack"], "no ack without publish"
            assert not [f for f in agent.received if f["type"] == "message.created"]
        finally:
            faulty.stop()

        async with runtime.sessionmaker() as db:
            stored = await db.scalar(select(func.count()).select_from(Message)
                                     .where(Message.client_message_id == "crash-1"))
        assert stored == 1, "the commit happened before the crash"

        healthy = ServeProcess(url, free_port(), log)
        try:
            await healthy.ready()
            for resume_from in (last_seen, 0):
                agent, registered, replayed = await agent_client(healthy.ws_url, tenant.agent.token,
                                                                 resume_from=resume_from)
                created = [f for f in replayed if f["type"] == "message.created"]
                assert [f["data"]["message"]["body"] for f in created] == ["下单后能改地址吗？"]
                assert registered["data"]["last_event_id"] == replayed[-1]["id"]
                await agent.close()

            # The customer never got an ack, so the widget retries with the same client id.
            visitor, _, _ = await visitor_client(healthy.ws_url, session.visitor_token)
            await visitor.send({"type": "message.send", "id": "crash-1", "data": {"body": "下单后能改地址吗？"}})
            ack = await visitor.wait_for(is_ack("crash-1"))
            assert ack["type"] == "message.ack" and ack["data"]["created"] is False
            assert not [f for f in await visitor.sync() if is_message("下单后能改地址吗？")(f)]
            await visitor.close()
        finally:
            healthy.stop()

        async with runtime.sessionmaker() as db:
            stored = await db.scalar(select(func.count()).select_from(Message)
                                     .where(Message.client_message_id == "crash-1"))
        assert stored == 1
    finally:
        await runtime.engine.dispose()
