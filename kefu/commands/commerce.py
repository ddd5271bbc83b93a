"""``kefu commerce``: Orders: normalise marketplace payloads."""

from __future__ import annotations

import typer

app = typer.Typer(help="Orders: normalise marketplace payloads", no_args_is_help=True)
