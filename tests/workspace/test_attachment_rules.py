"""Type sniffing, image sizes, file names and signed links: the pure rules, over many inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kefu.attachments import policies
from tests.workspace import files


def test_types_come_from_the_bytes_not_the_name() -> None:
    assert policies.sniff(files.png()) == "image/png"
    assert policies.sniff(files.jpeg_header(10, 20)) == "image/jpeg"
    assert policies.sniff(files.gif(5, 6)) == "image/gif"
    assert policies.sniff(files.webp_vp8x(640, 480)) == "image/webp"
    assert policies.sniff(files.PDF) == "application/pdf"
    assert policies.sniff(b"<html><script>alert(1)</script>") is None
    assert policies.sniff(b"MZ\x90\x00") is None  # a Windows executable


def test_image_sizes_are_read_from_headers() -> None:
    assert policies.image_size(files.png(31, 7), "image/png") == (31, 7)
    assert policies.image_size(files.jpeg_header(1024, 768), "image/jpeg") == (1024, 768)
    assert policies.image_size(files.gif(5, 6), "image/gif") == (5, 6)
    assert policies.image_size(files.webp_vp8x(640, 480), "image/webp") == (640, 480)
    assert policies.image_size(b"\x89PNG\r\n\x1a\n", "image/png") is None  # truncated


@given(st.binary(max_size=64))
def test_image_size_never_raises_on_garbage(tail: bytes) -> None:
    for prefix, kind in ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                         (b"GIF89a", "image/gif"), (b"RIFF\x00\x00\x00\x00WEBP", "image/webp"),
                         (b"RIFF\x00\x00\x00\x00WEBPVP8L", "image/webp"),
                         (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
                         (b"RIFF\x00\x00\x00\x00WEBPVP8X", "image/webp")):
        size = policies.image_size(prefix + tail, kind)
        assert size is None or (size[0] > 0 and size[1] > 0)


def test_file_names_are_made_safe_and_match_the_type() -> None:
    assert policies.sanitise_filename("收据.png", "image/png") == "收据.png"
    assert policies.sanitise_filename("../../etc/passwd", "application/pdf") == "passwd.pdf"
    assert policies.sanitise_filename("C:\\Users\\me\\photo.JPEG", "image/jpeg") == "photo.JPEG"
    assert policies.sanitise_filename("invoice.pdf", "image/png") == "invoice.png"
    assert policies.sanitise_filename("page.html", "image/png") == "page.html.png"
    assert policies.sanitise_filename('a"b<c>\x00\n.gif', "image/gif") == "abc.gif"
    assert policies.sanitise_filename("", "image/webp") == "file.webp"
    assert policies.sanitise_filename(None, "application/pdf") == "file.pdf"
    assert len(policies.sanitise_filename("长" * 500 + ".png", "image/png")) <= policies.FILENAME_MAX_CHARS


@given(st.text(max_size=300), st.sampled_from(sorted(policies.ALLOWED_TYPES)))
def test_any_name_becomes_a_safe_one(raw: str, content_type: str) -> None:
    name = policies.sanitise_filename(raw, content_type)
    assert 0 < len(name) <= policies.FILENAME_MAX_CHARS
    assert not any(ch in name for ch in '/\\:*?"<>|;') and name.isprintable()
    assert name.rsplit(".", 1)[-1].lower() in {k for k, v in policies._SAME_TYPE.items() if v == content_type}
    header = policies.content_disposition(name, content_type)
    assert "\n" not in header and "\r" not in header


def test_signed_links_expire_and_cannot_be_moved() -> None:
    link = policies.sign_link("s3cret", tenant_id="ten_a", attachment_id="att_1", expires=2_000)
    ok = dict(tenant_id="ten_a", attachment_id="att_1", expires=2_000, signature=link.signature)
    assert policies.link_valid("s3cret", **ok, now=1_999)
    assert not policies.link_valid("s3cret", **ok, now=2_001)
    assert not policies.link_valid("s3cret", **{**ok, "attachment_id": "att_2"}, now=1_000)
    assert not policies.link_valid("s3cret", **{**ok, "tenant_id": "ten_b"}, now=1_000)
    assert not policies.link_valid("s3cret", **{**ok, "expires": 3_000}, now=1_000)
    assert not policies.link_valid("other", **ok, now=1_000)
