"""Uploads stay with their owner: no visitor can take another's file, staff re-sending a file copies it,
visitors cannot fill the disk, and uploads never sent are cleaned up. Real server, both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kefu.attachments.workers import sweep_once
from kefu.integrations.storage.local import LocalDiskStore
from kefu.runtime import Runtime
from tests.channels.chat import bearer, customer_says, start_session
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import TenantFixture, create_tenant
from tests.workspace import files

UPLOAD_LIMIT = 64 * 1024
VISITOR_UPLOADS = 3
VISITOR_BYTES = 100_000
INBOX_UPLOADS = 5
TENANT_QUOTA = 150_000
MISSING = "att_01jd0000000000000000000000"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def safety_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = request.getfixturevalue(f"{request.param}_url")
    data_dir: Path = tmp_path_factory.mktemp("kefu-safety")
    live = LiveServer(make_settings(
        url, data_dir=data_dir, attachment_max_bytes=UPLOAD_LIMIT, attachment_window_seconds=3600,
        attachment_visitor_max_uploads=VISITOR_UPLOADS, attachment_visitor_max_bytes=VISITOR_BYTES,
        attachment_inbox_max_uploads=INBOX_UPLOADS, attachment_inbox_max_bytes=10 * UPLOAD_LIMIT,
        attachment_tenant_quota_bytes=TENANT_QUOTA)).start()
    yield live
    live.stop()


@pytest.fixture
async def http(safety_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=safety_server.url, timeout=15) as client:
        yield client


@pytest.fixture
async def safety_runtime(safety_server: LiveServer) -> AsyncIterator[Runtime]:
    async with runtime_on(safety_server.settings.database_url) as rt:
        yield rt


@pytest.fixture
async def shop(safety_runtime: Runtime) -> TenantFixture:
    return await create_tenant(safety_runtime)


def store_of(server: LiveServer) -> LocalDiskStore:
    return LocalDiskStore(server.settings.data_dir / "attachments")


def stored_files(server: LiveServer, tenant_id: str) -> set[str]:
    """Names of every file in the tenant's folder, temporary ones included."""
    folder = server.settings.data_dir / "attachments" / tenant_id
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


async def upload(http: httpx.AsyncClient, headers: dict[str, str], data: bytes, *, widget: bool = False,
                 **params: str) -> httpx.Response:
    path = "/api/v1/widget/attachments" if widget else "/api/v1/attachments"
    return await http.post(path, headers={**headers, "Content-Type": "application/octet-stream"}, content=data,
                           params=params)


async def widget_send(http: httpx.AsyncClient, token: str, ids: list[str], key: str) -> httpx.Response:
    return await http.post("/api/v1/widget/messages", headers=bearer(token), json={
        "body": "see file", "client_message_id": key, "attachments": [{"id": i} for i in ids]})


async def agent_send(http: httpx.AsyncClient, shop: TenantFixture, conversation_id: str, ids: list[str],
                     *, private: bool = False) -> httpx.Response:
    return await http.post(f"/api/v1/conversations/{conversation_id}/messages", headers=shop.agent.headers,
                           json={"body": "file", "private": private, "attachments": [{"id": i} for i in ids]})


async def links(http: httpx.AsyncClient, token: str, ids: list[str]) -> dict[str, Any]:
    response = await http.post("/api/v1/widget/attachment-links", headers=bearer(token), json={"attachment_ids": ids})
    assert response.status_code == 200, response.text
    return {link["id"]: link for link in response.json()["data"]}


async def transcript_ids(http: httpx.AsyncClient, shop: TenantFixture, conversation_id: str) -> list[str]:
    response = await http.get(f"/api/v1/conversations/{conversation_id}/messages", headers=shop.agent.headers)
    assert response.status_code == 200, response.text
    return [a["id"] for m in response.json()["data"] for a in m["attachments"]]


def padded_png(size: int) -> bytes:
    """A valid PNG header followed by padding: a file of exactly ``size`` bytes the server accepts."""
    head = files.png()
    return head + b"\x00" * (size - len(head))


async def test_a_visitor_cannot_attach_another_visitors_upload(http: httpx.AsyncClient, shop: TenantFixture) -> None:
    first = (await start_session(http, shop.inbox_id))["visitor_token"]
    thief = (await start_session(http, shop.inbox_id))["visitor_token"]
    sent_photo = (await upload(http, bearer(first), files.png(5, 5), widget=True, filename="receipt.png")).json()
    unsent_photo = (await upload(http, bearer(first), files.gif(4, 4), widget=True)).json()
    sent = await widget_send(http, first, [sent_photo["id"]], "first-photo")
    assert sent.status_code == 201, sent.text
    conversation_id = sent.json()["conversation_id"]
    await customer_says(http, thief, "hello")  # the thief has a conversation of their own

    missing = await widget_send(http, thief, [MISSING], "missing")
    for stolen_id, key in ((sent_photo["id"], "steal-sent"), (unsent_photo["id"], "steal-unsent")):
        stolen = await widget_send(http, thief, [stolen_id], key)
        # Exactly the answer for an id that does not exist: nothing tells the thief the id is real.
        assert stolen.status_code == missing.status_code == 422
        assert stolen.json()["error"]["code"] == missing.json()["error"]["code"] == "invalid_attachment"
    assert await links(http, thief, [sent_photo["id"], unsent_photo["id"]]) == {}

    # Nothing moved: the first customer's transcript still shows the file and their link still works.
    assert await transcript_ids(http, shop, conversation_id) == [sent_photo["id"]]
    mine = await links(http, first, [sent_photo["id"]])
    download = await http.get(mine[sent_photo["id"]]["url"])
    assert download.status_code == 200 and download.content == files.png(5, 5)
    # The owner can still send the upload the thief tried to take.
    later = await widget_send(http, first, [unsent_photo["id"]], "first-gif")
    assert later.status_code == 201 and later.json()["attachments"][0]["id"] == unsent_photo["id"]


async def test_staff_resending_a_file_copies_it_and_the_first_customer_keeps_theirs(
    safety_server: LiveServer, safety_runtime: Runtime, http: httpx.AsyncClient, shop: TenantFixture
) -> None:
    alice = (await start_session(http, shop.inbox_id))["visitor_token"]
    bob = (await start_session(http, shop.inbox_id))["visitor_token"]
    alice_conv = (await customer_says(http, alice, "need a return label"))["conversation_id"]
    bob_conv = (await customer_says(http, bob, "me too"))["conversation_id"]
    label = (await upload(http, shop.agent.headers, files.PDF, filename="退货单.pdf")).json()
    first = await agent_send(http, shop, alice_conv, [label["id"]])
    assert first.status_code == 201, first.text

    again = await agent_send(http, shop, bob_conv, [label["id"]])
    assert again.status_code == 201, again.text
    [copy] = again.json()["attachments"]
    assert copy["id"] != label["id"] and copy["name"] == "退货单.pdf" and copy["size"] == len(files.PDF)
    assert await transcript_ids(http, shop, alice_conv) == [label["id"]]
    assert await transcript_ids(http, shop, bob_conv) == [copy["id"]]

    alice_links = await links(http, alice, [label["id"], copy["id"]])
    bob_links = await links(http, bob, [label["id"], copy["id"]])
    assert set(alice_links) == {label["id"]} and set(bob_links) == {copy["id"]}
    for link in (alice_links[label["id"]], bob_links[copy["id"]]):
        download = await http.get(link["url"])
        assert download.status_code == 200 and download.content == files.PDF

    # An internal note in a third conversation copies too, and shows that copy to nobody.
    carol = (await start_session(http, shop.inbox_id))["visitor_token"]
    carol_conv = (await customer_says(http, carol, "hi"))["conversation_id"]
    note = await agent_send(http, shop, carol_conv, [label["id"]], private=True)
    assert note.status_code == 201, note.text
    note_copy = note.json()["attachments"][0]["id"]
    assert await links(http, carol, [label["id"], copy["id"], note_copy]) == {}

    # Every one of them was sent: the clean-up keeps the rows and the one shared file.
    await sweep_once(safety_runtime, store_of(safety_server), grace=timedelta(0))
    for attachment_id in (label["id"], copy["id"], note_copy):
        content = await http.get(f"/api/v1/attachments/{attachment_id}/content", headers=shop.agent.headers)
        assert content.status_code == 200 and content.content == files.PDF, attachment_id


async def test_a_copy_never_sent_is_cleaned_up_without_deleting_the_shared_file(
    safety_server: LiveServer, safety_runtime: Runtime, http: httpx.AsyncClient, shop: TenantFixture
) -> None:
    visitor = (await start_session(http, shop.inbox_id))["visitor_token"]
    conversation_id = (await customer_says(http, visitor, "hi"))["conversation_id"]
    other = (await customer_says(http, (await start_session(http, shop.inbox_id))["visitor_token"], "yo"))
    label = (await upload(http, shop.agent.headers, files.PDF)).json()
    assert (await agent_send(http, shop, conversation_id, [label["id"]])).status_code == 201
    # A replay of the same client message id answers with the original message: the copy made while
    # resolving the reference is never sent, and the sweep removes its row but not the shared file.
    body = {"body": "file", "client_message_id": "twice", "attachments": [{"id": label["id"]}]}
    path = f"/api/v1/conversations/{other['conversation_id']}/messages"
    first = await http.post(path, headers=shop.agent.headers, json=body)
    replay = await http.post(path, headers=shop.agent.headers, json=body)
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.json()["attachments"] == first.json()["attachments"]
    removed = await sweep_once(safety_runtime, store_of(safety_server), grace=timedelta(0))
    assert removed >= 1
    for attachment_id in (label["id"], first.json()["attachments"][0]["id"]):
        content = await http.get(f"/api/v1/attachments/{attachment_id}/content", headers=shop.agent.headers)
        assert content.status_code == 200 and content.content == files.PDF


async def test_visitor_uploads_have_a_budget_per_visitor_and_per_inbox(
    safety_server: LiveServer, http: httpx.AsyncClient, shop: TenantFixture
) -> None:
    stored: set[str] = set()

    async def accepted(response: httpx.Response) -> None:
        assert response.status_code == 201, response.text
        stored.add(response.json()["id"])

    first = (await start_session(http, shop.inbox_id))["visitor_token"]
    for _ in range(VISITOR_UPLOADS):
        await accepted(await upload(http, bearer(first), files.png(), widget=True))
    refused = await upload(http, bearer(first), files.png(), widget=True)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"]["scope"] == "visitor"
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    zh = await http.post("/api/v1/widget/attachments", content=files.png(),
                         headers={**bearer(first), "Accept-Language": "zh-CN"})
    assert zh.status_code == 429 and "秒后再试" in zh.json()["error"]["message"]

    # A fresh visitor session (free to mint) gets its own budget, until the inbox's budget is spent.
    second = (await start_session(http, shop.inbox_id))["visitor_token"]
    await accepted(await upload(http, bearer(second), files.png(), widget=True))
    await accepted(await upload(http, bearer(second), files.png(), widget=True))
    third = (await start_session(http, shop.inbox_id))["visitor_token"]
    inbox_full = await upload(http, bearer(third), files.png(), widget=True)
    assert inbox_full.status_code == 429 and inbox_full.json()["error"]["details"]["scope"] == "inbox"

    # Refused uploads stored nothing: no file on disk, the budget still counts five, and agents are not
    # limited by it.
    assert stored_files(safety_server, shop.id) == stored
    await accepted(await upload(http, shop.agent.headers, files.png()))
    assert stored_files(safety_server, shop.id) == stored


async def test_visitor_byte_budget(http: httpx.AsyncClient, shop: TenantFixture) -> None:
    visitor = (await start_session(http, shop.inbox_id))["visitor_token"]
    assert (await upload(http, bearer(visitor), padded_png(60_000), widget=True)).status_code == 201
    over = await upload(http, bearer(visitor), padded_png(60_000), widget=True)
    assert over.status_code == 429 and over.json()["error"]["details"]["max_bytes"] == VISITOR_BYTES
    assert (await upload(http, bearer(visitor), padded_png(30_000), widget=True)).status_code == 201


async def test_tenant_storage_quota_and_it_is_freed_by_the_clean_up(
    safety_server: LiveServer, safety_runtime: Runtime, http: httpx.AsyncClient, shop: TenantFixture,
) -> None:
    big = padded_png(60_000)
    kept = (await upload(http, shop.agent.headers, big)).json()
    dropped = (await upload(http, shop.agent.headers, big)).json()
    full = await upload(http, shop.agent.headers, big)
    assert full.status_code == 413 and full.json()["error"]["code"] == "attachment_quota_exceeded"
    assert full.json()["error"]["details"] == {"quota_bytes": TENANT_QUOTA, "used_bytes": 120_000}
    zh = await http.post("/api/v1/attachments", content=big, headers={**shop.agent.headers, "Accept-Language": "zh"})
    assert "存储空间已用完" in zh.json()["error"]["message"]
    visitor = (await start_session(http, shop.inbox_id))["visitor_token"]
    refused = await upload(http, bearer(visitor), big, widget=True)
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "attachment_quota_exceeded"
    assert stored_files(safety_server, shop.id) == {kept["id"], dropped["id"]}  # refused uploads left no file

    conversation_id = (await customer_says(http, visitor, "hi"))["conversation_id"]
    assert (await agent_send(http, shop, conversation_id, [kept["id"]])).status_code == 201
    await sweep_once(safety_runtime, store_of(safety_server), grace=timedelta(0))
    assert (await http.get(dropped["url"])).status_code == 404
    assert (await upload(http, shop.agent.headers, big)).status_code == 201  # the never-sent file's room is back
    assert (await upload(http, shop.agent.headers, big)).status_code == 413


async def test_agent_uploads_for_a_conversation_are_cleaned_up_unless_sent(
    safety_server: LiveServer, safety_runtime: Runtime, http: httpx.AsyncClient, shop: TenantFixture
) -> None:
    visitor = (await start_session(http, shop.inbox_id))["visitor_token"]
    conversation_id = (await customer_says(http, visitor, "hi"))["conversation_id"]
    made = []
    for _ in range(3):
        response = await upload(http, shop.agent.headers, files.gif(3, 3), conversation_id=conversation_id)
        assert response.status_code == 201, response.text
        made.append(response.json())
    public, note, never = made
    assert (await agent_send(http, shop, conversation_id, [public["id"]])).status_code == 201
    assert (await agent_send(http, shop, conversation_id, [note["id"]], private=True)).status_code == 201
    store = store_of(safety_server)
    await sweep_once(safety_runtime, store)  # within the retention window everything stays
    assert (await http.get(never["url"])).status_code == 200
    await sweep_once(safety_runtime, store, grace=timedelta(0))
    assert (await http.get(never["url"])).status_code == 404
    assert await store.get(f"{shop.id}/{never['id']}") is None
    for sent in (public, note):
        assert (await http.get(sent["url"])).status_code == 200
    # An upload made for one conversation and sent in another is a copy; the original stays unsent there.
    other = (await customer_says(http, (await start_session(http, shop.inbox_id))["visitor_token"], "x"))
    moved = (await upload(http, shop.agent.headers, files.gif(2, 2), conversation_id=conversation_id)).json()
    response = await agent_send(http, shop, other["conversation_id"], [moved["id"]])
    assert response.status_code == 201 and response.json()["attachments"][0]["id"] != moved["id"]
    copy_id = response.json()["attachments"][0]["id"]
    await sweep_once(safety_runtime, store, grace=timedelta(0))
    assert (await http.get(moved["url"])).status_code == 404  # the unsent original is gone ...
    content = await http.get(f"/api/v1/attachments/{copy_id}/content", headers=shop.agent.headers)
    assert content.status_code == 200 and content.content == files.gif(2, 2)  # ... the file the copy names is not
