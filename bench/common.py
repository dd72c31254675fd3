"""What every benchmark shares: the server, a scratch database, job factories, statistics."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import psycopg
import psycopg.conninfo
from psycopg import sql

from pgworker import queries
from pgworker.config import normalize_dsn

REPO: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = REPO / "bench" / "results"
# The embedded server's data directory when no DSN is given; stopped at the end of every run.
EMBEDDED_HOME: Final = RESULTS / "embedded"
APPLICATION_NAME: Final = "pgworker-bench"

# Jobs are made in SQL (generate_series): 100,000 rows in ~0.3 s, nothing through Python.
INSERT_DUE_JOBS: Final = """
INSERT INTO pgworker.jobs (task)
SELECT %(task)s FROM generate_series(1, %(count)s)
"""
INSERT_FUTURE_JOBS: Final = """
INSERT INTO pgworker.jobs (task, run_after)
SELECT %(task)s, now() + interval '1 day' FROM generate_series(1, %(count)s)
"""
INSERT_FINISHED_JOBS: Final = """
INSERT INTO pgworker.jobs (task, status, attempts, started_at, finished_at)
SELECT %(task)s, 'succeeded', 1, now(), now() FROM generate_series(1, %(count)s)
"""
# Where a burn-down stands, in two index probes: the next job a claim would take
# (jobs_claim_idx) and whether any job is claimed and unfinished (jobs_rescue_idx).
# Cheap enough to run every 20 ms beside the worker; a count(*) would scan the table.
QUEUE_STATE: Final = """
SELECT (SELECT id
        FROM pgworker.jobs
        WHERE status = 'pending' AND queue = 'default'
        ORDER BY priority, run_after, id
        LIMIT 1),
       EXISTS (SELECT FROM pgworker.jobs WHERE status = 'processing')
"""
# One claim statement is one transaction (autocommit), so its jobs share started_at = now();
# each completion statement shares finished_at. Distinct timestamps count the statements.
# The typical claim is the claim size that claimed the most jobs.
BATCH_STATS: Final = """
SELECT count(*) FILTER (WHERE status = 'succeeded'),
       count(*),
       count(DISTINCT started_at),
       count(DISTINCT finished_at),
       count(DISTINCT worker_id),
       (SELECT size
        FROM (SELECT count(*) AS size
              FROM pgworker.jobs
              WHERE started_at IS NOT NULL
              GROUP BY started_at) AS claims
        GROUP BY size
        ORDER BY sum(size) DESC, size DESC
        LIMIT 1)
FROM pgworker.jobs
"""


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=autocommit, application_name=APPLICATION_NAME)


@contextmanager
def bench_server(dsn: str | None) -> Iterator[str]:
    """The admin DSN to measure on: `dsn`, else an embedded server that is stopped after."""
    if dsn:
        yield normalize_dsn(dsn)
        return
    from pgworker.embedded import ensure_server, stop_server

    try:
        yield ensure_server(EMBEDDED_HOME, announce=False)
    finally:
        stop_server(EMBEDDED_HOME)


@contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    """A freshly migrated database on the server of `admin`, dropped after."""
    from pgworker.migrate import upgrade  # alembic: only when a database is made

    name = f"pgworker_bench_{uuid.uuid4().hex[:8]}"
    with connect(admin) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        upgrade(target)
        yield target
    finally:
        with connect(admin) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_jobs(conn: psycopg.Connection[Any]) -> None:
    """Empty jobs and workers: every run starts from an empty, freshly analysed table."""
    conn.execute("TRUNCATE pgworker.jobs, pgworker.workers RESTART IDENTITY")


def truncate(dsn: str) -> None:
    with connect(dsn) as conn:
        reset_jobs(conn)


def insert_due_jobs(conn: psycopg.Connection[Any], count: int, task: str = "noop") -> None:
    conn.execute(INSERT_DUE_JOBS, {"task": task, "count": count})


def insert_future_jobs(conn: psycopg.Connection[Any], count: int, task: str = "noop") -> None:
    conn.execute(INSERT_FUTURE_JOBS, {"task": task, "count": count})


def insert_finished_jobs(conn: psycopg.Connection[Any], count: int, task: str = "noop") -> None:
    conn.execute(INSERT_FINISHED_JOBS, {"task": task, "count": count})


def settle(conn: psycopg.Connection[Any], *, checkpoint: bool = True) -> None:
    """VACUUM ANALYZE jobs (as autovacuum would have after a bulk insert), then a CHECKPOINT
    so that no run pays for the previous run's dirty pages."""
    conn.execute("VACUUM (ANALYZE) pgworker.jobs")
    if checkpoint:
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def register_worker(conn: psycopg.Connection[Any], *, concurrency: int = 1) -> str:
    """A workers row for a claim run by the bench itself (the claim checks that it exists)."""
    worker_id = str(uuid.uuid4())
    conn.execute(
        queries.REGISTER_WORKER,
        {
            "id": worker_id,
            "hostname": platform.node(),
            "pid": os.getpid(),
            "queues": ["default"],
            "tasks": ["noop"],
            "concurrency": concurrency,
        },
    )
    return worker_id


def queue_state(conn: psycopg.Connection[Any]) -> tuple[int | None, bool]:
    """(id of the next pending job or None, whether any job is processing)."""
    row = conn.execute(QUEUE_STATE, prepare=True).fetchone()
    assert row is not None
    return row[0], bool(row[1])


def batch_stats(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Succeeded and total jobs, claim and completion statements, and their mean sizes."""
    row = conn.execute(BATCH_STATS).fetchone()
    assert row is not None
    succeeded, total, claims, completions, workers, typical = row
    return {
        "succeeded": succeeded,
        "total": total,
        "claims": claims,
        "completions": completions,
        "workers": workers,
        "claim_batch": total / claims if claims else 0.0,
        "typical_claim": typical or 0,
        "complete_batch": total / completions if completions else 0.0,
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: a value that was really measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def server_info(dsn: str) -> dict[str, str]:
    """The server's version and the settings that move these numbers."""
    names = (
        "server_version", "shared_buffers", "synchronous_commit", "fsync", "wal_level",
        "max_connections", "plan_cache_mode", "jit",
    )  # fmt: skip
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
    return {name: value for name, value in rows}


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:,.1f}"
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "-"
    return str(value)


def table(title: str, rows: Sequence[dict[str, Any]]) -> str:
    """An aligned text table of dict rows (the keys of the first row are the columns)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[fmt(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    first = [0 if isinstance(rows[0].get(k), str) else 1 for k in keys]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.ljust(w) if left == 0 else v.rjust(w)
            for v, w, left in zip(values, widths, first, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [title, line(keys), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    return "\n".join(out)
