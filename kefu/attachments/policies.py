"""Pure rules for uploaded files: what a file really is (magic bytes), how big an image is, safe names,
and the signatures of short-lived download URLs.

The type is decided from the bytes only: a client's file name or Content-Type header is a claim, and a file
we serve back inline with a wrong type is how stored XSS starts (an "image" that is really HTML).
"""

from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass

from kefu.core.security import constant_time_equals, hmac_sha256_hex

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
ALLOWED_TYPES = IMAGE_TYPES | {"application/pdf"}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
              "application/pdf": "pdf"}
# Extensions that already name the sniffed type correctly and are kept as the client spelled them.
_SAME_TYPE = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "gif": "image/gif",
              "webp": "image/webp", "pdf": "application/pdf"}
FILENAME_MAX_CHARS = 120
# Characters unsafe or confusing in file names on common systems, and in Content-Disposition headers.
_UNSAFE = re.compile(r'[\\/:*?"<>|;\x00-\x1f\x7f]')


def sniff(data: bytes) -> str | None:
    """The content type of ``data`` judged by its magic bytes, or None if it is not one we accept."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def image_size(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) read from the image header without decoding pixels; None if the header is broken."""
    try:
        if content_type == "image/png":
            if data[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", data[16:24])
            return _positive(width, height)
        if content_type == "image/gif":
            width, height = struct.unpack("<HH", data[6:10])
            return _positive(width, height)
        if content_type == "image/webp":
            return _webp_size(data)
        if content_type == "image/jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):  # a header cut short
        return None
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        if len(data) < 30:
            return None
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return _positive(width, height)
    if chunk == b"VP8L":
        if len(data) < 25 or data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 ":
        if len(data) < 30 or data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    return None


# JPEG start-of-frame markers that carry the dimensions (not DHT 0xC4, JPG 0xC8, DAC 0xCC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    length = len(data)
    while index + 4 <= length:
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            index += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return None
        segment = struct.unpack(">H", data[index + 2:index + 4])[0]
        if segment < 2:
            return None
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[index + 5:index + 9])
            return _positive(width, height)
        index += 2 + segment
    return None


def sanitise_filename(raw: str | None, content_type: str) -> str:
    """A display- and header-safe file name whose extension matches the sniffed type."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # no directories, from any OS
    name = _UNSAFE.sub("", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # no format/bidi controls
    name = " ".join(name.split()).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    wanted = EXTENSIONS[content_type]
    if _SAME_TYPE.get(ext.lower()) != content_type:
        stem = name if ext.lower() not in _SAME_TYPE else stem  # "a.pdf" sniffed as png → "a.png"
        ext = wanted
    stem = stem.strip(" .") or "file"
    stem = stem[: FILENAME_MAX_CHARS - len(ext) - 1].rstrip(" .") or "file"
    return f"{stem}.{ext}"


@dataclass(frozen=True, slots=True)
class UploadBudget:
    """How much widget visitors may upload per window: each visitor, and all visitors of an inbox together
    (visitor sessions are free to mint, so the inbox budget is what really bounds the disk)."""

    window_seconds: int
    visitor_uploads: int
    visitor_bytes: int
    inbox_uploads: int
    inbox_bytes: int


@dataclass(frozen=True, slots=True)
class SignedLink:
    expires: int
    signature: str


def sign_link(secret: str, *, tenant_id: str, attachment_id: str, expires: int) -> SignedLink:
    """Sign (attachment, tenant, expiry) so the link works in ``<img src>`` without a bearer token."""
    return SignedLink(expires, hmac_sha256_hex(secret + ":attachment", f"{tenant_id}\n{attachment_id}\n{expires}"))


def link_valid(secret: str, *, tenant_id: str, attachment_id: str, expires: int, signature: str, now: float) -> bool:
    if expires < now:
        return False
    expected = sign_link(secret, tenant_id=tenant_id, attachment_id=attachment_id, expires=expires).signature
    return constant_time_equals(expected, signature)


def content_disposition(filename: str, content_type: str) -> str:
    """Images open inline; anything else downloads. The name is RFC 5987-encoded (Chinese names survive)."""
    from urllib.parse import quote

    kind = "inline" if content_type in IMAGE_TYPES else "attachment"
    ascii_name = filename.encode("ascii", "ignore").decode() or "file." + filename.rsplit(".", 1)[-1]
    ascii_name = ascii_name.replace('"', "")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
