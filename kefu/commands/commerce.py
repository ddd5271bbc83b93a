"""``kefu commerce``: Orders: normalise marketplace payloads."""

from __future__ import annotations

import decimal
import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Orders: normalise marketplace payloads", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Orders: normalise marketplace payloads."""


@app.command()
def normalize(
    file: Path = typer.Argument(..., help="JSON payload (use - for standard input)", allow_dash=True),
    fmt: str = typer.Option(..., "--format", help="shopify | woocommerce | taobao"),
    full: bool = typer.Option(False, "--full", help="Print the whole canonical order, not just the core keys"),
) -> None:
    """Print the canonical order JSON for a marketplace payload (core keys stable for tools, money as strings).

    Exit code 2 with ``{"error": {"code": …}}`` on standard error for unknown formats and invalid payloads.
    """
    from kefu.core.errors import DomainError
    from kefu.integrations.commerce.normalizers import FORMATS, core_json
    from kefu.integrations.commerce.normalizers import normalize as run

    def fail(code: str, details: dict[str, object]) -> None:
        typer.echo(json.dumps({"error": {"code": code, "details": details}}, ensure_ascii=False), err=True)
        raise typer.Exit(2)

    if fmt not in FORMATS or fmt == "canonical":
        fail("unknown_format", {"format": fmt, "known": [f for f in FORMATS if f != "canonical"]})
    try:
        raw = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        payload = json.loads(raw, parse_float=decimal.Decimal)  # money exact, never a binary float
    except (OSError, UnicodeDecodeError) as exc:
        fail("unreadable_file", {"reason": type(exc).__name__})
    except ValueError:
        fail("invalid_order_payload", {"reason": "not_json"})
    try:
        order = run(fmt, payload)
    except DomainError as exc:
        fail(exc.code, exc.details)
    out = order.model_dump(mode="json") if full else core_json(order)
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
