"""Burn-down: N pre-inserted no-op jobs and a real `pgworker work` process, timed to the end.

The clock starts just before the worker process is spawned (its imports, connections and
registration count) and stops at the first poll of the database that finds no job pending
or processing; the polls run every `poll_interval` (20 ms) through two index probes.
"startup" is spawn to the first claim seen, "steady" the rate after it.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    batch_stats,
    connect,
    insert_due_jobs,
    median,
    queue_state,
    reset_jobs,
    settle,
)
from bench.context import Context
from bench.settings import Settings
from bench.workerproc import WorkerFailed, WorkerProcess
from pgworker.config import default_prefetch

# Seconds between the samples of (time, jobs claimed) kept in the JSON: the rate over a run.
CURVE_STEP = 0.25


def steps(settings: Settings) -> int:
    return (len(settings.concurrency) + len(settings.best_candidates)) * settings.repeat


def burn_down(
    ctx: Context, *, jobs: int, concurrency: int, prefetch: int | None, task: str = "noop"
) -> dict[str, Any]:
    """One burn-down of `jobs` jobs of `task`; raises WorkerFailed unless all succeed."""
    poll = ctx.settings.poll_interval
    with connect(ctx.dsn) as conn:
        reset_jobs(conn)
        insert_due_jobs(conn, jobs, task)
        settle(conn)
        row = conn.execute("SELECT min(id) FROM pgworker.jobs").fetchone()
        first_id = row[0] if row else None
        timeout = max(120.0, jobs / 200)
        with WorkerProcess(ctx.dsn, concurrency=concurrency, prefetch=prefetch) as worker:
            spawned = worker.start()
            first_claim: float | None = None
            curve: list[tuple[float, int]] = []  # (seconds since spawn, jobs claimed)
            while True:
                next_id, busy = queue_state(conn)
                now = time.perf_counter()
                if first_claim is None and (busy or next_id != first_id):
                    first_claim = now
                if next_id is None and not busy:
                    break
                claimed = jobs if next_id is None else next_id - (first_id or 0)
                if not curve or now - spawned - curve[-1][0] >= CURVE_STEP:
                    curve.append((round(now - spawned, 3), claimed))
                ctx.progress.update(claimed / jobs, f"{claimed:,}/{jobs:,} claimed")
                if now - spawned > timeout:
                    raise WorkerFailed(f"burn-down not done after {timeout:g} s")
                worker.check_alive()
                time.sleep(poll)
            end = now
            rss = worker.peak_rss_mib()
            code = worker.stop()
        stats = batch_stats(conn)
    if stats["succeeded"] != jobs or code != 0:
        raise WorkerFailed(
            f"burn-down ended with {stats['succeeded']:,}/{jobs:,} jobs succeeded, worker exit"
            f" code {code}:\n{worker.stderr()}"
        )
    assert first_claim is not None
    elapsed = end - spawned
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "seconds": elapsed,
        "jobs_per_s": jobs / elapsed,
        "startup_s": first_claim - spawned,
        "steady_jobs_per_s": jobs / max(end - first_claim, 1e-9),
        "peak_rss_mib": rss,
        **stats,
        "curve": curve,
    }


def _summarise(
    label: str, concurrency: int, prefetch: int | None, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    rates = [r["jobs_per_s"] for r in runs]
    rss = [r["peak_rss_mib"] for r in runs if r["peak_rss_mib"] is not None]
    return {
        "setting": label,
        "concurrency": concurrency,
        "prefetch": prefetch if prefetch is not None else f"({default_prefetch(concurrency)})",
        "jobs/s": median(rates),
        "min-max %": 100 * (max(rates) - min(rates)) / median(rates) if len(rates) > 1 else 0.0,
        "steady jobs/s": median([r["steady_jobs_per_s"] for r in runs]),
        "startup s": median([r["startup_s"] for r in runs]),
        "claim batch": median([r["claim_batch"] for r in runs]),
        "typical claim": int(median([r["typical_claim"] for r in runs])),
        "complete batch": median([r["complete_batch"] for r in runs]),
        "peak RSS MiB": max(rss) if rss else None,
    }


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    settings: list[tuple[str, int, int | None]] = [(f"c={c}", c, None) for c in s.concurrency] + [
        (f"c={c} p={p}", c, p) for c, p in s.best_candidates
    ]
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for label, concurrency, prefetch in settings:
        mine = []
        for attempt in range(1, s.repeat + 1):
            ctx.progress.step(f"burn-down {label} run {attempt}/{s.repeat}")
            result = burn_down(ctx, jobs=s.jobs, concurrency=concurrency, prefetch=prefetch)
            result["setting"] = label
            result["run"] = attempt
            mine.append(result)
        runs += mine
        rows.append(_summarise(label, concurrency, prefetch, mine))
    best = max(rows, key=lambda r: r["jobs/s"])
    table = [{**r, "best": r is best} for r in rows]
    ctx.show(
        f"burn-down: {s.jobs:,} no-op jobs, one `pgworker work` process, median of {s.repeat}"
        " (prefetch in parentheses: the default)",
        table,
        "jobs/s counts from the process spawn; steady jobs/s from its first claim.",
    )
    defaults = next((r for r in rows if r["concurrency"] == 5 and r["setting"] == "c=5"), None)
    return {
        "jobs": s.jobs,
        "runs": runs,
        "table": table,
        "best": best,
        "defaults": defaults,
        "peak_rss_mib": max((r["peak RSS MiB"] or 0.0) for r in rows),
    }
