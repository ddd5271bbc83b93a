"""``kefu kb``: Knowledge base: search."""

from __future__ import annotations

import typer

app = typer.Typer(help="Knowledge base: search", no_args_is_help=True)
