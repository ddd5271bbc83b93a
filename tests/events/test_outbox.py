"""The outbox: events commit with their change, leave only after commit, and survive a lost publish."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from kefu.core.errors import ValidationFailed
from kefu.events.bus import MemoryBus
from kefu.events.group_commit import GroupCommitter
from kefu.events.models import OutboxEvent
from kefu.events.outbox import OutboxRelay, id_runs
from kefu.events.types import DomainEvent
from kefu.events.uow import UnitOfWork
from kefu.runtime import build_runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.models import Tenant
from kefu.tenants.schemas import TenantCreate
from tests.conftest import close_runtime, make_settings


@pytest.fixture
async def rt(db_url: str):
    runtime = build_runtime(make_settings(db_url))
    received: list[DomainEvent] = []
    runtime.bus.subscribe(received.append)
    runtime.extras["received"] = received
    yield runtime
    await close_runtime(runtime)


async def _tenant(rt) -> str:
    uow = rt.unit_of_work()
    import uuid

    tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=f"o-{uuid.uuid4().hex[:10]}", name="x"))
    await uow.commit()
    await uow.session.close()
    return tenant.id


async def test_events_are_published_after_commit_not_before(rt) -> None:
    tenant_id = await _tenant(rt)
    uow = rt.unit_of_work()
    uow.emit("test.happened", tenant_id=tenant_id, data={"n": 1})
    await uow.session.flush()
    assert rt.extras["received"] == []  # nothing leaves before the commit
    events = await uow.commit()
    await uow.session.close()
    assert [e.type for e in rt.extras["received"]] == ["test.happened"]
    assert events[0].id == rt.extras["received"][0].id and events[0].data == {"n": 1}


async def test_rolled_back_work_emits_nothing(rt) -> None:
    tenant_id = await _tenant(rt)
    uow = rt.unit_of_work()
    uow.emit("test.rolled_back", tenant_id=tenant_id, data={})
    await uow.rollback()
    await uow.session.close()
    async with rt.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.tenant_id == tenant_id))
    assert count == 0 and rt.extras["received"] == []


async def test_unpublished_events_are_recovered_by_the_relay(rt) -> None:
    """A node that committed but died before publishing: another relay publishes the rows later."""
    tenant_id = await _tenant(rt)
    lost = UnitOfWork(rt.sessionmaker(), relay=None)  # commits, never publishes: the crash window
    lost.emit("test.lost", tenant_id=tenant_id, data={"k": "v"})
    [event] = await lost.commit()
    await lost.session.close()
    bus = MemoryBus("recovering-node")
    got: list[DomainEvent] = []
    bus.subscribe(got.append)
    relay = OutboxRelay(rt.sessionmaker, bus, stale_seconds=0)
    await relay.recover(stale_seconds=0)
    assert event.id in [e.id for e in got]
    again: list[DomainEvent] = []
    bus.subscribe(again.append)
    await relay.recover(stale_seconds=0)  # once claimed, a row is not published again
    assert event.id not in [e.id for e in again]


async def test_published_events_are_marked_and_another_nodes_unpublished_row_is_not(rt) -> None:
    """Marks go out as id ranges; a row committed in between by a node that has not published it yet stays
    unmarked, so the sweeper still delivers it if that node dies."""
    tenant_id = await _tenant(rt)
    ours: list[int] = []
    for batch in range(3):
        uow = rt.unit_of_work()
        for n in range(4):
            uow.emit("test.ours", tenant_id=tenant_id, data={"batch": batch, "n": n})
        ours += [e.id for e in await uow.commit()]
        await uow.session.close()
        if batch == 1:
            other = UnitOfWork(rt.sessionmaker(), relay=None)  # another node: committed, not yet published
            other.emit("test.theirs", tenant_id=tenant_id, data={})
            [theirs] = await other.commit()
            await other.session.close()
    assert id_runs(ours) == [(ours[0], ours[7]), (ours[8], ours[11])]
    await rt.relay.flush_marks()
    async with rt.sessionmaker() as session:
        marked = dict((await session.execute(select(OutboxEvent.id, OutboxEvent.published_at.is_not(None)).where(
            OutboxEvent.tenant_id == tenant_id))).all())
    assert all(marked[i] for i in ours)
    assert not marked[theirs.id]
    found = await rt.relay.recover(stale_seconds=0)
    assert found >= 1  # the other node's row is still delivered


async def test_group_commit_shares_one_transaction_and_isolates_failures(rt) -> None:
    committer = GroupCommitter(rt.sessionmaker, rt.relay, max_batch=64)
    import uuid

    async def create(uow: UnitOfWork, slug: str) -> str:
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=slug))
        uow.emit("test.tenant", tenant_id=tenant.id, data={"slug": slug})
        return tenant.id

    async def broken(uow: UnitOfWork) -> None:
        uow.emit("test.never", tenant_id="ten_x", data={})
        raise ValidationFailed("validation_error")

    slugs = [f"g-{uuid.uuid4().hex[:10]}" for _ in range(30)]
    jobs = [committer.run(lambda uow, s=s: create(uow, s)) for s in slugs]
    jobs.insert(7, committer.run(broken))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert isinstance(results[7], ValidationFailed)
    ids = [r for r in results if isinstance(r, str)]
    assert len(ids) == 30
    assert committer.batches < 30  # requests arriving together were committed together
    async with rt.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(Tenant).where(Tenant.id.in_(ids)))
    assert stored == 30
    types = [e.type for e in rt.extras["received"]]
    assert types.count("test.tenant") == 30 and "test.never" not in types


async def test_duplicate_client_work_in_one_batch_fails_alone(rt) -> None:
    """Two use cases in one batch violating a unique constraint: the second fails, the first commits."""
    committer = GroupCommitter(rt.sessionmaker, rt.relay)
    import uuid

    slug = f"d-{uuid.uuid4().hex[:10]}"
    results = await asyncio.gather(
        committer.run(lambda uow: tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name="a"))),
        committer.run(lambda uow: tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name="b"))),
        return_exceptions=True,
    )
    assert isinstance(results[0], Tenant) and isinstance(results[1], Exception)


async def test_a_batch_of_events_gets_ids_in_emit_order_matching_the_stored_rows(rt) -> None:
    """The ids handed to subscribers are the rows' ids, ascending in emit order, also after a savepoint that
    was rolled back, and a second unit of work continues after them (no id handed out twice)."""
    tenant_id = await _tenant(rt)
    uow = rt.unit_of_work()
    for n in range(300):
        uow.emit(f"test.n{n % 7}", tenant_id=tenant_id, data={"n": n})
    marker = uow.mark()
    uow.emit("test.discarded", tenant_id=tenant_id, data={})
    uow.discard_since(marker)
    first = await uow.commit()
    await uow.session.close()
    second_uow = rt.unit_of_work()
    second_uow.emit("test.after", tenant_id=tenant_id, data={"n": 300})
    second = await second_uow.commit()
    await second_uow.session.close()
    events = first + second
    assert [e.data["n"] for e in events] == list(range(301))
    assert [e.id for e in events] == sorted({e.id for e in events})
    async with rt.sessionmaker() as session:
        rows = {r.id: r for r in await session.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id))}
    assert sorted(rows) == [e.id for e in events]
    assert all(rows[e.id].type == e.type and rows[e.id].data == e.data for e in events)
    assert [e.id for e in rt.extras["received"] if e.tenant_id == tenant_id] == [e.id for e in events]


async def test_event_data_beyond_what_orjson_writes_is_stored_and_read_back(rt) -> None:
    """JSON columns go through orjson, with the stdlib for what only it takes (a 20-digit marketplace id)."""
    tenant_id = await _tenant(rt)
    uow = rt.unit_of_work()
    uow.emit("test.big", tenant_id=tenant_id, data={"trade_id": 2**70, "codes": {1: "one"}})
    [event] = await uow.commit()
    await uow.session.close()
    async with rt.sessionmaker() as session:
        stored = await session.scalar(select(OutboxEvent.data).where(OutboxEvent.id == event.id))
    assert stored == {"trade_id": 2**70, "codes": {"1": "one"}}


async def test_the_group_committer_marks_published_events_and_keeps_the_marks_when_its_batch_fails(rt) -> None:
    tenant_id = await _tenant(rt)
    uow = rt.unit_of_work()
    uow.emit("test.published", tenant_id=tenant_id, data={})
    [event] = await uow.commit()  # published to the bus; its mark waits for the next batch or sweep
    await uow.session.close()
    committer = GroupCommitter(rt.sessionmaker, rt.relay)

    async def published() -> bool:
        async with rt.sessionmaker() as session:
            return await session.scalar(select(OutboxEvent.published_at).where(OutboxEvent.id == event.id)) is not None

    async def failing(uow: UnitOfWork) -> None:
        raise ValidationFailed("invalid_input")

    with pytest.raises(ValidationFailed):
        await committer.run(failing)
    assert not await published(), "the failed batch rolled back, marks included"
    await committer.run(lambda uow: _noop())
    assert await published(), "the next batch marked it"


async def _noop() -> None:
    return None
