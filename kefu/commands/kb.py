"""``kefu kb``: Knowledge base: search a JSONL file of entries from the command line (evaluation contract)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

app = typer.Typer(help="Knowledge base: search", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Knowledge base tools."""


@app.command("search")
def search(
    kb: Annotated[Path, typer.Option("--kb", exists=True, dir_okay=False, help="JSONL entries: id, question, "
                                     "answer, language, optional questions (paraphrases)")],
    top: Annotated[int, typer.Option("--top", min=1, max=100)] = 5,
    language: Annotated[str | None, typer.Option("--language", help="Only entries of this language")] = None,
) -> None:
    """Read one query per line on stdin; write one JSON line per query: {"query", "results": [{"id", "score"}]}."""
    from kefu.knowledge.io import load_jsonl_index

    index, errors = load_jsonl_index(kb)
    for error in errors:
        typer.echo(f"{kb}:{error.line}: {error.code}: {error.message}", err=True)
    out = sys.stdout.buffer
    for raw in sys.stdin:
        query = raw.rstrip("\n")
        hits = index.search(query, top=top, language=language) if query.strip() else []
        out.write(orjson.dumps({"query": query, "results": [{"id": h.id, "score": round(h.score, 4)}
                                                            for h in hits]}))
        out.write(b"\n")
    out.flush()
