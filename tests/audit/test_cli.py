"""``kefu audit verify`` and ``kefu users create``, run as the real command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import text

from kefu.runtime import Runtime
from tests.auth.helpers import audit_entries, login
from tests.conftest import runtime_on
from tests.factories import TenantFixture, create_tenant


def kefu(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEFU_DATABASE_URL": database_url, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "kefu.cli", *args], capture_output=True, text=True, env=env,
                           timeout=120)


async def tamper(runtime: Runtime, sql: str, tenant_id: str) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(text(sql), {"t": tenant_id})


async def test_verify_exit_codes_for_one_tenant(runtime: Runtime, sqlite_url: str, tenant: TenantFixture) -> None:
    ok = await asyncio.to_thread(kefu, sqlite_url, "audit", "verify", "--tenant", tenant.id)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"ok        tenant={tenant.id} entries=3 head_hash=" in ok.stdout
    assert "1 chain(s) verified, no tampering found" in ok.stdout
    try:
        await tamper(runtime, "UPDATE audit_entries SET action = 'user.deleted' WHERE tenant_id = :t AND seq = 2",
                     tenant.id)
        bad = await asyncio.to_thread(kefu, sqlite_url, "audit", "verify", "--tenant", tenant.id)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert f"TAMPERED  tenant={tenant.id} entries_checked=2 first_bad_seq=2 reason=hash_mismatch" in bad.stdout
    finally:
        await tamper(runtime, "DELETE FROM audit_entries WHERE tenant_id = :t", tenant.id)


async def test_verify_every_tenant_reports_the_deleted_entry(fresh_db_url: str) -> None:
    async with runtime_on(fresh_db_url) as rt:
        clean, victim = await create_tenant(rt), await create_tenant(rt)
        ok = await asyncio.to_thread(kefu, fresh_db_url, "audit", "verify")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "2 chain(s) verified" in ok.stdout
        await tamper(rt, "DELETE FROM audit_entries WHERE tenant_id = :t AND seq = 2", victim.id)
        bad = await asyncio.to_thread(kefu, fresh_db_url, "audit", "verify")
        assert bad.returncode == 1
        assert f"TAMPERED  tenant={victim.id} entries_checked=2 first_bad_seq=2 reason=seq_gap" in bad.stdout
        assert f"ok        tenant={clean.id} entries=3" in bad.stdout
        assert "tampering detected in 1 of 2" in bad.stdout


async def test_users_create_makes_a_user_who_can_log_in(http: httpx.AsyncClient, sqlite_url: str,
                                                        tenant: TenantFixture) -> None:
    email = f"first-admin-{uuid.uuid4().hex[:8]}@example.test"
    r = await asyncio.to_thread(kefu, sqlite_url, "users", "create", "--tenant", tenant.slug, "--email", email,
                                "--role", "admin", "--name", "店长", "--password", "cli-created-passphrase")
    assert r.returncode == 0, r.stdout + r.stderr
    logged_in = await login(http, email, "cli-created-passphrase")
    assert logged_in.status_code == 200 and logged_in.json()["role"] == "admin"
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.created",
                                  target_id=logged_in.json()["user_id"])
    assert entry["actor_type"] == "system" and entry["details"] == {"role": "admin"}

    again = await asyncio.to_thread(kefu, sqlite_url, "users", "create", "--tenant", tenant.id, "--email", email,
                                    "--password", "cli-created-passphrase")
    assert again.returncode == 1 and "email_taken" in again.stdout
    nowhere = await asyncio.to_thread(kefu, sqlite_url, "users", "create", "--tenant", "no-such-shop", "--email",
                                      "x-" + email, "--password", "cli-created-passphrase")
    assert nowhere.returncode == 1 and "no tenant" in nowhere.stdout
