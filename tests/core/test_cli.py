"""What `make run` does, as a user sees it: migrate, seed the demo shop, serve, log in with printed logins."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

KEFU = str(Path(sys.executable).with_name("kefu"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update({"KEFU_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'kefu.db'}", "KEFU_LOG_LEVEL": "WARNING",
                "COLUMNS": "200"})
    env.update(extra)
    return env


def test_demo_seed_is_idempotent_and_refused_in_production(tmp_path: Path) -> None:
    first = subprocess.run([KEFU, "demo", "seed"], env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "admin@demo.kefu.local" in first.stdout and "kefu-agent-demo" in first.stdout
    assert "/demo/shop" in first.stdout and "/app/" in first.stdout  # the shop page and the workspace
    second = subprocess.run([KEFU, "demo", "seed"], env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and second.stdout.count("@demo.kefu.local") == first.stdout.count("@demo.kefu.local")
    prod = subprocess.run([KEFU, "demo", "seed"], capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, KEFU_ENVIRONMENT="production", KEFU_SECRET_KEY="p" * 40))
    assert prod.returncode == 2 and "production" in prod.stdout


@pytest.mark.slow
def test_serve_with_demo_seed_answers_and_the_printed_login_works(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([KEFU, "serve", "--seed-demo", "--port", str(port)], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        login = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/login",
                           json={"email": "agent@demo.kefu.local", "password": "kefu-agent-demo"}, timeout=10)
        assert login.status_code == 200 and login.json()["role"] == "agent"
        assert (tmp_path / "var" / "kefu.db").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "admin@demo.kefu.local" in out
