"""Enqueue throughput: a raw psycopg INSERT loop beside Client.enqueue and enqueue_many (COPY).

The raw loop is the floor any client pays for one job per transaction: one INSERT per
round trip on one autocommit connection. Client.enqueue adds validation, JSON encoding and
its pool; the target is >= 90 % of the raw loop, so the two alternate within each run.
enqueue_many sends one COPY.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg_pool import ConnectionPool

from bench.common import APPLICATION_NAME, median, truncate
from bench.context import Context
from bench.settings import Settings
from pgworker import Client

PATHS = ("raw INSERT loop", "client.enqueue", "enqueue_many (COPY)")


# The two single-job paths alternate in this many slices per run, so that both meet the
# same moments of a busy machine (fsync-bound commits vary by 3x between minutes here).
SLICES = 10


def steps(settings: Settings) -> int:
    return 2 * settings.repeat


def single_enqueues(dsn: str, count: int) -> tuple[float, float]:
    """(raw INSERT loop, Client.enqueue) jobs/s, each path `count` jobs in alternating slices.

    The raw loop is one INSERT per transaction on one autocommit connection: the floor any
    client pays. Client.enqueue runs each job in its own transaction through its pool.

    Both run on the same server backend: the client's pool holds one connection, which the
    raw loop borrows between the client's slices. Two backends of the same server differ by
    up to a third in round-trip time on this 2-core machine (where the scheduler puts each
    beside the client), more than the client's own cost; one backend leaves only that.
    """
    spent = {"raw": 0.0, "client": 0.0}
    per_slice = max(1, count // SLICES)
    pool: ConnectionPool[Any] = ConnectionPool(
        dsn,
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
        open=True,
    )
    with pool, Client.from_pool(pool) as client:
        client.enqueue("warmup")
        for first in range(0, per_slice * SLICES, per_slice):
            with pool.connection() as conn:
                start = time.perf_counter()
                for n in range(first, first + per_slice):
                    conn.execute(
                        "INSERT INTO pgworker.jobs (task, payload) VALUES (%s, %s::jsonb)",
                        ("bench", f'{{"n":{n}}}'),
                    )
                spent["raw"] += time.perf_counter() - start
            start = time.perf_counter()
            for n in range(first, first + per_slice):
                client.enqueue("bench", {"n": n})
            spent["client"] += time.perf_counter() - start
    done = per_slice * SLICES
    return done / spent["raw"], done / spent["client"]


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
        ctx.progress.step(f"enqueue: raw INSERT loop and client.enqueue run {attempt}/{s.repeat}")
        truncate(ctx.dsn)
        raw, single = single_enqueues(ctx.dsn, s.enqueue_single)
        ctx.progress.step(f"enqueue: enqueue_many (COPY) run {attempt}/{s.repeat}")
        truncate(ctx.dsn)
        bulk = copy_enqueue(ctx.dsn, s.enqueue_bulk)
        for path, rate, count in (
            (PATHS[0], raw, s.enqueue_single),
            (PATHS[1], single, s.enqueue_single),
            (PATHS[2], bulk, s.enqueue_bulk),
        ):
            rates[path].append(rate)
            runs.append({"run": attempt, "path": path, "jobs": count, "jobs_per_s": rate})
    medians = {path: median(values) for path, values in rates.items()}
    raw_rate = medians[PATHS[0]]
    ratios = [c / r for r, c in zip(rates[PATHS[0]], rates[PATHS[1]], strict=True)]
    # client.enqueue against the raw loop: the median of the per-run ratios, each comparing
    # two paths measured side by side.
    vs_raw = {PATHS[0]: 1.0, PATHS[1]: median(ratios), PATHS[2]: medians[PATHS[2]] / raw_rate}
    rows = [
        {
            "path": path,
            "jobs": s.enqueue_bulk if path == PATHS[2] else s.enqueue_single,
            "jobs/s": rate,
            "vs raw INSERT": vs_raw[path],
        }
        for path, rate in medians.items()
    ]
    ctx.show(
        f"enqueue: median of {s.repeat}; the raw loop and client.enqueue alternate in"
        f" {SLICES} slices per run",
        rows,
    )
    return {
        "runs": runs,
        "table": rows,
        "raw_insert": raw_rate,
        "single": medians[PATHS[1]],
        "copy": medians[PATHS[2]],
        "single_ratio": vs_raw[PATHS[1]],
    }
