"""The raw ceiling: a minimal psycopg loop that claims B jobs and completes them, repeatedly.

It runs the worker's own statements (pgworker.queries: the claim with a literal LIMIT B,
FOR UPDATE SKIP LOCKED, then the fenced COMPLETE_JOBS, unprepared as the completer runs it)
on one autocommit connection, one after the other, with nothing in between: what any
Python worker using these statements could reach on this machine. The clock includes the
connection; the jobs are inserted and the table settled before, as for the burn-down.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    batch_stats,
    connect,
    insert_due_jobs,
    median,
    register_worker,
    reset_jobs,
    settle,
)
from bench.context import Context
from bench.settings import Settings
from pgworker import queries
from pgworker.worker import claim_size_below, claim_statements


def batch_sizes(ctx: Context) -> list[int]:
    """The configured sizes plus the typical claim of pgworker's best burn-down setting."""
    sizes = [claim_size_below(b) for b in ctx.settings.batches]
    batch = pgworker_batch(ctx)
    if batch is not None:
        sizes.append(batch)
    return sorted(set(sizes))


def pgworker_batch(ctx: Context) -> int | None:
    """The claim size that claimed most jobs in the best burn-down setting (None: not run)."""
    best = ctx.results.get("burndown", {}).get("best")
    if not best or best["typical claim"] < 1:
        return None
    return claim_size_below(best["typical claim"])


def steps(settings: Settings) -> int:
    return (len(settings.batches) + ("burndown" in settings.measures)) * settings.repeat


def jobs_for(settings: Settings, batch: int) -> int:
    """One job per claim runs ~2,500 jobs/s here: it gets fewer jobs to keep the run short."""
    return min(settings.jobs, settings.raw_single_jobs) if batch == 1 else settings.jobs


def raw_loop(
    dsn: str, *, jobs: int, batch: int, progress: Any = None, checkpoint: bool = True
) -> dict[str, Any]:
    """Insert `jobs` no-op jobs, then claim and complete `batch` at a time until none is left."""
    if batch not in queries.CLAIM_SIZES:
        raise ValueError(f"batch must be one of {queries.CLAIM_SIZES}")
    claim = claim_statements(queries.CLAIM_JOBS_TEMPLATE)[batch]
    with connect(dsn) as setup:
        reset_jobs(setup)
        insert_due_jobs(setup, jobs)
        settle(setup, checkpoint=checkpoint)
        worker_id = register_worker(setup)
        params = {"queue": "default", "worker_id": worker_id}
        start = time.perf_counter()
        done = 0
        claiming = completing = 0.0  # seconds spent in each statement
        with connect(dsn) as conn:
            while True:
                began = time.perf_counter()
                rows = conn.execute(claim, params).fetchall()
                claimed = time.perf_counter()
                claiming += claimed - began
                if not rows:
                    break
                cursor = conn.execute(
                    queries.COMPLETE_JOBS,
                    {
                        "ids": [r[0] for r in rows],
                        "attempts": [r[3] for r in rows],
                        "worker_id": worker_id,
                    },
                    prepare=False,
                )
                completing += time.perf_counter() - claimed
                done += cursor.rowcount
                if progress is not None and done % (batch * 50) == 0:
                    progress.update(done / jobs, f"{done:,}/{jobs:,} done")
        elapsed = time.perf_counter() - start
        stats = batch_stats(setup)
    if done != jobs or stats["succeeded"] != jobs:
        raise RuntimeError(f"raw loop completed {done:,} of {jobs:,} jobs")
    return {
        "batch": batch,
        "jobs": jobs,
        "seconds": elapsed,
        "jobs_per_s": jobs / elapsed,
        "claim_ms": 1000 * claiming / max(1, stats["claims"]),
        "complete_ms": 1000 * completing / max(1, stats["completions"]),
        **stats,
    }


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    batch_of_pgworker = pgworker_batch(ctx)
    best = ctx.results.get("burndown", {}).get("best")
    for batch in batch_sizes(ctx):
        jobs = jobs_for(s, batch)
        mine = []
        for attempt in range(1, s.repeat + 1):
            ctx.progress.step(f"raw loop B={batch} run {attempt}/{s.repeat}")
            one = raw_loop(ctx.dsn, jobs=jobs, batch=batch, progress=ctx.progress)
            one["run"] = attempt
            mine.append(one)
        runs += mine
        rates = [r["jobs_per_s"] for r in mine]
        rows.append(
            {
                "B (jobs per statement)": batch,
                "jobs": jobs,
                "jobs/s": median(rates),
                "min-max %": 100 * (max(rates) - min(rates)) / median(rates)
                if len(rates) > 1
                else 0.0,
                "claim ms": median([r["claim_ms"] for r in mine]),
                "complete ms": median([r["complete_ms"] for r in mine]),
                "pgworker's batch": batch == batch_of_pgworker,
            }
        )
    ctx.show(
        f"raw ceiling: one psycopg connection claiming and completing B jobs per statement,"
        f" median of {s.repeat}",
        rows,
    )
    by_batch = {r["B (jobs per statement)"]: r["jobs/s"] for r in rows}
    result: dict[str, Any] = {"runs": runs, "table": rows, "by_batch": by_batch}
    if best and batch_of_pgworker in by_batch:
        raw = by_batch[batch_of_pgworker]
        result["pgworker_batch"] = batch_of_pgworker
        result["ratio"] = best["jobs/s"] / raw
        result["steady_ratio"] = best["steady jobs/s"] / raw
        ctx.show(
            "pgworker against the raw loop",
            [
                {
                    "pgworker setting": best["setting"],
                    "pgworker jobs/s": best["jobs/s"],
                    "its typical claim": best["typical claim"],
                    "raw B": batch_of_pgworker,
                    "raw jobs/s": raw,
                    "ratio": result["ratio"],
                    "steady ratio": result["steady_ratio"],
                }
            ],
        )
    return result
