"""Context: what a measure gets from the suite (settings, database, progress, other results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.common import table
from bench.progress import Progress
from bench.settings import Settings


@dataclass
class Context:
    """The settings, the scratch database's DSN, the progress line, and results so far."""

    settings: Settings
    dsn: str
    progress: Progress
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def show(self, title: str, rows: list[dict[str, Any]], note: str = "") -> None:
        """Print a table between progress updates."""
        self.progress.clear()
        print("\n" + table(title, rows), flush=True)
        if note:
            print(note, flush=True)
