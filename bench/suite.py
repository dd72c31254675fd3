"""The suite: runs the chosen measures on one scratch database, prints tables, saves JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import burndown, ceiling, claim, enqueue, io_bound, pickup
from bench.common import RESULTS, bench_server, git_revision, machine, scratch_database, server_info
from bench.context import Context
from bench.progress import Progress
from bench.settings import Settings
from bench.summary import summarise
from pgworker.config import mask_dsn

# In this order: the raw loop takes pgworker's claim batch from the burn-down.
MODULES: dict[str, ModuleType] = {
    "enqueue": enqueue,
    "burndown": burndown,
    "ceiling": ceiling,
    "io": io_bound,
    "pickup": pickup,
    "claim": claim,
}


def run(settings: Settings) -> dict[str, Any]:
    """Run `settings.measures`; returns everything that is saved as JSON."""
    started = time.time()
    progress = Progress(sum(MODULES[m].steps(settings) for m in settings.measures) + 1)
    progress.step("starting the server" if settings.dsn is None else "connecting")
    with bench_server(settings.dsn) as admin, scratch_database(admin) as dsn:
        server = server_info(dsn)
        where = (
            "embedded server (bench/results/embedded)" if settings.dsn is None else mask_dsn(admin)
        )
        print(
            f"pgworker bench on {where}: PostgreSQL {server.get('server_version', '?')},"
            f" {machine()['cores']} cores{' (--quick)' if settings.quick else ''}",
            flush=True,
        )
        print(
            "server settings: "
            + ", ".join(f"{k} {v}" for k, v in server.items() if k != "server_version"),
            flush=True,
        )
        print(f"bench settings: {describe(settings)}", flush=True)
        ctx = Context(settings=settings, dsn=dsn, progress=progress)
        try:
            for name in settings.measures:
                began = time.monotonic()
                ctx.results[name] = MODULES[name].run(ctx)
                ctx.results[name]["seconds"] = round(time.monotonic() - began, 1)
        finally:
            progress.finish()
    summary = summarise(ctx.results)
    ctx.show("summary against the targets", summary)
    if settings.quick:
        print("--quick: small sizes and single runs; not comparable with the targets.")
    report: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "revision": git_revision(),
            "server": "embedded" if settings.dsn is None else mask_dsn(settings.dsn),
            "server_settings": server,
            "machine": machine(),
        },
        "settings": settings.as_dict(),
        "results": ctx.results,
        "summary": summary,
    }
    if settings.save:
        path = save(report, started)
        print(
            f"\nsaved {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
        )
    took = ", ".join(f"{name} {ctx.results[name]['seconds']:.0f} s" for name in settings.measures)
    print(f"total {report['meta']['seconds']:.0f} s ({took})")
    return report


def describe(settings: Settings) -> str:
    """The settings of the chosen measures, in one line."""
    s = settings
    parts = [f"measures {' '.join(s.measures)}", f"repeat {s.repeat}"]
    if "burndown" in s.measures or "ceiling" in s.measures:
        best = " ".join(f"{c}:{p}" for c, p in s.best_candidates)
        parts += [
            f"jobs {s.jobs:,}",
            f"concurrency {','.join(map(str, s.concurrency))}",
            f"best candidates {best or '-'}",
            f"raw B {','.join(map(str, s.batches))} (B=1: {min(s.jobs, s.raw_single_jobs):,} jobs)",
            f"poll {s.poll_interval * 1000:g} ms",
        ]
    if "io" in s.measures:
        parts.append(f"io {s.io_jobs:,} jobs at c={s.io_concurrency}")
    if "enqueue" in s.measures:
        parts.append(f"enqueue {s.enqueue_single:,} single, {s.enqueue_bulk:,} COPY")
    if "pickup" in s.measures:
        parts.append(f"pickup {s.pickup_jobs} jobs every {s.pickup_interval * 1000:g} ms")
    if "claim" in s.measures:
        backlogs = " / ".join(f"{b:,}" for b in s.backlogs)
        parts.append(
            f"claim backlogs {backlogs} pending, sizes {','.join(map(str, s.claim_sizes))},"
            f" {s.claim_executions:,} executions, {s.finished_rows:,} finished rows"
        )
    return "; ".join(parts)


def save(report: dict[str, Any], started: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    return path
