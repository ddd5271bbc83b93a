"""Workspace reads and uploads on a real kefu node (SQLite, embedded mode), per inbox size.

For each size (default 1,000 and 5,000 conversations of 5 customer messages each, half of them assigned to
the measured agent, who has read some) and each of ``--runs`` runs on a fresh database, it times sequential
requests from one client (``--requests`` each) and prints the median latency per endpoint:

  * the inbox list, most recently active first, with per-conversation unread counts (``limit=50``);
  * "mine" (``assignee_id=me``) and the unread total (``/workspace/unread``);
  * text search over message bodies (``q=``: a LIKE scan, the one that grows with history);
  * canned responses by shortcut prefix (500 of them);
  * a 200 KB PNG upload and its download through a signed URL.

Medians over runs are printed with the machine's core count. Usage:
``.venv/bin/python bench/workspace.py [--sizes 1000 5000] [--runs 3] [--requests 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.canned import actions as canned_actions  # noqa: E402
from kefu.canned.schemas import CannedResponseCreate  # noqa: E402
from kefu.channels import actions as channel_actions  # noqa: E402
from kefu.channels import visitor_tokens  # noqa: E402
from kefu.channels.schemas import WidgetSessionCreate  # noqa: E402
from kefu.conversations import actions as conversation_actions  # noqa: E402
from kefu.conversations import service as conversation_service  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402
from kefu.runtime import build_runtime  # noqa: E402
from tests.conftest import LiveServer, make_settings  # noqa: E402
from tests.factories import create_tenant  # noqa: E402

WORDS = ["发货", "退款", "发票", "地址", "优惠券", "parcel", "refund", "invoice", "size", "colour"]


def png(width: int, height: int, noise: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = os.urandom(noise)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def seed(url: str, conversations: int) -> tuple[str, dict[str, str]]:
    """Return (tenant id, agent headers) after writing the inbox through the domain actions."""
    runtime = build_runtime(make_settings(url))
    try:
        tenant = await create_tenant(runtime)
        claims = []
        for start in range(0, conversations, 250):
            uow = runtime.unit_of_work()
            for _ in range(start, min(conversations, start + 250)):
                session = await channel_actions.do_start_widget_session(
                    uow, settings=runtime.settings, data=WidgetSessionCreate(inbox_id=tenant.inbox_id), locale="zh")
                claims.append(visitor_tokens.verify(runtime.settings.secret_key, session.visitor_token))
            await uow.commit()
            await uow.session.close()
        for round_ in range(5):
            for start in range(0, conversations, 250):
                uow = runtime.unit_of_work()
                batch = [channel_actions.VisitorPost(
                    claims=c, body=f"第{round_}条 {WORDS[(i + round_) % len(WORDS)]} order SO-{i:06d}",
                    client_message_id=f"{i}-{round_}", locale="zh")
                    for i, c in enumerate(claims[start:start + 250], start)]
                await channel_actions.do_post_visitor_messages(uow, batch)
                await uow.commit()
                await uow.session.close()
        uow = runtime.unit_of_work()
        rows = await conversation_service.list_conversations(session=uow.session, tenant_id=tenant.id,
                                                             limit=conversations)
        for index, conversation in enumerate(rows):
            if index % 2 == 0:
                await conversation_actions.do_update_conversation(
                    uow, conversation=conversation, changes={"assignee_id": tenant.agent.id})
            if index % 4 == 0:
                messages = await conversation_service.list_messages(session=uow.session,
                                                                    conversation_id=conversation.id, limit=3)
                await conversation_actions.do_advance_read_marker(
                    uow, conversation=conversation, user_id=tenant.agent.id, up_to_message_id=messages[-1].id)
        for i in range(500):
            await canned_actions.do_create_canned(
                uow, tenant_id=tenant.id, owner_key="shared", created_by=tenant.admin.id,
                data=CannedResponseCreate(shortcut=f"s{i:03d}", title=f"模板 {i}", body_zh=f"您好 {{{{customer.name}}}} {i}"))
        await uow.commit()
        await uow.session.close()
        return tenant.id, tenant.agent.headers
    finally:
        await runtime.engine.dispose()


async def timed(client: httpx.AsyncClient, requests: int, call) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of ``requests`` sequential calls (after one warm-up)."""
    await call(client)
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        response = await call(client)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code in (200, 201), response.text
    return statistics.median(samples)


async def one_run(size: int, requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
        _, headers = await seed(url, size)
        live = LiveServer(make_settings(url, data_dir=Path(tmp) / "data", log_level="ERROR")).start()
        image = png(300, 200, 200_000)
        try:
            async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=60) as client:
                upload_meta: dict[str, str] = {}

                async def upload(c: httpx.AsyncClient) -> httpx.Response:
                    r = await c.post("/api/v1/attachments", params={"filename": "photo.png"}, content=image)
                    upload_meta.update(r.json())
                    return r

                results = {
                    "inbox list, last activity + unread": await timed(client, requests, lambda c: c.get(
                        "/api/v1/conversations", params={"sort": "last_activity", "limit": 50})),
                    "mine (assignee_id=me)": await timed(client, requests, lambda c: c.get(
                        "/api/v1/conversations", params={"assignee_id": "me", "limit": 50})),
                    "unread total": await timed(client, requests, lambda c: c.get(
                        "/api/v1/workspace/unread", params={"assignee_id": "all"})),
                    "text search q=优惠券": await timed(client, requests, lambda c: c.get(
                        "/api/v1/conversations", params={"q": "优惠券", "limit": 50})),
                    "canned by prefix /s12": await timed(client, requests, lambda c: c.get(
                        "/api/v1/canned-responses", params={"shortcut": "s12"})),
                    "upload 200 KB png": await timed(client, requests, upload),
                }
                results["signed download 200 KB"] = await timed(
                    client, requests, lambda c: c.get(upload_meta["url"], headers={"Authorization": ""}))
            return results
        finally:
            live.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  runs: {args.runs}  requests per endpoint and run: {args.requests}")
    for size in args.sizes:
        runs = [await one_run(size, args.requests) for _ in range(args.runs)]
        print(f"\n{size} conversations ({size * 5} customer messages), median latency in ms (median of runs):")
        for name in runs[0]:
            values = [r[name] for r in runs]
            print(f"  {name:38s} {statistics.median(values):8.2f}   runs: {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    asyncio.run(main())
