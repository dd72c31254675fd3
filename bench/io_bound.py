"""I/O-bound handlers: jobs that sleep 10 ms, at --concurrency 50 (ideal: 5,000 jobs/s).

The worker is started on an empty queue and waits, registered; the jobs arrive in one
INSERT and the clock runs from its commit to the poll that finds none pending or
processing. So the rate is the worker's steady state with handlers that wait, free of
process startup (the burn-down measures that). 100 % would be every thread sleeping all
the time; time.sleep(0.010) itself takes a little longer than 10 ms.
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
from bench.tasks import SLEEP_SECONDS
from bench.workerproc import WorkerFailed, WorkerProcess


def steps(settings: Settings) -> int:
    return settings.repeat


def io_run(ctx: Context, *, jobs: int, concurrency: int) -> dict[str, Any]:
    ideal_rate = concurrency / SLEEP_SECONDS
    with connect(ctx.dsn) as conn:
        reset_jobs(conn)
        settle(conn)
        with WorkerProcess(ctx.dsn, concurrency=concurrency) as worker:
            worker.start()
            worker.wait_registered(conn)
            insert_due_jobs(conn, jobs, "sleep10ms")
            start = time.perf_counter()
            timeout = max(60.0, 10 * jobs / ideal_rate)
            while True:
                next_id, busy = queue_state(conn)
                now = time.perf_counter()
                if next_id is None and not busy:
                    break
                claimed = jobs if next_id is None else next_id - 1
                ctx.progress.update(claimed / jobs, f"{claimed:,}/{jobs:,} claimed")
                if now - start > timeout:
                    raise WorkerFailed(f"I/O-bound run not done after {timeout:g} s")
                worker.check_alive()
                time.sleep(ctx.settings.poll_interval)
            rss = worker.peak_rss_mib()
            code = worker.stop()
        stats = batch_stats(conn)
    if stats["succeeded"] != jobs or code != 0:
        raise WorkerFailed(f"I/O-bound run: {stats['succeeded']:,}/{jobs:,} succeeded, exit {code}")
    elapsed = now - start
    rate = jobs / elapsed
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "seconds": elapsed,
        "jobs_per_s": rate,
        "ideal_jobs_per_s": ideal_rate,
        "percent_of_ideal": 100 * rate / ideal_rate,
        "peak_rss_mib": rss,
        **stats,
    }


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    runs = []
    for attempt in range(1, s.repeat + 1):
        ctx.progress.step(f"10 ms jobs c={s.io_concurrency} run {attempt}/{s.repeat}")
        result = io_run(ctx, jobs=s.io_jobs, concurrency=s.io_concurrency)
        result["run"] = attempt
        runs.append(result)
    percent = median([r["percent_of_ideal"] for r in runs])
    rows = [
        {
            "handler": "sleep 10 ms",
            "concurrency": s.io_concurrency,
            "jobs": s.io_jobs,
            "jobs/s": median([r["jobs_per_s"] for r in runs]),
            "ideal jobs/s": runs[0]["ideal_jobs_per_s"],
            "% of ideal": percent,
            "claim batch": median([r["claim_batch"] for r in runs]),
            "complete batch": median([r["complete_batch"] for r in runs]),
            "peak RSS MiB": max((r["peak_rss_mib"] or 0.0) for r in runs),
        }
    ]
    ctx.show(f"I/O-bound: commit of the jobs to all done, median of {s.repeat}", rows)
    return {"runs": runs, "table": rows, "percent_of_ideal": percent}
