"""A server of this folder's own: attachments go to a temporary data dir with a small size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings

UPLOAD_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def files_server(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("kefu-data")
    live = LiveServer(make_settings(sqlite_url, data_dir=data_dir, attachment_max_bytes=UPLOAD_LIMIT,
                                    attachment_url_ttl_seconds=60)).start()
    yield live
    live.stop()


@pytest.fixture
async def files_http(files_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=files_server.url, timeout=15) as client:
        yield client
