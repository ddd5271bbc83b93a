"""Run Alembic migrations programmatically (``kefu migrate`` and ``kefu serve`` at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database schema up to ``revision``; creates the SQLite file's folder if needed."""
    if database_url.startswith("sqlite") and "///" in database_url:
        tail = database_url.split("///", 1)[1]
        if tail and tail != ":memory:":
            Path(tail).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)
