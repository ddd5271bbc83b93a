"""Bare WebSocket echo servers: the ceiling the chat path is compared against.

``python bench/echo_server.py websockets PORT`` (the websockets library) or ``... fastapi PORT`` (uvicorn +
FastAPI endpoint, the same stack kefu runs on).
"""

import asyncio
import sys

# No `from __future__ import annotations` here: FastAPI must see the WebSocket annotation as a class.
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


async def _websockets(port: int) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws):  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", port, max_size=2**20, compression=None):
        await asyncio.Future()


def _fastapi(port: int) -> None:
    import uvicorn

    app = FastAPI()

    @app.websocket("/")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect:
            return

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "websockets":
        asyncio.run(_websockets(port))
    else:
        _fastapi(port)
