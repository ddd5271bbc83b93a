"""Where attachment bytes live. Domains depend on this Protocol; ``kefu.integrations.storage`` implements it."""

from __future__ import annotations

from typing import Protocol


class AttachmentStore(Protocol):
    """A blob store keyed by opaque strings; writes are all-or-nothing (a reader never sees half a file)."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...
