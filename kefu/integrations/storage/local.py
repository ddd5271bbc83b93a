"""Attachment bytes on the local disk (embedded mode, or a volume every node mounts in scale-out)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_KEY = re.compile(r"^[a-z0-9_]+/[a-z0-9_]+$")


class LocalDiskStore:
    """Files under ``root/<tenant id>/<attachment id>``; written to a temporary file, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):  # keys are built from our own ids; anything else is a bug or an attack
            raise ValueError("invalid storage key")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with_suppress_unlink(tmp)
            raise

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(with_suppress_unlink, str(self._path(key)))


def with_suppress_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def store_for(runtime: Any) -> LocalDiskStore:
    """The node's attachment store (one per runtime, kept in ``runtime.extras``), under ``KEFU_DATA_DIR``."""
    store = runtime.extras.get("attachment_store")
    if store is None:
        store = runtime.extras["attachment_store"] = LocalDiskStore(runtime.settings.data_dir / "attachments")
    return store
