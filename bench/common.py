"""What every benchmark shares: a scratch database on the chosen server, timing, output."""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
from psycopg import sql

from pgworker.config import database_dsn, mask_dsn
from pgworker.migrate import upgrade

RESULTS = Path(__file__).parent / "results"


@contextmanager
def scratch_database(dsn: str | None) -> Iterator[str]:
    """A freshly migrated database on the server of `dsn` (or the embedded one), dropped after."""
    admin = database_dsn(dsn)
    name = f"pgworker_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        upgrade(target)
        yield target
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def truncate(dsn: str) -> None:
    """Empty the jobs table and reclaim its space, so runs do not see each other's rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgworker.jobs")
        conn.execute("VACUUM ANALYZE pgworker.jobs")


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


@dataclass
class Report:
    """Rows of results plus the settings they were measured with; printed and saved as JSON."""

    name: str
    dsn: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        meta = {
            "benchmark": self.name,
            "server": mask_dsn(self.dsn),
            "server_version": server_version(self.dsn),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        }
        path.write_text(json.dumps({"meta": meta, "rows": self.rows}, indent=2, default=str))
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """An aligned text table of dict rows sharing the same keys."""
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_fmt(row.get(k, "")) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(f"\n{title}")
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
