"""Idle pickup latency: one job every 20 ms into an idle worker, commit to handler start.

Both ends are read from this machine's clock with time.time(): the bench takes it as soon
as the INSERT's commit returns (autocommit: the reply comes after the commit, and after the
NOTIFY it sends), the `pickup` handler as its first statement. Timestamps taken in SQL with
clock_timestamp() would need a round trip inside the handler (adding its own latency to
what is measured) and cannot be read after the commit in the enqueuing transaction; worker
and bench share one kernel clock here, so the two readings compare directly. The handler
writes its reading to a file, outside the database the worker is using.

Beside pgworker, one run of the raw LISTEN loop (bench.listen_loop: LISTEN, claim, write
the time) is measured the same way: the floor this machine and server set, so that noise
on a busy machine is not taken for the worker's overhead.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import connect, median, percentile, queue_state, reset_jobs, settle
from bench.context import Context
from bench.settings import Settings
from bench.tasks import PICKUP_FILE_ENV
from bench.workerproc import WorkerFailed, WorkerProcess
from pgworker.config import DEFAULT_CONCURRENCY

INSERT_PICKUP_JOB = "INSERT INTO pgworker.jobs (task) VALUES ('pickup') RETURNING id"


def steps(settings: Settings) -> int:
    return settings.repeat + 1


def _wait_done(ctx: Context, conn: Any, worker: WorkerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        next_id, busy = queue_state(conn)
        if next_id is None and not busy:
            return
        if time.monotonic() > deadline:
            raise WorkerFailed(f"pickup jobs not done after {timeout:g} s:\n{worker.stderr()}")
        worker.check_alive()
        time.sleep(ctx.settings.poll_interval)


def _send(ctx: Context, conn: Any, count: int, interval: float, label: str) -> dict[int, float]:
    committed: dict[int, float] = {}
    next_at = time.perf_counter()
    for n in range(count):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        cursor = conn.execute(INSERT_PICKUP_JOB)
        at = time.time()
        row = cursor.fetchone()
        committed[row[0]] = at
        next_at += interval
        if n % 10 == 0:
            ctx.progress.update(n / count, f"{label} {n}/{count}")
    return committed


def pickup_run(
    ctx: Context, *, jobs: int, warmup: int, interval: float, raw: bool = False
) -> dict[str, Any]:
    """Latencies of `jobs` jobs sent every `interval` s to pgworker (or the raw loop)."""
    with tempfile.TemporaryDirectory(prefix="pgworker-bench-") as tmp:
        record = Path(tmp) / "pickup.txt"
        command = [sys.executable, "-m", "bench.listen_loop", str(record)] if raw else None
        with connect(ctx.dsn) as conn:
            reset_jobs(conn)
            settle(conn)
            with WorkerProcess(
                ctx.dsn,
                concurrency=DEFAULT_CONCURRENCY,
                env={PICKUP_FILE_ENV: str(record)},
                command=command,
            ) as worker:
                worker.start()
                worker.wait_registered(conn)
                # Warm-up: the worker's LISTEN is up and its statements are prepared after it.
                _send(ctx, conn, warmup, interval, "warm-up")
                _wait_done(ctx, conn, worker)
                committed = _send(ctx, conn, jobs, interval, "jobs")
                _wait_done(ctx, conn, worker)
                code = worker.stop()
        started: dict[int, float] = {}
        for line in record.read_text().splitlines():
            job_id, at = line.split()
            started[int(job_id)] = float(at)
    missing = [job_id for job_id in committed if job_id not in started]
    if missing or code != 0:
        raise WorkerFailed(f"pickup: {len(missing)} jobs never started, worker exit {code}")
    latencies = [(started[job_id] - at) * 1000 for job_id, at in committed.items()]
    return {
        "jobs": jobs,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "min_ms": min(latencies),
        "latencies_ms": [round(v, 4) for v in latencies],
    }


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    runs = []
    for attempt in range(1, s.repeat + 1):
        ctx.progress.step(f"idle pickup run {attempt}/{s.repeat}")
        result = pickup_run(
            ctx, jobs=s.pickup_jobs, warmup=s.pickup_warmup, interval=s.pickup_interval
        )
        result["run"] = attempt
        runs.append(result)
    ctx.progress.step("idle pickup: the raw LISTEN loop")
    raw = pickup_run(
        ctx, jobs=s.pickup_jobs, warmup=s.pickup_warmup, interval=s.pickup_interval, raw=True
    )
    rows = [
        {
            "run": f"pgworker {r['run']}",
            "jobs": r["jobs"],
            "p50 ms": r["p50_ms"],
            "p90 ms": r["p90_ms"],
            "p99 ms": r["p99_ms"],
            "max ms": r["max_ms"],
        }
        for r in runs
    ]
    summary = {
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "max_ms": max(r["max_ms"] for r in runs),
    }
    if len(runs) > 1:
        rows.append(
            {
                "run": "pgworker median",
                "jobs": sum(r["jobs"] for r in runs),
                "p50 ms": summary["p50_ms"],
                "p90 ms": median([r["p90_ms"] for r in runs]),
                "p99 ms": summary["p99_ms"],
                "max ms": summary["max_ms"],
            }
        )
    ctx.show(
        f"idle pickup: one job every {s.pickup_interval * 1000:g} ms into an idle worker"
        f" (--concurrency {DEFAULT_CONCURRENCY}), commit returned -> handler start",
        [
            *rows,
            {
                "run": "raw LISTEN loop",
                "jobs": raw["jobs"],
                "p50 ms": raw["p50_ms"],
                "p90 ms": raw["p90_ms"],
                "p99 ms": raw["p99_ms"],
                "max ms": raw["max_ms"],
            },
        ],
        "raw LISTEN loop: LISTEN, the worker's claim, write the time; the floor under the rows"
        " above on this machine.",
    )
    return {"runs": runs, "table": rows, "raw": raw, **summary}
