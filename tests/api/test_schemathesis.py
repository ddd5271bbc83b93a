"""No input produces a 500: schemathesis fuzzes every documented operation (bounded examples each).

It runs the real CLI against a real server on a database of its own, authenticated as an admin, so the
generated writes cannot disturb other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import create_tenant

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("KEFU_FUZZ_EXAMPLES", "25"))


async def test_no_operation_answers_500(fresh_db_url: str, tmp_path: Path) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        tenant = await create_tenant(runtime)
    live = LiveServer(make_settings(fresh_db_url, login_max_failures=1000)).start()
    try:
        # The schema of every domain takes a few seconds to build on a busy machine.
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            assert (await client.get("/openapi.json")).status_code == 200
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", f"{live.url}/openapi.json", "--checks", "not_a_server_error",
             "-n", str(MAX_EXAMPLES), "--seed", "20261122", "--request-timeout", "20",
             "-H", f"Authorization: Bearer {tenant.admin.token}",
             # Logging out would revoke the token the rest of the run uses.
             "--exclude-path-regex", "/auth/logout$",
             "--continue-on-failure", "--warnings", "off"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
    finally:
        live.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
