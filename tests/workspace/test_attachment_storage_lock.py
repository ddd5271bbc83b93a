"""While an upload's file is being written, no transaction of the upload is open: on SQLite that would hold the
database's only write lock (``BEGIN IMMEDIATE``) and make every other writer wait for the disk. And since the
row is then added in a transaction of its own, an upload refused there (the quota or the visitor's budget
taken meanwhile by a concurrent upload) deletes the file it wrote.

The node runs in the test's event loop (ASGI transport, no background workers, its own SQLite file), with a
default executor whose only thread stays busy until the test releases it: the file writes, which run in that
executor, wait there as on a node whose executor is busy, in a known order and for as long as the test needs.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from kefu.app import create_app
from kefu.runtime import Runtime
from tests.channels.chat import bearer, customer_says, start_session
from tests.conftest import close_runtime, make_settings
from tests.factories import TenantFixture, create_tenant
from tests.workspace import files

UPLOAD = "/api/v1/attachments"
WIDGET_UPLOAD = "/api/v1/widget/attachments"


class BusyExecutor(ThreadPoolExecutor):
    """A default executor whose one thread is busy until ``release``: work handed to it meanwhile waits, in order."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self._busy = threading.Event()
        self.handed: list[str] = []  # names of the functions handed over, in order
        super().submit(self._busy.wait)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        # ``asyncio.to_thread`` hands over ``partial(context.run, function, *args)``.
        called = fn.args[0] if isinstance(fn, functools.partial) and fn.args and callable(fn.args[0]) else fn
        self.handed.append(getattr(called, "__name__", repr(called)))
        return super().submit(fn, *args, **kwargs)

    def release(self) -> None:
        self._busy.set()

    async def until_handed(self, count: int, *requests: asyncio.Task[httpx.Response]) -> None:
        """Wait until ``count`` functions wait for the thread; a request that ends first is a failure."""
        while len(self.handed) < count:
            for request in requests:
                if request.done():
                    response = request.result()
                    pytest.fail(f"the upload ended before its file was written: {response.status_code} {response.text}")
            await asyncio.sleep(0.01)


@dataclass
class Node:
    http: httpx.AsyncClient
    runtime: Runtime
    shop: TenantFixture
    database: str
    attachments: Path

    def files_of(self, tenant_id: str) -> dict[str, bytes]:
        """Every file under the tenant's folder (temporary ones included), by name."""
        folder = self.attachments / tenant_id
        return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}

    def can_take_write_lock(self) -> bool:
        """Whether another connection can begin a write transaction, as every writer of kefu does."""
        connection = sqlite3.connect(self.database, timeout=5, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            return False
        finally:
            connection.close()


@asynccontextmanager
async def node_on(database_url: str, data_dir: Path, **settings: object) -> AsyncIterator[Node]:
    app = create_app(make_settings(database_url, data_dir=data_dir, **settings), configure_logs=False)
    runtime: Runtime = app.state.runtime
    try:
        shop = await create_tenant(runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu.test",
                                     timeout=60) as http:
            yield Node(http=http, runtime=runtime, shop=shop, database=str(make_url(database_url).database),
                       attachments=data_dir / "attachments")
    finally:
        await close_runtime(runtime)


class HeldUploads:
    """Uploads sent while the executor is busy; ``finish`` lets the writes go on and collects the answers."""

    def __init__(self, node: Node, executor: BusyExecutor) -> None:
        self.node, self.executor = node, executor
        self.requests: list[asyncio.Task[httpx.Response]] = []

    async def send(self, path: str, headers: dict[str, str], data: bytes, **params: str) -> None:
        """Send one upload and wait until its file waits to be written (its checks are done)."""
        self.requests.append(post(self.node, path, headers, data, **params))
        await self.executor.until_handed(len(self.requests), *self.requests)

    async def finish(self) -> list[httpx.Response]:
        self.executor.release()
        return list(await asyncio.gather(*self.requests))


@asynccontextmanager
async def held_uploads(node: Node) -> AsyncIterator[HeldUploads]:
    """The loop's default executor is busy until ``finish`` (or the end, should the test fail first; every
    request is then still awaited, so none leaves its transaction open behind the test)."""
    executor = BusyExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    held = HeldUploads(node, executor)
    try:
        yield held
    finally:
        executor.release()
        await asyncio.gather(*held.requests, return_exceptions=True)


def post(node: Node, path: str, headers: dict[str, str], data: bytes, **params: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(node.http.post(
        path, headers={**headers, "Content-Type": "application/octet-stream"}, content=data, params=params))


async def lock_free_meanwhile(node: Node) -> bool:
    """Probe from a thread of its own (the loop's executor is busy, and the loop must keep running)."""
    with ThreadPoolExecutor(max_workers=1) as probe:
        return await asyncio.get_running_loop().run_in_executor(probe, node.can_take_write_lock)


@pytest.mark.parametrize("uploader", ["visitor", "agent_for_a_conversation"])
async def test_the_write_lock_is_free_while_the_file_is_written(fresh_db_url: str, tmp_path: Path,
                                                                uploader: str) -> None:
    async with node_on(fresh_db_url, tmp_path) as node:
        visitor = (await start_session(node.http, node.shop.inbox_id))["visitor_token"]
        if uploader == "visitor":  # the visitor's budget is read first
            path, headers, params = WIDGET_UPLOAD, bearer(visitor), {}
        else:  # the conversation is read first
            conversation_id = (await customer_says(node.http, visitor, "the parcel arrived broken"))["conversation_id"]
            path, headers, params = UPLOAD, node.shop.agent.headers, {"conversation_id": conversation_id}
        photo = files.png(16, 9)
        async with held_uploads(node) as held:
            await held.send(path, headers, photo, filename="parcel.png", **params)
            assert held.executor.handed == ["_put"]
            free = await lock_free_meanwhile(node)
            [response] = await held.finish()
        assert free, "a transaction of the upload held the write lock while its file was being written"
        assert response.status_code == 201, response.text
        meta = response.json()
        assert node.files_of(node.shop.id) == {meta["id"]: photo}
        content = await node.http.get(f"/api/v1/attachments/{meta['id']}/content", headers=node.shop.agent.headers)
        assert content.status_code == 200 and content.content == photo


async def race(node: Node, path: str, headers: dict[str, str], uploads: list[bytes]) -> list[httpx.Response]:
    """Start the uploads one after another, each passing its early checks before the next starts, all
    waiting to be written at once; then let them go on. Which is counted first is up to the database."""
    async with held_uploads(node) as held:
        for data in uploads:
            await held.send(path, headers, data)
        return await held.finish()


async def test_an_upload_that_finds_the_quota_taken_meanwhile_deletes_its_file(fresh_db_url: str,
                                                                               tmp_path: Path) -> None:
    uploads = [files.png(4, 4), files.gif(4, 4)]
    quota = sum(map(len, uploads)) - 1  # either fits alone, not both
    async with node_on(fresh_db_url, tmp_path, attachment_tenant_quota_bytes=quota) as node:
        responses = await race(node, UPLOAD, node.shop.agent.headers, uploads)
        assert sorted(r.status_code for r in responses) == [201, 413], [r.text for r in responses]
        [(won, stored)] = [(r, data) for r, data in zip(responses, uploads, strict=True) if r.status_code == 201]
        [lost] = [r for r in responses if r.status_code == 413]
        assert lost.json()["error"]["code"] == "attachment_quota_exceeded"
        assert lost.json()["error"]["details"] == {"quota_bytes": quota, "used_bytes": len(stored)}
        assert node.files_of(node.shop.id) == {won.json()["id"]: stored}  # the refused upload's file is gone
        # And it counted nothing: the room left is the quota less the stored file.
        rest = b"%PDF-" + b"\x00" * (quota - len(stored) - 5)
        assert (await post(node, UPLOAD, node.shop.agent.headers, rest)).status_code == 201


async def test_a_visitor_upload_that_finds_the_budget_taken_meanwhile_deletes_its_file(fresh_db_url: str,
                                                                                       tmp_path: Path) -> None:
    uploads = [files.png(2, 2), files.png(3, 3)]
    async with node_on(fresh_db_url, tmp_path, attachment_window_seconds=3600,
                       attachment_visitor_max_uploads=1) as node:
        visitor = bearer((await start_session(node.http, node.shop.inbox_id))["visitor_token"])
        responses = await race(node, WIDGET_UPLOAD, visitor, uploads)
        assert sorted(r.status_code for r in responses) == [201, 429], [r.text for r in responses]
        [(won, stored)] = [(r, data) for r, data in zip(responses, uploads, strict=True) if r.status_code == 201]
        [lost] = [r for r in responses if r.status_code == 429]
        error = lost.json()["error"]
        assert error["code"] == "rate_limited" and error["details"]["scope"] == "visitor"
        assert int(lost.headers["retry-after"]) > 0
        assert node.files_of(node.shop.id) == {won.json()["id"]: stored}
