"""Enqueue throughput: a raw psycopg INSERT loop beside Client.enqueue and enqueue_many (COPY)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from pgworker import Client

from bench.common import Report, print_table, truncate


def raw_insert_loop(dsn: str, count: int) -> float:
    """One INSERT per transaction on one autocommit connection: the floor any client pays."""
    with psycopg.connect(dsn, autocommit=True) as conn:
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
    """Client.enqueue_many: one COPY for the whole batch."""
    payloads = [{"n": n} for n in range(count)]
    with Client(dsn) as client:
        client.enqueue("warmup")
        start = time.perf_counter()
        client.enqueue_many("bench", payloads)
        return count / (time.perf_counter() - start)


def run(dsn: str, *, single: int = 5000, bulk: int = 100_000, repeat: int = 3) -> dict[str, Any]:
    """Median jobs/s of each enqueue path over `repeat` runs."""
    report = Report("enqueue", dsn)
    results: dict[str, list[float]] = {"raw INSERT loop": [], "client.enqueue": [], "COPY": []}
    for attempt in range(1, repeat + 1):
        for label, fn, count in (
            ("raw INSERT loop", raw_insert_loop, single),
            ("client.enqueue", client_enqueue, single),
            ("COPY", copy_enqueue, bulk),
        ):
            truncate(dsn)
            rate = fn(dsn, count)
            results[label].append(rate)
            report.add(run=attempt, path=label, jobs=count, jobs_per_s=rate)
    rows = []
    median = {label: sorted(rates)[len(rates) // 2] for label, rates in results.items()}
    for label, rate in median.items():
        rows.append(
            {
                "path": label,
                "median jobs/s": rate,
                "vs raw INSERT": f"{rate / median['raw INSERT loop']:.2f}x",
            }
        )
    print_table(f"enqueue (median of {repeat})", rows)
    report.rows.append({"summary": rows})
    print(f"saved {report.save()}")
    return median
