"""``kefu serve`` as a real child process, for tests that kill a node or restart it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
