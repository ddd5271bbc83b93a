"""The demo shop page embeds the widget for the demo inbox and vouches for a pretend logged-in customer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kefu.channels import identity
from kefu.demo.seed import seed_demo
from kefu.runtime import Runtime
from tests.conftest import LiveServer, make_settings
from tests.serve_process import free_port


async def test_demo_page_embeds_the_widget_and_signs_identity(http: httpx.AsyncClient, runtime: Runtime) -> None:
    demo = await seed_demo(runtime)
    guest = await http.get("/demo/shop")
    assert guest.status_code == 200 and guest.headers["content-type"].startswith("text/html")
    assert f'<script src="/static/widget.js" data-inbox="{demo.inbox_id}" async></script>' in guest.text
    assert "data-identity-token" not in guest.text

    pages = [await http.get("/demo/shop", params={"customer": "c1001"}) for _ in range(2)]
    tokens = [re.search(r'data-identity-token="([^"]+)"', p.text).group(1) for p in pages]  # type: ignore[union-attr]
    assert tokens[0] != tokens[1], "a fresh nonce per page view"
    assert pages[0].headers["cache-control"] == "no-store"
    verified = identity.verify_identity_token(demo.inbox_secret, tokens[0], max_age=600)
    assert verified.customer_id == "c1001"

    # The widget's REST session accepts the token once and attaches the verified customer.
    started = await http.post("/api/v1/widget/sessions", json={"inbox_id": demo.inbox_id, "identity_token": tokens[0]})
    assert started.status_code == 201, started.text
    assert started.json()["verified"] is True
    replay = await http.post("/api/v1/widget/sessions", json={"inbox_id": demo.inbox_id, "identity_token": tokens[0]})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "identity_token_replayed"

    bad = await http.get("/demo/shop", params={"customer": "<script>"})
    assert bad.status_code == 422 and "<script>" not in bad.text
    widget_js = await http.get("/static/widget.js")
    assert widget_js.status_code == 200 and "message.send" in widget_js.text


async def test_demo_page_without_demo_data_and_in_production(fresh_db_url: str) -> None:
    for environment, code in (("test", "demo_not_seeded"), ("production", "route_not_found")):
        node = LiveServer(make_settings(fresh_db_url, environment=environment)).start()
        try:
            async with httpx.AsyncClient(base_url=node.url) as client:
                answer = await client.get("/demo/shop", headers={"Accept-Language": "zh-CN"})
        finally:
            node.stop()
        assert answer.status_code == 404 and answer.json()["error"]["code"] == code
        if code == "demo_not_seeded":
            assert "kefu demo seed" in answer.json()["error"]["message"] and "演示商城" in answer.text


def test_the_printed_links_point_where_kefu_listens(tmp_path: Path) -> None:
    """``kefu serve --port P --seed-demo`` prints links to port P; ``KEFU_PUBLIC_URL``, when set, wins."""
    env = {**os.environ, "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", "KEFU_ENVIRONMENT": "development",
           "COLUMNS": "200"}
    env.pop("KEFU_PUBLIC_URL", None)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kefu.cli", "serve", "--seed-demo", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "Uvicorn running" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    printed = log.read_text()
    assert f"http://127.0.0.1:{port}/demo/shop" in printed and ":8000" not in printed, printed
    seeded = subprocess.run([sys.executable, "-m", "kefu.cli", "demo", "seed"], capture_output=True, text=True,
                            env={**env, "KEFU_PUBLIC_URL": "https://chat.shop.example/"}, timeout=120)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "https://chat.shop.example/app/" in seeded.stdout and str(port) not in seeded.stdout, seeded.stdout
