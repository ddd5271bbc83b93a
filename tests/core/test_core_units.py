"""Small core pieces users meet indirectly: language choice, masking, settings, ids, signed blobs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kefu.core.i18n import negotiate, translate
from kefu.core.ids import has_prefix, new_id
from kefu.core.masking import mask_text
from kefu.core.security import sign_blob, unsign_blob
from kefu.core.settings import Settings


@pytest.mark.parametrize(
    ("header", "expected"),
    [("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9", "en"), ("fr-FR,zh-TW;q=0.5", "zh"),
     ("de", "en"), ("", "en"), ("en;q=0.2, zh;q=0.9", "zh"), ("zh;q=abc, en", "en")],
)
def test_accept_language_negotiation(header: str, expected: str) -> None:
    assert negotiate(header) == expected


def test_every_key_is_translated_in_both_languages() -> None:
    from kefu.core.i18n import catalogue_files

    en, zh = catalogue_files("en"), catalogue_files("zh")
    assert set(en) ^ set(zh) == set()
    assert all(zh[k] and zh[k] != en[k] for k in en if not k.startswith("_"))
    assert translate("payload_too_large", "zh", limit=10).endswith("字节的上限。")


def test_masking_hides_emails_phones_and_card_numbers() -> None:
    masked = mask_text("联系 zhang.san@example.com 或 13812345678, card 6222021234567890123")
    assert "zhang.san@" not in masked and "13812345678" not in masked and "6222021234567890123" not in masked
    assert "z***@example.com" in masked and "138****5678" in masked


def test_production_refuses_default_or_short_secret() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production")
    with pytest.raises(ValidationError):
        Settings(environment="production", secret_key="short")
    assert Settings(environment="production", secret_key="x" * 40).environment == "production"


def test_ids_are_prefixed_and_unique() -> None:
    ids = [new_id("msg") for _ in range(200)]
    assert all(has_prefix(i, "msg") for i in ids)
    assert len(set(ids)) == 200


def test_signed_blob_rejects_tampering() -> None:
    token = sign_blob("s3cret", b'{"a":1}')
    assert unsign_blob("s3cret", token) == b'{"a":1}'
    assert unsign_blob("other", token) is None
    body, mac = token.split(".")
    assert unsign_blob("s3cret", body[:-2] + "xx." + mac) is None
    assert unsign_blob("s3cret", "garbage") is None


def test_timestamps_read_the_same_whatever_offset_they_were_given_in() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy.dialects import sqlite

    from kefu.core.clock import isoformat
    from kefu.core.db import UTCDateTime

    in_utc = datetime(2026, 12, 6, 3, 4, 5, 678901, tzinfo=UTC)
    in_beijing = in_utc.astimezone(timezone(timedelta(hours=8)))
    assert isoformat(in_utc) == isoformat(in_beijing) == "2026-12-06T03:04:05.678Z"
    bind = UTCDateTime().bind_processor(sqlite.dialect())
    assert bind(in_utc) == bind(in_beijing) == "2026-12-06 03:04:05.678901"
    assert bind(in_utc.replace(microsecond=0)) == "2026-12-06 03:04:05.000000"
    with pytest.raises(ValueError):
        bind(in_utc.replace(tzinfo=None))
