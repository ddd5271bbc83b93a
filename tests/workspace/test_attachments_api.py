"""Uploading, sending and downloading files as an agent and as a widget visitor, and refusing bad files."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from kefu.attachments import policies
from kefu.attachments.workers import sweep_once
from kefu.integrations.storage.local import LocalDiskStore
from kefu.runtime import Runtime
from tests.channels.chat import bearer, customer_says, start_session
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client, is_ack, visitor_client
from tests.workspace import files
from tests.workspace.conftest import UPLOAD_LIMIT


async def upload(http: httpx.AsyncClient, headers: dict[str, str], data: bytes, filename: str | None = None,
                 *, widget: bool = False, **params: str) -> httpx.Response:
    path = "/api/v1/widget/attachments" if widget else "/api/v1/attachments"
    if filename is not None:
        params["filename"] = filename
    return await http.post(path, headers={**headers, "Content-Type": "application/octet-stream"}, content=data,
                           params=params)


async def test_agent_uploads_an_image_and_downloads_it(files_http: httpx.AsyncClient, tenant: TenantFixture,
                                                       other_tenant: TenantFixture) -> None:
    image = files.png(40, 30)
    # The header claims HTML; the bytes decide.
    response = await files_http.post("/api/v1/attachments", params={"filename": "../截图 1.html"},
                                     headers={**tenant.agent.headers, "Content-Type": "text/html"}, content=image)
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["content_type"] == "image/png" and meta["kind"] == "image"
    assert (meta["width"], meta["height"], meta["size"]) == (40, 30, len(image))
    assert meta["filename"] == "截图 1.html.png"

    content = await files_http.get(f"/api/v1/attachments/{meta['id']}/content", headers=tenant.agent.headers)
    assert content.status_code == 200 and content.content == image
    assert content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.headers["content-disposition"].startswith("inline;")

    signed = await files_http.get(meta["url"])  # no Authorization header: the signature is the key
    assert signed.status_code == 200 and signed.content == image
    forged = await files_http.get(meta["url"].replace("sig=", "sig=0"))
    other = await files_http.get(f"/api/v1/attachments/{meta['id']}/content", headers=other_tenant.agent.headers)
    anonymous = await files_http.get(f"/api/v1/attachments/{meta['id']}/content")
    assert forged.status_code == other.status_code == 404
    assert forged.json()["error"]["code"] == other.json()["error"]["code"] == "attachment_not_found"
    assert anonymous.status_code == 401

    # A Blob without a type is sent without Content-Type: still an upload, not a broken JSON body.
    untyped = await files_http.post("/api/v1/attachments", headers=tenant.agent.headers, content=files.gif(1, 1))
    assert untyped.status_code == 201 and untyped.json()["filename"] == "file.gif", untyped.text

    again = await files_http.get(f"/api/v1/attachments/{meta['id']}", headers=tenant.supervisor.headers)
    assert again.status_code == 200 and again.json()["sha256"] == meta["sha256"]


async def test_expired_links_stop_working(files_http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    meta = (await upload(files_http, tenant.agent.headers, files.PDF, "invoice.pdf")).json()
    expired = policies.sign_link("test-secret-key-for-kefu-suite-0123456789", tenant_id=tenant.id,
                                 attachment_id=meta["id"], expires=int(time.time()) - 1)
    response = await files_http.get(f"/api/v1/attachments/{meta['id']}/content",
                                    params={"exp": expired.expires, "sig": expired.signature})
    assert response.status_code == 404
    pdf = await files_http.get(meta["url"])
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].startswith("attachment;")


async def test_bad_files_are_refused_with_clear_codes(files_http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    too_big = await upload(files_http, tenant.agent.headers, files.png() + b"\x00" * UPLOAD_LIMIT, "big.png")
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "attachment_too_large"
    html = await upload(files_http, tenant.agent.headers, b"<html><script>alert(1)</script></html>", "x.png")
    assert html.status_code == 415 and html.json()["error"]["code"] == "unsupported_attachment_type"
    broken = await upload(files_http, tenant.agent.headers, b"\x89PNG\r\n\x1a\nbroken", "x.png")
    assert broken.status_code == 415
    empty = await upload(files_http, tenant.agent.headers, b"", "x.png")
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_attachment"
    zh = await files_http.post("/api/v1/attachments", content=b"%!PS-Adobe",
                               headers={**tenant.agent.headers, "Accept-Language": "zh-CN"})
    assert "不支持" in zh.json()["error"]["message"]
    visitor = await start_session(files_http, tenant.inbox_id)
    big = await upload(files_http, bearer(visitor["visitor_token"]), b"\xff" * (UPLOAD_LIMIT + 1), widget=True)
    assert big.status_code == 413
    nobody = await upload(files_http, {}, files.png(), widget=True)
    assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "invalid_visitor_token"


async def test_visitor_sends_an_image_and_agent_replies_with_a_file(
    files_http: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    visitor = await start_session(files_http, tenant.inbox_id)
    token = visitor["visitor_token"]
    photo = await upload(files_http, bearer(token), files.jpeg_header(800, 600), "破损包裹.jpg", widget=True)
    assert photo.status_code == 201, photo.text
    photo_id = photo.json()["id"]
    sent = await files_http.post("/api/v1/widget/messages", headers=bearer(token), json={
        "body": "", "client_message_id": "with-photo", "attachments": [{"id": photo_id}]})
    assert sent.status_code == 201, sent.text
    [attachment] = sent.json()["attachments"]
    assert attachment == {"id": photo_id, "name": "破损包裹.jpg", "content_type": "image/jpeg",
                          "size": len(files.jpeg_header(800, 600)), "width": 800, "height": 600,
                          "url": f"/api/v1/attachments/{photo_id}/content"}
    conversation_id = sent.json()["conversation_id"]

    messages = (await files_http.get(f"/api/v1/conversations/{conversation_id}/messages",
                                     headers=tenant.agent.headers)).json()["data"]
    assert messages[-1]["attachments"][0]["id"] == photo_id

    label = (await upload(files_http, tenant.agent.headers, files.PDF, "退货单.pdf")).json()
    secret = (await upload(files_http, tenant.agent.headers, files.gif(2, 2), "internal.gif")).json()
    reply = await files_http.post(f"/api/v1/conversations/{conversation_id}/messages", headers=tenant.agent.headers,
                                  json={"body": "请打印退货单", "attachments": [{"id": label["id"]}]})
    assert reply.status_code == 201, reply.text
    note = await files_http.post(f"/api/v1/conversations/{conversation_id}/messages", headers=tenant.agent.headers,
                                 json={"body": "warehouse photo", "private": True,
                                       "attachments": [{"id": secret["id"]}]})
    assert note.status_code == 201

    links = await files_http.post("/api/v1/widget/attachment-links", headers=bearer(token),
                                  json={"attachment_ids": [photo_id, label["id"], secret["id"]]})
    assert links.status_code == 200
    by_id = {link["id"]: link for link in links.json()["data"]}
    assert set(by_id) == {photo_id, label["id"]}  # never the file on an internal note
    download = await files_http.get(by_id[label["id"]]["url"])
    assert download.status_code == 200 and download.content == files.PDF

    stranger = await start_session(files_http, tenant.inbox_id)
    none = await files_http.post("/api/v1/widget/attachment-links", headers=bearer(stranger["visitor_token"]),
                                 json={"attachment_ids": [photo_id, label["id"]]})
    assert none.json()["data"] == []
    stolen = await files_http.post("/api/v1/widget/messages", headers=bearer(stranger["visitor_token"]), json={
        "body": "look", "client_message_id": "stolen", "attachments": [{"id": label["id"]}]})
    assert stolen.status_code == 422 and stolen.json()["error"]["code"] == "invalid_attachment"


async def test_other_tenants_uploads_cannot_be_attached(files_http: httpx.AsyncClient, tenant: TenantFixture,
                                                        other_tenant: TenantFixture) -> None:
    theirs = (await upload(files_http, other_tenant.agent.headers, files.png(), "x.png")).json()
    visitor = await start_session(files_http, tenant.inbox_id)
    said = await customer_says(files_http, visitor["visitor_token"], "hello")
    response = await files_http.post(f"/api/v1/conversations/{said['conversation_id']}/messages",
                                     headers=tenant.agent.headers,
                                     json={"body": "see", "attachments": [{"id": theirs["id"]}]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_attachment"
    # Inline metadata of files hosted elsewhere still works as before.
    hosted = await files_http.post(f"/api/v1/conversations/{said['conversation_id']}/messages",
                                   headers=tenant.agent.headers, json={"body": "", "attachments": [
                                       {"name": "manual.pdf", "content_type": "application/pdf", "size": 10,
                                        "url": "https://shop.example/manual.pdf"}]})
    assert hosted.status_code == 201 and hosted.json()["attachments"][0]["name"] == "manual.pdf"


async def test_uploads_are_sent_over_the_websockets_too(files_server: LiveServer, files_http: httpx.AsyncClient,
                                                        tenant: TenantFixture) -> None:
    visitor = await start_session(files_http, tenant.inbox_id)
    photo = (await upload(files_http, bearer(visitor["visitor_token"]), files.webp_vp8x(120, 90), "a.webp",
                          widget=True)).json()
    widget, _, _ = await visitor_client(files_server.ws_url, visitor["visitor_token"])
    agent, _, _ = await agent_client(files_server.ws_url, tenant.agent.token)
    try:
        await widget.send({"type": "message.send", "id": "ws-photo",
                           "data": {"body": "看图", "attachments": [{"id": photo["id"]}]}})
        ack = await widget.wait_for(is_ack("ws-photo"))
        assert ack["type"] == "message.ack", ack
        assert ack["data"]["message"]["attachments"][0]["width"] == 120
        seen = await agent.wait_for(lambda f: f["type"] == "message.created"
                                    and f["data"]["message"]["body"] == "看图")
        assert seen["data"]["message"]["attachments"][0]["id"] == photo["id"]
        await widget.send({"type": "message.send", "id": "ws-bad",
                           "data": {"body": "", "attachments": [{"id": "att_01jd0000000000000000000000"}]}})
        refused = await widget.wait_for(is_ack("ws-bad"))
        assert refused["type"] == "error" and refused["data"]["code"] == "invalid_attachment"
    finally:
        await widget.close()
        await agent.close()


async def test_uploads_never_sent_are_cleaned_up(files_server: LiveServer, files_http: httpx.AsyncClient,
                                                 runtime: Runtime, tenant: TenantFixture) -> None:
    visitor = await start_session(files_http, tenant.inbox_id)
    token = visitor["visitor_token"]
    kept = (await upload(files_http, bearer(token), files.png(), "sent.png", widget=True)).json()
    dropped = (await upload(files_http, bearer(token), files.png(), "abandoned.png", widget=True)).json()
    sent = await files_http.post("/api/v1/widget/messages", headers=bearer(token), json={
        "body": "", "client_message_id": "keep", "attachments": [{"id": kept["id"]}]})
    assert sent.status_code == 201
    store = LocalDiskStore(files_server.settings.data_dir / "attachments")
    await sweep_once(runtime, store)  # with the default grace of a day, today's uploads stay
    assert (await files_http.get(dropped["url"])).status_code == 200
    assert await sweep_once(runtime, store, grace=timedelta(0)) >= 1
    assert (await files_http.get(dropped["url"])).status_code == 404
    assert (await store.get(f"{tenant.id}/{dropped['id']}")) is None
    assert (await files_http.get(kept["url"])).status_code == 200
