"""Masking of personal data (emails, phone numbers, long digit runs) for logs and low-privilege views."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<!\d)(\+?\d{1,3}[ -]?)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_DIGITS = re.compile(r"(?<!\d)\d{11,19}(?!\d)")


def mask_text(text: str) -> str:
    """Replace emails, mobile numbers and card-like digit runs with masked forms."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)
    return _DIGITS.sub(lambda m: m.group(0)[:3] + "*" * (len(m.group(0)) - 7) + m.group(0)[-4:], text)


def mask_email(email: str | None) -> str | None:
    return None if email is None else mask_text(email)
