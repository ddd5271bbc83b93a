"""Attachment shapes for the API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kefu.core.schemas import ReadModel


class AttachmentRead(ReadModel):
    id: str
    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    kind: str  # image | file
    sha256: str
    created_at: datetime
    url: str = Field(description="Signed download URL, usable without an Authorization header until url_expires_at")
    url_expires_at: datetime


class AttachmentLinksRequest(BaseModel):
    """Ask for signed download links of attachments the visitor may see."""

    attachment_ids: list[str] = Field(min_length=1, max_length=50)

    model_config = ConfigDict(json_schema_extra={"examples": [{"attachment_ids": ["att_01jd0000000000000000000000"]}]})


class AttachmentLink(BaseModel):
    id: str
    url: str
    url_expires_at: datetime


class AttachmentLinks(BaseModel):
    data: list[AttachmentLink]
