"""The hash chain on SQLite and PostgreSQL: verification, tampering detection, concurrent appends.

Tampering uses raw SQL on purpose: it plays an attacker with database access. Each test removes its
broken chain afterwards, so a whole-database ``kefu audit verify`` on the shared test databases stays clean.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from kefu.audit import actions as audit_actions
from kefu.audit import service as audit_service
from kefu.auth.schemas import Principal
from kefu.runtime import Runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.schemas import TenantCreate
from tests.conftest import runtime_on

ACTOR = Principal(kind="user", id="usr_01jgx3v7k2m4n5p6q7r8s9t0vw", tenant_id="", role="admin")


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def new_tenant(rt: Runtime) -> str:
    uow = rt.unit_of_work()
    try:
        slug = f"audit-{uuid.uuid4().hex[:12]}"
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=slug))
        await uow.commit()
        return tenant.id
    finally:
        await uow.session.close()


async def record(rt: Runtime, tenant_id: str, n: int, **extra: object) -> None:
    for i in range(n):
        uow = rt.unit_of_work()
        try:
            await audit_actions.do_record(uow, tenant_id=tenant_id, actor=ACTOR, action="test.event",
                                          target_type="thing", target_id=f"thing_{i}", details={"i": i, **extra},
                                          ip="198.51.100.9")
            await uow.commit()
        finally:
            await uow.session.close()


async def verify(rt: Runtime, tenant_id: str | None) -> list[audit_service.ChainReport]:
    async with rt.sessionmaker() as session:
        return await audit_service.verify_chain(session=session, tenant_id=tenant_id)


async def attack(rt: Runtime, sql: str, **params: object) -> None:
    async with rt.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def forget(rt: Runtime, tenant_id: str) -> None:
    await attack(rt, "DELETE FROM audit_entries WHERE tenant_id = :t", t=tenant_id)


async def test_an_untouched_chain_verifies(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)
    await record(rt, tenant_id, 5, note="客服 ✓", when=datetime(2026, 1, 5, 8, 30, tzinfo=UTC), tags={"b", "a"})
    [report] = await verify(rt, tenant_id)
    assert report.ok and report.entries_checked == 5 and report.last_seq == 5
    assert report.first_bad_seq is None and report.reason is None and len(report.head_hash or "") == 64
    everything = await verify(rt, None)
    assert any(r.tenant_id == tenant_id and r.ok for r in everything)


async def test_chains_are_per_tenant(rt: Runtime) -> None:
    a, b = await new_tenant(rt), await new_tenant(rt)
    await record(rt, a, 3)
    await record(rt, b, 2)
    reports = {r.tenant_id: r for r in await verify(rt, None)}
    assert (reports[a].ok, reports[a].last_seq) == (True, 3)
    assert (reports[b].ok, reports[b].last_seq) == (True, 2)
    [empty] = await verify(rt, await new_tenant(rt))
    assert empty.ok and empty.entries_checked == 0 and empty.head_hash is None


async def test_an_edited_entry_is_detected(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)
    await record(rt, tenant_id, 5)
    try:
        await attack(rt, "UPDATE audit_entries SET target_id = 'thing_forged' WHERE tenant_id = :t AND seq = 3",
                     t=tenant_id)
        [report] = await verify(rt, tenant_id)
        assert not report.ok and report.first_bad_seq == 3 and report.reason == "hash_mismatch"
        assert report.last_seq == 2  # entries 1 and 2 are still trustworthy
    finally:
        await forget(rt, tenant_id)


async def test_a_deleted_entry_is_detected(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)
    await record(rt, tenant_id, 5)
    try:
        await attack(rt, "DELETE FROM audit_entries WHERE tenant_id = :t AND seq = 3", t=tenant_id)
        [report] = await verify(rt, tenant_id)
        assert not report.ok and report.first_bad_seq == 3 and report.reason == "seq_gap"
    finally:
        await forget(rt, tenant_id)


async def test_a_deleted_first_entry_is_detected(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)
    await record(rt, tenant_id, 3)
    try:
        await attack(rt, "DELETE FROM audit_entries WHERE tenant_id = :t AND seq = 1", t=tenant_id)
        [report] = await verify(rt, tenant_id)
        assert not report.ok and report.first_bad_seq == 1 and report.reason == "seq_gap"
    finally:
        await forget(rt, tenant_id)


async def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)
    await record(rt, tenant_id, 5)
    try:
        # A careful attacker edits entry 3 and gives it a hash that matches its new content.
        async with rt.sessionmaker() as session:
            entry = (await audit_service.list_entries(session=session, tenant_id=tenant_id, limit=10))[2]
            entry.target_id = "thing_forged"
            forged_hash = audit_service.hash_of(entry)
            await session.rollback()
        await attack(rt, "UPDATE audit_entries SET target_id = 'thing_forged', hash = :h "
                         "WHERE tenant_id = :t AND seq = 3", h=forged_hash, t=tenant_id)
        [report] = await verify(rt, tenant_id)
        assert not report.ok and report.first_bad_seq == 4 and report.reason == "prev_hash_mismatch"
    finally:
        await forget(rt, tenant_id)


async def test_concurrent_appends_form_one_gap_free_chain(rt: Runtime) -> None:
    tenant_id = await new_tenant(rt)

    async def append(i: int) -> None:
        uow = rt.unit_of_work()
        try:
            await audit_actions.do_record(uow, tenant_id=tenant_id, actor=None, action="test.concurrent",
                                          details={"i": i})
            await uow.commit()
        finally:
            await uow.session.close()

    await asyncio.gather(*(append(i) for i in range(20)))
    [report] = await verify(rt, tenant_id)
    assert report.ok and report.entries_checked == 20 and report.last_seq == 20
    async with rt.sessionmaker() as session:
        rows = await audit_service.list_entries(session=session, tenant_id=tenant_id, limit=100)
    assert [r.seq for r in rows] == list(range(1, 21))
    assert sorted(r.details["i"] for r in rows) == list(range(20))
    assert all(r.actor_type == "system" and r.actor_id is None for r in rows)
