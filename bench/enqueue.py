"""Enqueue throughput: a raw psycopg INSERT loop beside Client.enqueue and enqueue_many (COPY).

The raw loop is the floor any client pays for one job per transaction: one INSERT per
round trip on one autocommit connection. Client.enqueue adds validation, JSON encoding and
its pool; the target is >= 90 % of the raw loop. enqueue_many sends one COPY.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.common import APPLICATION_NAME, median, truncate
from bench.context import Context
from bench.settings import Settings
from pgworker import Client

PATHS = ("raw INSERT loop", "client.enqueue", "enqueue_many (COPY)")


def steps(settings: Settings) -> int:
    return len(PATHS) * settings.repeat


def raw_insert_loop(dsn: str, count: int) -> float:
    """One INSERT per transaction on one autocommit connection: the floor any client pays."""
    with psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
        conn.execute("INSERT INTO pgworker.jobs (task) VALUES ('warmup')")
        start = time.perf_counter()
        for n in range(count):
            conn.execute(
                "INSERT INTO pgworker.jobs (task, payload) VALUES (%s, %s::jsonb)",
                ("bench", f'{{"n":{n}}}'),
            )
        return count / (time.perf_counter() - start)


def client_enqueue(dsn: str, count: int) -> float:
    """Client.enqueue, each job its own transaction through the client's pool."""
    with Client(dsn) as client:
        client.enqueue("warmup")
        start = time.perf_counter()
        for n in range(count):
            client.enqueue("bench", {"n": n})
        return count / (time.perf_counter() - start)


def copy_enqueue(dsn: str, count: int) -> float:
    """Client.enqueue_many: one COPY for the whole batch (building the payloads not timed)."""
    payloads = [{"n": n} for n in range(count)]
    with Client(dsn) as client:
        client.enqueue("warmup")
        start = time.perf_counter()
        client.enqueue_many("bench", payloads)
        return count / (time.perf_counter() - start)


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    runs = []
    for attempt in range(1, s.repeat + 1):
        for path, fn, count in (
            (PATHS[0], raw_insert_loop, s.enqueue_single),
            (PATHS[1], client_enqueue, s.enqueue_single),
            (PATHS[2], copy_enqueue, s.enqueue_bulk),
        ):
            ctx.progress.step(f"enqueue: {path} run {attempt}/{s.repeat}")
            truncate(ctx.dsn)
            rate = fn(ctx.dsn, count)
            rates[path].append(rate)
            runs.append({"run": attempt, "path": path, "jobs": count, "jobs_per_s": rate})
    medians = {path: median(values) for path, values in rates.items()}
    raw = medians[PATHS[0]]
    rows = [
        {
            "path": path,
            "jobs": s.enqueue_bulk if path == PATHS[2] else s.enqueue_single,
            "jobs/s": rate,
            "vs raw INSERT": rate / raw,
        }
        for path, rate in medians.items()
    ]
    ctx.show(f"enqueue: median of {s.repeat}", rows)
    return {
        "runs": runs,
        "table": rows,
        "raw_insert": raw,
        "single": medians[PATHS[1]],
        "copy": medians[PATHS[2]],
        "single_ratio": medians[PATHS[1]] / raw,
    }
