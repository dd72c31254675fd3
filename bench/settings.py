"""Settings: what `python -m bench` measures and how big, from its command line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

MEASURES: Final = ("enqueue", "burndown", "ceiling", "io", "pickup", "claim")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    """`5:500,10:500` -> ((5, 500), (10, 500)): concurrency:prefetch pairs."""
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        concurrency, sep, prefetch = part.partition(":")
        try:
            pairs.append((int(concurrency), int(prefetch)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected CONCURRENCY:PREFETCH pairs, got {part!r}"
            ) from None
        if not sep or pairs[-1][0] < 1 or pairs[-1][1] < 0:
            raise argparse.ArgumentTypeError(f"expected CONCURRENCY:PREFETCH pairs, got {part!r}")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a bench run; saved with the results so a number carries its setting."""

    measures: tuple[str, ...] = MEASURES
    dsn: str | None = None  # None: the embedded server under bench/results/
    quick: bool = False
    repeat: int = 3
    # burn-down and the raw ceiling
    jobs: int = 100_000
    concurrency: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    best_candidates: tuple[tuple[int, int], ...] = ((5, 200), (10, 400))
    batches: tuple[int, ...] = (1, 100, 200)
    raw_single_jobs: int = 3_000  # the raw loop at B=1 runs 1,000-2,500 jobs/s: fewer jobs
    poll_interval: float = 0.02
    # I/O-bound handlers
    io_jobs: int = 20_000
    io_concurrency: int = 50
    io_sleep: float = 0.010
    # enqueue
    enqueue_single: int = 3_000
    enqueue_bulk: int = 100_000
    # idle pickup
    pickup_jobs: int = 500
    pickup_interval: float = 0.020
    pickup_warmup: int = 20
    # claim latency with a backlog
    backlogs: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    claim_sizes: tuple[int, ...] = (1, 100)
    claim_executions: int = 1_000
    # A small table (1k pending + 10k finished) is where the planner likes seq scans best.
    finished_rows: int = 10_000
    save: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("dsn")
        data.pop("extra")
        return data


QUICK: Final[dict[str, Any]] = {
    "repeat": 1,
    "jobs": 10_000,
    "concurrency": (1, 5, 20),
    "best_candidates": ((5, 500),),
    "raw_single_jobs": 2_000,
    "io_jobs": 2_000,
    "enqueue_single": 1_000,
    "enqueue_bulk": 20_000,
    "pickup_jobs": 100,
    "backlogs": (1_000, 20_000),
    "claim_executions": 200,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="pgworker benchmarks: throughput, latency and memory on a real PostgreSQL,"
        " with the raw psycopg ceiling beside them.",
    )
    p.add_argument(
        "measures",
        nargs="*",
        metavar="MEASURE",
        help=f"what to run: {', '.join(MEASURES)} or all (default: all)",
    )
    p.add_argument(
        "--dsn",
        default=os.environ.get("PGWORKER_BENCH_DSN"),
        help="server to measure on; a scratch database is created and dropped there"
        " (default: $PGWORKER_BENCH_DSN, else an embedded server under bench/results/)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke run")
    p.add_argument("--repeat", type=int, help="runs per measure, median reported (default 3)")
    p.add_argument("--jobs", type=int, help="burn-down jobs per run (default 100,000)")
    p.add_argument("--concurrency", type=_ints, help="burn-down concurrencies (1,2,5,10,20,50)")
    p.add_argument(
        "--best",
        type=_pairs,
        dest="best_candidates",
        help="extra CONCURRENCY:PREFETCH settings tried for the best row (5:200,10:400)",
    )
    p.add_argument("--batches", type=_ints, help="raw loop batch sizes (1,100,200)")
    p.add_argument("--io-jobs", type=int, help="10 ms jobs per I/O-bound run (20,000)")
    p.add_argument("--pickup-jobs", type=int, help="jobs per pickup-latency run (500)")
    p.add_argument(
        "--backlogs", type=_ints, help="pending rows for claim latency (1000,100000,1000000)"
    )
    p.add_argument("--claim-executions", type=int, help="claims per backlog (1,000)")
    p.add_argument("--no-save", dest="save", action="store_false", help="write no JSON")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from a command line: defaults, then --quick, then explicit flags."""
    p = parser()
    args = p.parse_args(argv)
    measures = tuple(args.measures) or ("all",)
    unknown = [m for m in measures if m not in (*MEASURES, "all")]
    if unknown:
        p.error(f"unknown measure {unknown[0]!r}: choose from {', '.join(MEASURES)} or all")
    chosen = MEASURES if "all" in measures else tuple(m for m in MEASURES if m in measures)
    values: dict[str, Any] = {"measures": chosen, "dsn": args.dsn, "quick": args.quick}
    if args.quick:
        values.update(QUICK)
    for name in (
        "repeat", "jobs", "concurrency", "best_candidates", "batches", "io_jobs",
        "pickup_jobs", "backlogs", "claim_executions",
    ):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    for name in ("repeat", "jobs", "io_jobs", "pickup_jobs", "claim_executions"):
        if values.get(name, 1) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    values["save"] = args.save
    return Settings(**values)
