"""``kefu nlu``: Language understanding: predict and evaluate."""

from __future__ import annotations

import typer

app = typer.Typer(help="Language understanding: predict and evaluate", no_args_is_help=True)
