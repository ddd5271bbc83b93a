"""``kefu nlu``: Language understanding: predict and evaluate (the contract evaluation tools use)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import orjson
import typer

app = typer.Typer(help="Language understanding: predict and evaluate", no_args_is_help=True)

# Lines are analysed in batches of this size: one model pass each, while output still streams.
BATCH = 1000


@app.callback()
def _main() -> None:
    """Language understanding tools (default model, no database needed)."""


def _lines(stream: object) -> Iterator[str]:
    # Bytes in, so that invalid UTF-8 becomes U+FFFD (then cleaned) instead of an exception.
    for raw in stream:  # type: ignore[attr-defined]
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


@app.command("predict")
def predict(
    full: Annotated[bool, typer.Option("--full", help="Also print ranked intents and emotion scores")] = False,
    now: Annotated[str | None, typer.Option("--now", help="Reference date for relative dates (ISO 8601)")] = None,
) -> None:
    """Read UTF-8 lines on stdin, write one JSON object per line:
    {"text", "language", "intent", "confidence", "entities": [{"type", "value", "start", "end"}],
    "emotion": {"label", "score"}, "sentiment": {"polarity", "score"}}.
    """
    from datetime import datetime

    from kefu.nlp.service import pipeline_for

    ref = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
    pipeline = pipeline_for(None)
    out = sys.stdout.buffer
    batch: list[str] = []

    def flush() -> None:
        for u in pipeline.analyse_batch(batch, now=ref):
            out.write(orjson.dumps(u.to_dict(full=full)))
            out.write(b"\n")
        out.flush()
        batch.clear()

    for line in _lines(sys.stdin.buffer):
        batch.append(line)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="CSV with columns text,intent")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=200, help="How many confusions to list")] = 15,
) -> None:
    """Print accuracy, macro-F1, per-intent F1, out-of-scope precision/recall and the worst confusions."""
    from kefu.nlp.evaluation import evaluate as run_eval
    from kefu.nlp.evaluation import read_labelled_csv
    from kefu.nlp.service import pipeline_for

    try:
        texts, gold = read_labelled_csv(data)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if not texts:
        typer.echo(f"{data}: no rows", err=True)
        raise typer.Exit(2)
    predicted = [u.intent for u in pipeline_for(None).analyse_batch(texts)]
    report = run_eval(gold, predicted, top_confusions=top)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        typer.echo("\n".join(report.lines()))
