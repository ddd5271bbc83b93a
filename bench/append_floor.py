"""The floor of a chat batch's storage: the group committer's steady-state work as bare sqlite3 calls.

A batch of widget messages that append to open conversations does, in one ``BEGIN IMMEDIATE`` transaction, the
work of the group committer (``kefu.channels.actions.do_post_visitor_messages``): mark the previous batch's
events published, read the outbox's highest id, find each visitor's contact and live conversation, look up the
client message ids already stored, insert the messages and their outbox events (the same ``message.created``
payload as JSON), update the conversations, commit. Here that is plain ``sqlite3`` calls on one thread with
the least Python that builds the same rows, on a connection set up as kefu's (WAL, ``synchronous=NORMAL``,
foreign keys on, the same auto-checkpoint): no asyncio, no SQLAlchemy, no pydantic, one timestamp per batch.
Where it does less than the committer, on purpose or for brevity: one join finds contact and conversation
(kefu runs two queries and reads every conversation column), the inboxes' state is not read, conversations
update with one ``UPDATE … FROM (VALUES …)``, and nothing handles a first message, a repeat or a refusal.
Against the same schema (migrated by kefu) and the same set-up, the committer's own CPU per message
(``bench/group_commit.py``'s transaction) is printed in the same run: the gap is about what a rewrite of the
committer's Python could win, and the floor is what storage costs even then. Then the floor runs twice more, each
time on a fresh database without one more of two outbox indexes, which shows what such an index costs.
Prints medians over ``--runs`` transactions per size, with the machine's core count.
Usage: ``.venv/bin/python bench/append_floor.py [--sizes 64 256] [--runs 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from group_commit import BODY, batches, widget_visitors  # noqa: E402

from kefu.channels import actions as channel_actions  # noqa: E402
from kefu.channels import visitor_tokens  # noqa: E402
from kefu.core.db import SQLITE_AUTOCHECKPOINT_PAGES  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402
from kefu.core.settings import Settings  # noqa: E402
from kefu.runtime import build_runtime, prepare_serving_process  # noqa: E402


async def open_conversations(size: int) -> tuple[Path, list[visitor_tokens.VisitorClaims]]:
    """A fresh database with ``size`` widget visitors, each with an open conversation (opened by kefu)."""
    path = Path(tempfile.mkdtemp(prefix="kefu-floor-")) / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    runtime = build_runtime(Settings(database_url=url, environment="development"))
    try:
        claims = await widget_visitors(runtime, size)
        await runtime.committer.run_batched_many(channel_actions.do_post_visitor_messages, [
            channel_actions.VisitorPost(claims=c, body=BODY, client_message_id=f"open-{i}")
            for i, c in enumerate(claims)])
    finally:
        await runtime.stop()
    return path, claims


# Dropped one after the other for the last figures: the outbox index keyed by conversation (one page dirtied
# per message, like the two on messages) and the one on ``published_at``.
DROPPED_INDEXES = ("ix_outbox_events_conversation_id_id", "ix_outbox_events_published_at")


def _rows(width: int, count: int) -> str:
    return ", ".join(["(" + ", ".join("?" * width) + ")"] * count)


def floor(path: Path, claims: list[visitor_tokens.VisitorClaims], runs: int) -> list[float]:
    """CPU milliseconds of each of ``runs`` bare transactions appending one message per visitor."""
    size = len(claims)
    tenant_id, inbox_id = claims[0].tenant_id, claims[0].inbox_id
    visitors = [c.visitor_id for c in claims]
    lookup = ("SELECT ci.value, cv.id, cv.contact_id, cv.status, cv.assignee_id, cv.owner_kind, cv.message_count, "
              "cv.version FROM contact_identities AS ci JOIN contacts AS ct ON ct.id = ci.contact_id "
              "JOIN conversations AS cv ON cv.contact_id = ct.id AND cv.inbox_id = ? AND cv.status != 'closed' "
              f"WHERE ci.tenant_id = ? AND ci.kind = 'visitor' AND ci.value IN ({', '.join('?' * size)})")
    stored = (f"WITH k (conversation_id, sender_kind, client_message_id) AS (VALUES {_rows(3, size)}) "
              "SELECT m.id FROM k JOIN messages AS m ON m.conversation_id = k.conversation_id "
              "AND m.sender_kind = k.sender_kind AND m.client_message_id = k.client_message_id")
    messages = ("INSERT INTO messages (id, tenant_id, conversation_id, sender_kind, sender_id, body, content_type, "
                "attachments, private, client_message_id, delivery_status, created_at) VALUES " + _rows(12, size))
    events = ("INSERT INTO outbox_events (id, tenant_id, type, conversation_id, contact_id, data, created_at) VALUES "
              + _rows(7, size))
    conversations = (f"WITH v (id, last_message_at, last_message_preview, message_count, version, updated_at) AS "
                     f"(VALUES {_rows(6, size)}) UPDATE conversations SET last_message_at = v.last_message_at, "
                     "last_message_preview = v.last_message_preview, message_count = v.message_count, "
                     "version = v.version, updated_at = v.updated_at FROM v WHERE conversations.id = v.id")
    connection = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON", f"wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}"):
        connection.execute(f"PRAGMA {pragma}")
    published: tuple[int, int] | None = None
    cpu = []
    try:
        for run in range(runs + 1):
            started = time.process_time()
            connection.execute("BEGIN IMMEDIATE")
            now = datetime.now(UTC)
            stamp, iso = now.isoformat(" ", "microseconds")[:26], now.isoformat(timespec="milliseconds")[:23] + "Z"
            if published:
                connection.execute("UPDATE outbox_events SET published_at = ? WHERE id BETWEEN ? AND ? "
                                   "AND published_at IS NULL", (stamp, *published))
            top = connection.execute("SELECT max(id) FROM outbox_events").fetchone()[0] or 0
            live = {row[0]: row for row in connection.execute(lookup, (inbox_id, tenant_id, *visitors))}
            client_ids = [f"{run}-{i}" for i in range(size)]
            keys: list[str] = []
            for visitor, client_id in zip(visitors, client_ids, strict=True):
                keys += (live[visitor][1], "customer", client_id)
            if connection.execute(stored, keys).fetchall():
                raise RuntimeError("client ids are fresh in every run")
            message_values: list[object] = []
            event_values: list[object] = []
            conversation_values: list[object] = []
            for index, (visitor, client_id) in enumerate(zip(visitors, client_ids, strict=True)):
                _, conversation_id, contact_id, status, assignee_id, owner_kind, count, version = live[visitor]
                message_id = new_id("msg")
                message_values += (message_id, tenant_id, conversation_id, "customer", contact_id, BODY, "text", "[]",
                                   0, client_id, "sent", stamp)
                preview = BODY[:100]
                data = {"message": {"id": message_id, "conversation_id": conversation_id, "sender_kind": "customer",
                                    "sender_id": contact_id, "body": BODY, "content_type": "text", "attachments": [],
                                    "private": False, "client_message_id": client_id, "delivery_status": "sent",
                                    "created_at": iso},
                        "conversation": {"id": conversation_id, "status": status, "assignee_id": assignee_id,
                                         "contact_id": contact_id, "inbox_id": inbox_id, "owner_kind": owner_kind,
                                         "last_message_preview": preview, "version": version + 1}}
                event_values += (top + 1 + index, tenant_id, "message.created", conversation_id, contact_id,
                                 orjson.dumps(data).decode(), stamp)
                conversation_values += (conversation_id, stamp, preview, count + 1, version + 1, stamp)
            connection.execute(messages, message_values)
            connection.execute(events, event_values)
            connection.execute(conversations, conversation_values)
            connection.execute("COMMIT")
            published = (top + 1, top + size)
            if run:  # the first one warms the statement cache
                cpu.append((time.process_time() - started) * 1000)
    finally:
        connection.close()
    return cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    prepare_serving_process()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  runs: {args.runs}  load: {os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        committer = statistics.median((await batches(size, args.runs))[0])
        floors = []  # on a fresh database each: all indexes, then without the dropped ones one after the other
        for dropped in range(len(DROPPED_INDEXES) + 1):
            path, claims = await open_conversations(size)
            try:
                with contextlib.closing(sqlite3.connect(path)) as connection:
                    for index in DROPPED_INDEXES[:dropped]:
                        connection.execute(f"DROP INDEX {index}")
                floors.append(statistics.median(await asyncio.to_thread(floor, path, claims, args.runs)))
            finally:
                shutil.rmtree(path.parent, ignore_errors=True)
        bare = floors[0]
        print(f"  transaction of {size:4d} widget messages: group committer {committer * 1000 / size:5.0f} µs CPU per"
              f" message, bare sqlite3 {bare * 1000 / size:5.0f} µs ({bare / committer:.0%})")
        for index, before, cpu in zip(DROPPED_INDEXES, floors[:-1], floors[1:], strict=True):
            print(f"    bare, without {index} as well: {cpu * 1000 / size:5.0f} µs"
                  f" ({(cpu - before) * 1000 / size:+.0f} µs)")

if __name__ == "__main__":
    asyncio.run(main())
