"""Serves the built agent workspace (``ui/`` → ``kefu/ui_dist``) at ``/app/``; ``/`` redirects there.

The build output is not committed: ``make run`` and ``make test`` build it. When it is missing the server
still starts and ``/app/`` answers 503 with the command that builds it, instead of a bare 404 or a crash.
These routes are kept out of the OpenAPI document: they are files, not API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

router = APIRouter(include_in_schema=False)
UI_DIST = Path(__file__).resolve().parents[2] / "ui_dist"

_MISSING = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Kefu: workspace not built</title>
<body style="font-family:system-ui;max-width:40em;margin:4em auto">
<h1>The agent workspace is not built</h1>
<p>Build it with <code>make ui</code> (or <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>) and reload.
The API, the widget and <a href="/docs">/docs</a> work without it.</p>
<p lang="zh">客服工作台尚未构建：请运行 <code>make ui</code> 后刷新页面。</p></body></html>"""

# Hashed asset names never change content, so they may be cached for a long time; index.html must not be.
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app")
async def app_without_slash() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app/{path:path}")
async def app_file(path: str) -> Response:
    """A built file, or index.html for client-side paths (the workspace keeps its own state in the page)."""
    root = UI_DIST
    index = root / "index.html"
    if not index.is_file():
        return HTMLResponse(_MISSING, status_code=503, headers=_NO_CACHE)
    if path:
        candidate = (root / path).resolve()
        if candidate.is_relative_to(root.resolve()) and candidate.is_file():
            headers = _IMMUTABLE if candidate.parent.name == "assets" else _NO_CACHE
            return FileResponse(candidate, headers=headers)
        if path.startswith("assets/"):
            return Response(status_code=404)
    return FileResponse(index, headers=_NO_CACHE)
