"""Entity extraction: order numbers, phones, emails, tracking numbers, amounts, dates and catalogue products.

Rules rather than a learned tagger: these entities have formats (carrier waybill patterns, marketplace
order ids, E.164) that a regex states exactly, and a wrong digit in an order number is worse than a miss.
Candidates of every extractor are collected and overlaps are settled by priority (a tracking number is not
also an order number or a phone), then by length.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import phonenumbers
import re2

from kefu.nlp.language import fold
from kefu.nlp.understanding import Entity

log = logging.getLogger("kefu.nlp")

# Tenant patterns only ever see this many characters of a message (the pipeline already cuts messages to
# ``understanding.MAX_CHARS``; this also bounds direct callers of ``extract_entities``).
MAX_TENANT_PATTERN_INPUT = 2000


class _Span(Protocol):
    def span(self, group: int = 0) -> tuple[int, int]: ...


class OrderMatcher(Protocol):
    """What both engines offer: ``re.Pattern`` for the built-in patterns, RE2 for everyone else's."""

    def finditer(self, text: str) -> Iterator[_Span]: ...


@dataclass(frozen=True, slots=True)
class OrderPattern:
    """An order-number format of one marketplace. ``group`` selects the number inside a contextual match.

    Only ``builtin`` patterns (reviewed, written in this module) run on Python's backtracking ``re``, which
    they need for lookbehind. Every other pattern (a tenant's, or one passed to ``analyse``) runs on RE2,
    whose matching time is linear in the input, so no pattern can stall the process; a pattern RE2 cannot
    compile (lookaround, backreferences) finds nothing instead of failing the message.
    """

    name: str
    regex: str
    marketplace: str
    group: int = 0
    builtin: bool = False

    def compiled(self) -> OrderMatcher | None:
        return _compile(self.regex) if self.builtin else compile_tenant_pattern(self.regex)


@lru_cache(maxsize=512)
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    # RE2 logs every parse error to stderr; refusals are reported to the caller instead.
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()


def compile_untrusted(regex: str) -> OrderMatcher:
    """Compile a pattern for the linear-time engine; raises ``re2.error`` for what RE2 cannot run."""
    return re2.compile(regex, _RE2_OPTIONS)  # type: ignore[no-any-return]


@lru_cache(maxsize=512)
def compile_tenant_pattern(regex: str) -> OrderMatcher | None:
    """The RE2 form of a tenant pattern, or None when RE2 refuses it (e.g. one stored before RE2 was used)."""
    try:
        return compile_untrusted(regex)
    except re2.error:
        log.warning("order pattern skipped: not supported by the linear-time engine")
        return None


# Defaults cover the demo shop and the marketplaces the commerce connectors normalise. A tenant adds its
# own formats through the API; they are tried before these. These run on ``re``: every quantifier in them is
# bounded or applies to a single character class, so they cannot backtrack catastrophically.
DEFAULT_ORDER_PATTERNS: tuple[OrderPattern, ...] = (
    OrderPattern("demo_shop", r"(?<![A-Za-z0-9])(?:DS|KF|SO)-?\d{6,12}(?![A-Za-z0-9])", "demo", builtin=True),
    # Taobao / Tmall order ids: 16 to 19 digits, e.g. 2026112212345678.
    OrderPattern("taobao", r"(?<!\d)\d{16,19}(?!\d)", "taobao", builtin=True),
    # Shopify order names: #1001.
    OrderPattern("shopify", r"(?<![\w#])#\d{3,8}(?!\d)", "shopify", builtin=True),
    # JD order ids: 10 to 13 digits (an 11-digit mobile number wins over this, see _PRIORITY).
    OrderPattern("jd", r"(?<![\d.])\d{10,13}(?![\d.])", "jd", builtin=True),
    # Any id right after "订单号" / "order number": whatever the shop's format is.
    OrderPattern(
        "contextual",
        # Each optional word owns the spaces before it, so a run of spaces can be split only one way: three
        # adjacent "\s*" made a customer's "order" + 2,000 spaces + "x1" take minutes (cubic backtracking).
        r"(?:订单号?|order(?:\s*(?:no\.?|number|num|id|#))?)(?:\s*(?:是|为|:|：|#|is))?\s*([A-Za-z]{0,4}-?\d{4,20})",
        "unknown", group=1, builtin=True),
)


@dataclass(frozen=True, slots=True)
class CarrierPattern:
    carrier: str
    regex: str
    # Digit-only formats collide with order ids and phones; they count only when the carrier is named.
    needs_keyword: tuple[str, ...] = ()


CARRIER_PATTERNS: tuple[CarrierPattern, ...] = (
    CarrierPattern("SF", r"(?<![A-Za-z0-9])SF\d{10,15}(?!\d)"),
    CarrierPattern("ZTO", r"(?<![A-Za-z0-9])ZTO\d{10,15}(?!\d)"),
    CarrierPattern("STO", r"(?<![A-Za-z0-9])STO\d{10,15}(?!\d)"),
    CarrierPattern("JD", r"(?<![A-Za-z0-9])JD[A-Z]{0,2}\d{10,13}(?!\d)"),
    CarrierPattern("YTO", r"(?<![A-Za-z0-9])YT\d{10,15}(?!\d)"),
    CarrierPattern("EMS", r"(?<![A-Za-z0-9])E[A-Z]\d{9}CN(?![A-Za-z0-9])"),
    CarrierPattern("UPS", r"(?<![A-Za-z0-9])1Z[0-9A-Z]{16}(?![A-Za-z0-9])"),
    CarrierPattern("DHL", r"(?<![A-Za-z0-9])JJD\d{10,18}(?!\d)"),
    CarrierPattern("ZTO", r"(?<!\d)(?:7[0-9]|5[0-9]|6[0-9])\d{10,12}(?!\d)", ("中通", "zto")),
    CarrierPattern("STO", r"(?<!\d)(?:77|66|88|55|36|26)\d{10,11}(?!\d)", ("申通", "sto")),
    CarrierPattern("YTO", r"(?<!\d)(?:1|2|6|8)\d{9,12}(?!\d)", ("圆通", "yto")),
    CarrierPattern("EMS", r"(?<!\d)1\d{12}(?!\d)", ("ems", "邮政")),
    CarrierPattern("FedEx", r"(?<!\d)(?:\d{12}|\d{15}|\d{20})(?!\d)", ("fedex", "联邦快递")),
    CarrierPattern("DHL", r"(?<!\d)\d{10}(?!\d)", ("dhl",)),
    CarrierPattern("JD", r"(?<!\d)\d{12,15}(?!\d)", ("京东快递", "京东物流", "jd logistics")),
    CarrierPattern("SF", r"(?<!\d)\d{12}(?!\d)", ("顺丰",)),
)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
_DIGITS_7 = re.compile(r"\d(?:[\s\-()]*\d){6}")

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CN_NUM = "[零〇一二两三四五六七八九十百千万]+"
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
# A number is only tried where it starts: trying every position inside a long run of digits made these
# searches quadratic (2,000 digits took a second).
_NUM_START = r"(?<![\d,.])" + _NUM
_CN_NUM_START = "(?<![零〇一二两三四五六七八九十百千万])" + _CN_NUM
_CURRENCY_PREFIX = {"¥": "CNY", "￥": "CNY", "rmb": "CNY", "cny": "CNY", "$": "USD", "usd": "USD",
                    "us$": "USD", "€": "EUR", "eur": "EUR", "£": "GBP", "hk$": "HKD"}
_CURRENCY_SUFFIX = {"元": "CNY", "块钱": "CNY", "块": "CNY", "rmb": "CNY", "cny": "CNY", "人民币": "CNY",
                    "usd": "USD", "dollars": "USD", "dollar": "USD", "bucks": "USD", "美元": "USD",
                    "美金": "USD", "eur": "EUR", "euros": "EUR", "euro": "EUR", "欧元": "EUR", "毛": "CNY"}
_AMOUNT_PREFIX = re.compile(r"(us\$|hk\$|rmb|cny|usd|eur|[¥￥$€£])\s?(" + _NUM + ")", re.IGNORECASE)
_AMOUNT_SUFFIX = re.compile(
    "(" + _NUM_START + "|" + _CN_NUM_START + r")\s?(块钱|块|元|人民币|美元|美金|欧元|rmb|cny|usd|dollars?|bucks|euros?|eur)(?![a-z])",
    re.IGNORECASE)

_WEEKDAYS_EN = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
                "sunday": 6, "mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3,
                "fri": 4, "sat": 5, "sun": 6}
_WEEKDAYS_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_REL_ZH = {"大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "今天": 0, "今日": 0, "明天": 1, "明日": 1,
           "后天": 2, "大后天": 3}
_REL_EN = {"the day before yesterday": -2, "yesterday": -1, "today": 0, "tonight": 0,
           "the day after tomorrow": 2, "tomorrow": 1}

_DATE_ISO = re.compile(r"(?<!\d)(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?(?!\d)")
_DATE_MD_ZH = re.compile(r"(?<!\d)(\d{1,2})月(\d{1,2})[日号]")
_DATE_D_ZH = re.compile(r"(?<![\d月])(\d{1,2})[号](?!码)")
_DATE_REL_ZH = re.compile("|".join(sorted(_REL_ZH, key=len, reverse=True)))
_DATE_WEEK_ZH = re.compile(r"(上上|上|这|本|下)(?:个)?(?:周|星期|礼拜)([一二三四五六日天末])")
_DATE_AGO_ZH = re.compile(r"((?<!\d)\d+|" + _CN_NUM_START + r")\s?(天|周|个星期|星期)(前|以前|之前|后|以后)")
_DATE_REL_EN = re.compile(r"\b(" + "|".join(sorted(_REL_EN, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_DATE_WEEK_EN = re.compile(r"\b(last|this|next|on)\s+(" + "|".join(_WEEKDAYS_EN) + r")(?:day)?\b", re.IGNORECASE)
_DATE_AGO_EN = re.compile(r"\b(\d+|a|one|two|three|four|five|six|seven|ten)\s+(days?|weeks?)\s+(ago|later)\b",
                          re.IGNORECASE)
_DATE_MON_EN = re.compile(
    r"\b(?:(\d{1,2})(?:st|nd|rd|th)?\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?:,?\s+(\d{4}))?"
    r"|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?)\b",
    re.IGNORECASE)
_EN_SMALL = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10}

# Higher wins when two candidates overlap.
_PRIORITY = {"email": 7, "tracking_number": 6, "phone": 5, "order_number": 4, "product": 3, "amount": 2,
             "date": 1}


def cn_number(s: str) -> int | None:
    """Parse a small Chinese numeral (五十, 一百二十, 两千五, 3) into an int."""
    if s.isdigit():
        return int(s)
    total, section, number = 0, 0, 0
    for ch in s:
        if ch in _CN_DIGIT:
            number = _CN_DIGIT[ch]
        elif ch in _CN_UNIT:
            unit = _CN_UNIT[ch]
            if unit == 10000:
                total += (section + number) * unit
                section = 0
            else:
                section += (number or 1) * unit
            number = 0
        else:
            return None
    return total + section + number


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry to recognise: its display name, SKU and the other names customers use."""

    sku: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(slots=True)
class _Candidate:
    entity: Entity
    priority: int = field(default=0)


def _entity(type_: str, text: str, start: int, end: int, normalized: str | None = None,
            **attributes: Any) -> _Candidate:
    return _Candidate(Entity(type_, text[start:end], start, end, normalized, attributes), _PRIORITY[type_])


def _order_numbers(text: str, folded: str, patterns: Sequence[OrderPattern]) -> Iterable[_Candidate]:
    capped = text[:MAX_TENANT_PATTERN_INPUT]
    for p in patterns:
        matcher = p.compiled()
        if matcher is None:
            continue
        for m in matcher.finditer(text if p.builtin else capped):
            start, end = m.span(p.group)
            if start < 0:
                continue
            value = text[start:end]
            yield _entity("order_number", text, start, end, value.upper().replace("-", "") if p.marketplace
                          != "shopify" else value, marketplace=p.marketplace, pattern=p.name)


def _tracking_numbers(text: str, folded: str) -> Iterable[_Candidate]:
    for cp in CARRIER_PATTERNS:
        if cp.needs_keyword and not any(k in folded for k in cp.needs_keyword):
            continue
        for m in _compile(cp.regex).finditer(text):
            yield _entity("tracking_number", text, m.start(), m.end(), m.group().upper(), carrier=cp.carrier)


def _phones(text: str, folded: str) -> Iterable[_Candidate]:
    if not _DIGITS_7.search(text):
        return
    try:
        for match in phonenumbers.PhoneNumberMatcher(text, "CN", leniency=phonenumbers.Leniency.VALID,
                                                     max_tries=20):
            number = match.number
            raw = re.sub(r"[\s\-()]", "", match.raw_string)
            # A Chinese number written without a trunk prefix is a mobile (1xx) or a hotline (400/800);
            # anything else ("2026-11-20 11") is a date or an id that happens to be a valid landline.
            if number.country_code == 86 and not raw.startswith(("+", "0", "1", "400", "800", "86")):
                continue
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            yield _entity("phone", text, match.start, match.end, e164,
                          region=phonenumbers.region_code_for_number(number) or "")
    except Exception:  # noqa: BLE001 - a malformed number must never break the pipeline
        return


def _emails(text: str, folded: str) -> Iterable[_Candidate]:
    for m in _EMAIL.finditer(text):
        yield _entity("email", text, m.start(), m.end(), m.group().lower())


def _amount_value(raw: str) -> str | None:
    raw = raw.replace(",", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return raw
    n = cn_number(raw)
    return None if n is None else str(n)


def _amounts(text: str, folded: str) -> Iterable[_Candidate]:
    for m in _AMOUNT_PREFIX.finditer(folded):
        value = _amount_value(m.group(2))
        if value is not None:
            currency = _CURRENCY_PREFIX.get(m.group(1).lower(), "CNY")
            yield _entity("amount", text, m.start(), m.end(), f"{value} {currency}", amount=value,
                          currency=currency)
    for m in _AMOUNT_SUFFIX.finditer(folded):
        value = _amount_value(m.group(1))
        if value is not None:
            currency = _CURRENCY_SUFFIX.get(m.group(2).lower(), "CNY")
            yield _entity("amount", text, m.start(), m.end(), f"{value} {currency}", amount=value,
                          currency=currency)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _past_or_this_year(today: date, month: int, day: int) -> date | None:
    """A date without a year is the most recent one: customers talk about orders in the past."""
    d = _safe_date(today.year, month, day)
    if d is not None and d > today + timedelta(days=31):
        d = _safe_date(today.year - 1, month, day)
    return d


def _week_shift(today: date, which: str, weekday: int) -> date:
    monday = today - timedelta(days=today.weekday())
    weeks = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "last": -1, "this": 0, "next": 1}.get(which, 0)
    return monday + timedelta(weeks=weeks, days=weekday)


def _dates(text: str, folded: str, today: date) -> Iterable[_Candidate]:
    def emit(m: re.Match[str], d: date | None, kind: str) -> Iterable[_Candidate]:
        if d is not None:
            yield _entity("date", text, m.start(), m.end(), d.isoformat(), kind=kind)

    for m in _DATE_ISO.finditer(folded):
        yield from emit(m, _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3))), "absolute")
    for m in _DATE_MD_ZH.finditer(folded):
        yield from emit(m, _past_or_this_year(today, int(m.group(1)), int(m.group(2))), "absolute")
    for m in _DATE_D_ZH.finditer(folded):
        day = int(m.group(1))
        d = _safe_date(today.year, today.month, day) if 1 <= day <= 31 else None
        if d is not None and d > today:
            prev = (today.replace(day=1) - timedelta(days=1))
            d = _safe_date(prev.year, prev.month, day)
        yield from emit(m, d, "absolute")
    for m in _DATE_REL_ZH.finditer(folded):
        yield from emit(m, today + timedelta(days=_REL_ZH[m.group()]), "relative")
    for m in _DATE_WEEK_ZH.finditer(folded):
        yield from emit(m, _week_shift(today, m.group(1), _WEEKDAYS_ZH[m.group(2)]), "relative")
    for m in _DATE_AGO_ZH.finditer(folded):
        n = cn_number(m.group(1))
        if n is not None and n < 1000:
            days = n * (1 if m.group(2) == "天" else 7)
            sign = -1 if "前" in m.group(3) else 1
            yield from emit(m, today + timedelta(days=sign * days), "relative")
    for m in _DATE_REL_EN.finditer(folded):
        yield from emit(m, today + timedelta(days=_REL_EN[m.group(1).lower()]), "relative")
    for m in _DATE_WEEK_EN.finditer(folded):
        which, wd = m.group(1).lower(), _WEEKDAYS_EN[m.group(2).lower()]
        if which in ("on", "last"):
            # English "last Monday" / "on Monday" about an order: the most recent Monday before today
            # (Chinese 上周一 is different: Monday of the previous calendar week).
            d = today - timedelta(days=(today.weekday() - wd) % 7 or 7)
        elif which == "next":
            d = today + timedelta(days=(wd - today.weekday()) % 7 or 7)
        else:
            d = _week_shift(today, which, wd)
        yield from emit(m, d, "relative")
    for m in _DATE_AGO_EN.finditer(folded):
        raw = m.group(1).lower()
        n = int(raw) if raw.isdigit() else _EN_SMALL[raw]
        days = n * (7 if m.group(2).lower().startswith("week") else 1)
        sign = -1 if m.group(3).lower() == "ago" else 1
        if days < 10000:
            yield from emit(m, today + timedelta(days=sign * days), "relative")
    for m in _DATE_MON_EN.finditer(folded):
        if m.group(1):
            day, mon, year = int(m.group(1)), _MONTHS[m.group(2).lower()[:3]], m.group(3)
        else:
            mon, day, year = _MONTHS[m.group(4).lower()[:3]], int(m.group(5)), m.group(6)
        if mon == 5 and not (m.group(3) or m.group(6)) and re.match(r"may\s+\d", m.group(), re.IGNORECASE) is None:
            continue
        d = _safe_date(int(year), mon, day) if year else _past_or_this_year(today, mon, day)
        yield from emit(m, d, "absolute")


@lru_cache(maxsize=64)
def _catalogue_regex(names: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    lookup: dict[str, str] = {}
    for alias, sku in names:
        a = alias.strip().lower()
        if len(a) >= 2:
            lookup.setdefault(a, sku)
    if not lookup:
        return None, {}
    parts = []
    for a in sorted(lookup, key=len, reverse=True):
        esc = re.escape(a)
        # Word boundaries only make sense for Latin names; Chinese has no spaces.
        parts.append(rf"(?<![a-z0-9]){esc}(?![a-z0-9])" if re.match(r"[a-z0-9]", a) else esc)
    return re.compile("|".join(parts)), lookup


def as_products(products: Iterable[Product | str | dict[str, Any]] | None) -> tuple[Product, ...]:
    """Accept catalogue entries as ``Product``, plain names or dicts with sku/name/aliases."""
    out: list[Product] = []
    for p in products or ():
        if isinstance(p, Product):
            out.append(p)
        elif isinstance(p, str):
            out.append(Product(sku=p, name=p))
        elif isinstance(p, dict):
            out.append(Product(sku=str(p.get("sku") or p.get("id") or p.get("name")), name=str(p.get("name", "")),
                               aliases=tuple(str(a) for a in p.get("aliases", ()) or ())))
    return tuple(out)


def _products(text: str, folded: str, products: tuple[Product, ...]) -> Iterable[_Candidate]:
    if not products:
        return
    names = tuple((alias, p.sku) for p in products for alias in (p.name, *p.aliases))
    rx, lookup = _catalogue_regex(names)
    if rx is None:
        return
    for m in rx.finditer(folded):
        yield _entity("product", text, m.start(), m.end(), lookup[m.group()])


def extract_entities(text: str, *, folded: str | None = None, now: datetime | date | None = None,
                     order_patterns: Sequence[OrderPattern] | None = None,
                     products: Iterable[Product | str | dict[str, Any]] | None = None) -> list[Entity]:
    """Find entities in ``text`` (offsets into it). Relative dates resolve against ``now`` (default today)."""
    folded = fold(text) if folded is None else folded
    if len(folded) != len(text):  # pragma: no cover - fold keeps lengths; guard offsets anyway
        folded = text.lower()
    if isinstance(now, datetime):
        today = now.date()
    elif isinstance(now, date):
        today = now
    else:
        today = date.today()
    patterns = tuple(order_patterns) if order_patterns is not None else DEFAULT_ORDER_PATTERNS
    candidates: list[_Candidate] = []
    has_digit = any(c.isdigit() for c in folded)
    if has_digit:
        candidates.extend(_tracking_numbers(text, folded))
        candidates.extend(_phones(text, folded))
        candidates.extend(_order_numbers(text, folded, patterns))
        candidates.extend(_amounts(text, folded))
    elif any(c in folded for c in "¥￥$元块"):
        candidates.extend(_amounts(text, folded))
    if "@" in folded:
        candidates.extend(_emails(text, folded))
    candidates.extend(_dates(text, folded, today))
    candidates.extend(_products(text, folded, as_products(products)))
    return _resolve(candidates)


def _resolve(candidates: list[_Candidate]) -> list[Entity]:
    chosen: list[_Candidate] = []
    for c in sorted(candidates, key=lambda c: (-c.priority, -(c.entity.end - c.entity.start), c.entity.start)):
        e = c.entity
        if e.end <= e.start:
            continue
        if any(not (e.end <= k.entity.start or e.start >= k.entity.end) for k in chosen):
            continue
        chosen.append(c)
    return sorted((c.entity for c in chosen), key=lambda e: (e.start, e.end))
