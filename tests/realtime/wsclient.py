"""A small test client for the realtime protocol, on the ``websockets`` library (a real socket, no mocks)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from kefu.channels import actions as channel_actions
from kefu.channels.schemas import WidgetSessionCreate, WidgetSessionRead
from kefu.runtime import Runtime

Frame = dict[str, Any]


class WSClient:
    """Collects frames; ``wait_for`` consumes them in order until one matches."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Frame] = []  # every frame ever received, for duplicate checks
        self._unclaimed: list[Frame] = []  # received while waiting for something else

    @classmethod
    async def open(cls, url: str, *, lang: str | None = None) -> WSClient:
        headers = {"Accept-Language": lang} if lang else None
        return cls(await connect(url, additional_headers=headers, open_timeout=10, max_size=2**22))

    async def send(self, frame: Frame | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5.0) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = orjson.loads(raw)
        self.received.append(frame)
        return frame

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """Return the first not yet claimed frame (already received or arriving) that matches."""
        for index, frame in enumerate(self._unclaimed):
            if predicate(frame):
                del self._unclaimed[index]
                return frame
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if predicate(frame):
                return frame
            self._unclaimed.append(frame)

    async def register(self, data: Frame, timeout: float = 10.0) -> tuple[Frame, list[Frame]]:
        """Send register; return (registered frame, frames received before it)."""
        await self.send({"type": "register", "id": "reg-1", "data": data})
        before: list[Frame] = []
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == "registered":
                return frame, before
            if frame["type"] == "error":
                raise AssertionError(f"register refused: {frame}")
            before.append(frame)

    async def quiet(self, seconds: float = 0.3) -> list[Frame]:
        """Frames that arrive until the socket stays silent for ``seconds``."""
        frames: list[Frame] = []
        while True:
            try:
                frames.append(await self.recv(seconds))
            except TimeoutError:
                return frames

    async def sync(self) -> list[Frame]:
        """Round-trip a ping; return what arrived before the pong (everything already queued for us)."""
        ping_id = f"p-{uuid.uuid4().hex[:8]}"
        await self.send({"type": "ping", "id": ping_id})
        frames: list[Frame] = []
        while True:
            frame = await self.recv()
            if frame["type"] == "pong" and frame.get("id") == ping_id:
                return frames
            frames.append(frame)

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, list[Frame]]:
        """Read until the server closes; return (close code, frames received)."""
        frames: list[Frame] = []
        try:
            while True:
                frames.append(await self.recv(timeout))
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames

    async def close(self) -> None:
        await self.ws.close()


async def agent_client(ws_url: str, token: str, resume_from: int | None = None, *,
                       lang: str | None = None) -> tuple[WSClient, Frame, list[Frame]]:
    client = await WSClient.open(f"{ws_url}/api/v1/realtime", lang=lang)
    registered, before = await client.register({"token": token, "resume_from": resume_from})
    return client, registered, before


async def visitor_client(ws_url: str, visitor_token: str, resume_from: int | None = None, *,
                         lang: str | None = None) -> tuple[WSClient, Frame, list[Frame]]:
    client = await WSClient.open(f"{ws_url}/api/v1/widget/ws", lang=lang)
    registered, before = await client.register({"visitor_token": visitor_token, "resume_from": resume_from})
    return client, registered, before


async def start_visitor(runtime: Runtime, inbox_id: str, *, identity_token: str | None = None
                        ) -> WidgetSessionRead:
    """Start a widget session through the channels action; returns the session (token, contact id, ...)."""
    uow = runtime.unit_of_work()
    try:
        session = await channel_actions.do_start_widget_session(
            uow, settings=runtime.settings, data=WidgetSessionCreate(inbox_id=inbox_id, identity_token=identity_token),
            locale="en")
        await uow.commit()
    finally:
        await uow.session.close()
    return session


def is_message(body: str, kind: str = "message.created") -> Callable[[Frame], bool]:
    return lambda f: f["type"] == kind and f["data"].get("message", {}).get("body") == body


def is_ack(client_id: str) -> Callable[[Frame], bool]:
    return lambda f: f["type"] in ("message.ack", "error") and f.get("id") == client_id
