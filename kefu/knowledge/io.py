"""Import and export of entries: JSON, JSONL, CSV and Markdown, with per-row error reports.

Parsing never raises on bad content: every row either becomes an ``EntryDraft`` or a ``RowError`` with its
line number, so an import takes the good rows and tells the admin exactly which ones it refused and why.
Nothing here touches the database; ``actions.do_import_entries`` writes the drafts in one transaction.

Markdown layout (one file, many FAQ entries)::

    # Returns                      <- optional: category of the entries below
    ## Can I return a gift?        <- the question
    <!-- id: gift-return; language: en; tags: returns|gifts; channels: web -->   (optional)
    > Can a present be sent back?  <- paraphrases, one per quoted line
    The answer, any number of paragraphs (HTML is sanitised when rendered).

A Markdown document with no ``##`` headings is one article (``# Title`` then the body); long articles are
split into chunks at paragraph boundaries so each chunk can be found on its own.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nh3

from kefu.knowledge.index import IndexedEntry, SearchIndex
from kefu.knowledge.policies import MAX_ANSWER_CHARS, chunk_text
from kefu.knowledge.text import language_of

FORMATS = ("json", "jsonl", "csv", "markdown")
LIST_SEPARATOR = "|"
ALLOWED_TAGS = {"a", "b", "strong", "i", "em", "u", "p", "br", "ul", "ol", "li", "code", "pre", "blockquote",
                "h3", "h4", "img", "table", "thead", "tbody", "tr", "th", "td", "span", "mark"}


@dataclass(slots=True)
class RowError:
    line: int
    code: str
    message: str
    key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message, "key": self.key}


@dataclass(slots=True)
class EntryDraft:
    """One entry as read from a file; ``key`` is the file's own id (kept as the entry's external key)."""

    line: int
    question: str
    answer: str
    key: str | None = None
    paraphrases: list[str] = field(default_factory=list)
    language: str = ""
    kind: str = "faq"
    title: str = ""
    category: str = ""
    tags: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    chunks: list[str] = field(default_factory=list)


def sanitise_html(answer: str) -> str:
    """The answer as safe HTML: scripts, event handlers and unknown tags removed, links made inert-safe."""
    return nh3.clean(answer, tags=ALLOWED_TAGS, link_rel="noopener noreferrer nofollow")


def plain_text(answer: str) -> str:
    """The answer without any markup, for indexing and snippets."""
    return " ".join(nh3.clean(answer, tags=set()).replace("&amp;", "&").replace("&lt;", "<")
                    .replace("&gt;", ">").replace("&quot;", '"').replace("&#39;", "'").split())


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ValueError("expected a list or a |-separated string")


def _as_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamps need a time zone, e.g. 2026-11-11T00:00:00+08:00")
    return parsed


def _no_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL characters; they carry no meaning in an FAQ, so they are dropped."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def draft_from_mapping(raw: Any, line: int) -> EntryDraft | RowError:
    """Validate one JSON/CSV row; the error names the first problem found."""
    if not isinstance(raw, dict):
        return RowError(line, "malformed_row", "row is not an object")
    raw = {k: _no_nul(v) for k, v in raw.items()}
    key = raw.get("id")
    key = str(key).strip() if key not in (None, "") else None
    question = str(raw.get("question") or raw.get("title") or "").strip()
    answer = str(raw.get("answer") or raw.get("body") or "").strip()
    kind = str(raw.get("kind") or "faq").strip()
    if kind not in ("faq", "article"):
        return RowError(line, "invalid_field", "kind must be faq or article", key)
    if not question:
        return RowError(line, "missing_question", "the question (or title) is empty", key)
    if not plain_text(answer):
        return RowError(line, "empty_answer", "the answer is empty", key)
    for name, value, limit in (("question", question, 500), ("id", key or "", 200),
                               ("title", str(raw.get("title") or ""), 500),
                               ("category", str(raw.get("category") or ""), 100)):
        if len(value.strip()) > limit:
            return RowError(line, "invalid_field", f"{name} is longer than {limit} characters", None)
    try:
        paraphrases = _as_list(raw.get("questions", raw.get("paraphrases")))
        tags = _as_list(raw.get("tags"))
        channels = _as_list(raw.get("channels"))
        product_ids = _as_list(raw.get("product_ids"))
        valid_from, valid_until = _as_time(raw.get("valid_from")), _as_time(raw.get("valid_until"))
    except (ValueError, TypeError) as exc:
        return RowError(line, "invalid_field", str(exc), key)
    if valid_from and valid_until and valid_until <= valid_from:
        return RowError(line, "invalid_field", "valid_until must be after valid_from", key)
    language = str(raw.get("language") or "").strip().lower() or language_of(question + answer)
    if language not in ("zh", "en"):
        return RowError(line, "invalid_field", "language must be zh or en", key)
    draft = EntryDraft(line=line, question=question, answer=answer, key=key, paraphrases=paraphrases,
                       language=language, kind=kind, title=str(raw.get("title") or "").strip(),
                       category=str(raw.get("category") or "").strip(), tags=tags, channels=channels,
                       product_ids=product_ids, valid_from=valid_from, valid_until=valid_until)
    return _finish(draft)


def _finish(draft: EntryDraft) -> EntryDraft | RowError:
    """Chunk long answers (huge documents become articles searchable piece by piece); refuse absurd sizes."""
    if len(draft.answer) > MAX_ANSWER_CHARS * 50:
        return RowError(draft.line, "too_large", "the answer is larger than 1,000,000 characters", draft.key)
    if len(plain_text(draft.answer)) > 1500:
        draft.kind = "article"
        draft.chunks = chunk_text(plain_text(draft.answer))
    return draft


def parse_jsonl(text: str) -> Iterator[EntryDraft | RowError]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            yield RowError(number, "malformed_row", f"invalid JSON: {exc.msg}")
            continue
        yield draft_from_mapping(raw, number)


def parse_json(text: str) -> Iterator[EntryDraft | RowError]:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        yield RowError(exc.lineno if hasattr(exc, "lineno") else 1, "malformed_file", f"invalid JSON: {exc}")
        return
    if isinstance(raw, dict) and isinstance(raw.get("entries"), list):
        raw = raw["entries"]
    if not isinstance(raw, list):
        yield RowError(1, "malformed_file", "expected a JSON array of entries")
        return
    # Report the position in the array as the line (1-based): JSON arrays have no stable line per item.
    for number, item in enumerate(raw, start=1):
        yield draft_from_mapping(item, number)


def parse_csv(text: str) -> Iterator[EntryDraft | RowError]:
    # newline="" hands line breaks to the csv module, which then allows them inside quoted cells.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        yield RowError(1, "malformed_file", f"unreadable CSV header: {exc}")
        return
    if not header or "question" not in header or "answer" not in header:
        yield RowError(1, "malformed_file", "the header must name at least question and answer columns")
        return
    try:
        for row in reader:
            if None in row:  # more cells than headers
                yield RowError(reader.line_num, "malformed_row", "the row has more cells than the header")
                continue
            if all(not (v or "").strip() for v in row.values()):
                continue
            yield draft_from_mapping(row, reader.line_num)
    except csv.Error as exc:
        yield RowError(reader.line_num, "malformed_row", f"unreadable CSV: {exc}")


_META = re.compile(r"^<!--(.*)-->$")


def parse_markdown(text: str) -> Iterator[EntryDraft | RowError]:
    lines = text.replace("\r\n", "\n").split("\n")
    if not any(line.startswith("## ") for line in lines):
        title = next((line[2:].strip() for line in lines if line.startswith("# ")), "")
        body = "\n".join(line for line in lines if not line.startswith("# ")).strip()
        if not title:
            yield RowError(1, "missing_question", "an article needs a '# Title' line")
            return
        if not body:
            yield RowError(1, "empty_answer", "the article has no body", None)
            return
        draft = EntryDraft(line=1, question=title, answer=body, kind="article", title=title,
                           language=language_of(title + body))
        finished = _finish(draft)
        if isinstance(finished, EntryDraft):
            finished.kind = "article"
            finished.chunks = finished.chunks or chunk_text(plain_text(body))
        yield finished
        return
    category = ""
    current: dict[str, Any] | None = None

    def flush() -> Iterator[EntryDraft | RowError]:
        if current is not None:
            current["answer"] = "\n".join(current.pop("_body")).strip()
            yield draft_from_mapping(current, current.pop("_line"))

    for number, line in enumerate(lines, start=1):
        if line.startswith("# "):
            yield from flush()
            current = None
            category = line[2:].strip()
        elif line.startswith("## "):
            yield from flush()
            current = {"question": line[3:].strip(), "category": category, "questions": [], "_body": [],
                       "_line": number}
        elif current is None:
            continue
        elif _META.match(line.strip()) and not current["_body"]:
            for part in _META.match(line.strip()).group(1).split(";"):  # type: ignore[union-attr]
                name, _, value = part.partition(":")
                if name.strip() and value.strip():
                    current[name.strip()] = value.strip()
        elif line.startswith("> ") and not "".join(current["_body"]).strip():
            current["questions"].append(line[2:].strip())
        else:
            current["_body"].append(line)
    yield from flush()


PARSERS = {"json": parse_json, "jsonl": parse_jsonl, "csv": parse_csv, "markdown": parse_markdown}


def parse(text: str, fmt: str) -> tuple[list[EntryDraft], list[RowError]]:
    """Parse a whole file; duplicate ids within the file keep the first row and report the others."""
    drafts: list[EntryDraft] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    seen_questions: dict[tuple[str, str], int] = {}
    for item in PARSERS[fmt](text):
        if isinstance(item, RowError):
            errors.append(item)
            continue
        if item.key is not None and item.key in seen:
            errors.append(RowError(item.line, "duplicate_id", f"id already used on line {seen[item.key]}", item.key))
            continue
        question_key = (item.language, " ".join(item.question.lower().split()))
        if item.key is None and question_key in seen_questions:
            errors.append(RowError(item.line, "duplicate_question",
                                   f"same question as line {seen_questions[question_key]}", None))
            continue
        if item.key is not None:
            seen[item.key] = item.line
        seen_questions.setdefault(question_key, item.line)
        drafts.append(item)
    return drafts, errors


def indexed(draft: EntryDraft, entry_id: str) -> IndexedEntry:
    """The index's view of a draft (used by ``kefu kb search`` which never touches a database)."""
    rows = [draft.question, *draft.paraphrases, *draft.chunks]
    return IndexedEntry(id=entry_id, questions=rows, answer="" if draft.chunks else plain_text(draft.answer),
                        language=draft.language, category=draft.category, title=draft.title,
                        channels=tuple(draft.channels), valid_from=draft.valid_from, valid_until=draft.valid_until,
                        tags=tuple(draft.tags), product_ids=tuple(draft.product_ids))


def load_jsonl_index(path: Path) -> tuple[SearchIndex, list[RowError]]:
    """Build a search index straight from a JSONL file (rows without an id are refused)."""
    drafts, errors = parse(path.read_text(encoding="utf-8"), "jsonl")
    keep = []
    for draft in drafts:
        if draft.key is None:
            errors.append(RowError(draft.line, "missing_id", "the row has no id"))
        else:
            keep.append(indexed(draft, draft.key))
    return SearchIndex(keep), sorted(errors, key=lambda e: e.line)


def export(entries: Iterable[dict[str, Any]], fmt: str) -> str:
    """Write entries (dicts with the import field names) in ``fmt``; the result imports back unchanged."""
    rows = list(entries)
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1, default=str)
    if fmt == "csv":
        out = io.StringIO()
        columns = ["id", "kind", "language", "category", "question", "questions", "answer", "tags", "channels",
                   "product_ids", "valid_from", "valid_until"]
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: LIST_SEPARATOR.join(v) if isinstance(v, list) else ("" if v is None else v)
                             for k, v in row.items()})
        return out.getvalue()
    parts: list[str] = []
    for category in sorted({r.get("category") or "" for r in rows}):
        if category:
            parts.append(f"# {category}\n")
        for row in (r for r in rows if (r.get("category") or "") == category):
            meta = [f"id: {row['id']}", f"language: {row['language']}"]
            for name in ("tags", "channels", "product_ids"):
                if row.get(name):
                    meta.append(f"{name}: {LIST_SEPARATOR.join(row[name])}")
            for name in ("valid_from", "valid_until", "kind"):
                if row.get(name):
                    meta.append(f"{name}: {row[name]}")
            parts.append(f"## {row['question']}\n<!-- {'; '.join(meta)} -->")
            parts += [f"> {p}" for p in row.get("questions") or []]
            parts.append(f"{row['answer']}\n")
    return "\n".join(parts)
