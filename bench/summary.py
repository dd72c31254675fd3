"""The performance targets and how the measured numbers compare with them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bench.common import fmt

Results = dict[str, dict[str, Any]]

BEST_MIN: Final = 50_000.0
DEFAULTS_MIN: Final = 15_000.0
IO_MIN_PERCENT: Final = 95.0
SINGLE_ENQUEUE_MIN_RATIO: Final = 0.90
COPY_MIN: Final = 150_000.0
PICKUP_P50_MAX_MS: Final = 1.2
PICKUP_P99_MAX_MS: Final = 2.5
CLAIM_MAX_RATIO: Final = 2.0
RSS_MAX_MIB: Final = 45.0


def _row(measure: str, target: str, measured: str, ok: bool | None) -> dict[str, Any]:
    verdict = "n/a" if ok is None else ("pass" if ok else "FAIL")
    return {"measure": measure, "target": target, "measured": measured, "result": verdict}


def _best(r: Results) -> dict[str, Any]:
    best = r["burndown"]["best"]
    ceiling = r.get("ceiling", {})
    ratio = ceiling.get("ratio")
    measured = f"{fmt(best['jobs/s'])} jobs/s ({best['setting']})"
    if ratio is not None:
        measured += f", {ratio:.2f}x raw B={ceiling['pgworker_batch']}"
        ok = best["jobs/s"] >= BEST_MIN and ratio >= 1.0
    else:
        measured += ", raw loop not run"
        ok = best["jobs/s"] >= BEST_MIN
    return _row("burn-down, best setting", ">= 50,000 jobs/s and >= 1.0x raw", measured, ok)


def _defaults(r: Results) -> dict[str, Any]:
    row = r["burndown"]["defaults"]
    if row is None:
        return _row("burn-down, defaults (c=5)", ">= 15,000 jobs/s", "c=5 not run", None)
    rate = row["jobs/s"]
    return _row(
        "burn-down, defaults (c=5)", ">= 15,000 jobs/s", f"{fmt(rate)} jobs/s", rate >= DEFAULTS_MIN
    )


def _io(r: Results) -> dict[str, Any]:
    percent = r["io"]["percent_of_ideal"]
    return _row(
        "10 ms handlers, c=50",
        ">= 95 % of 5,000 jobs/s",
        f"{percent:.1f} %",
        percent >= IO_MIN_PERCENT,
    )


def _single(r: Results) -> dict[str, Any]:
    e = r["enqueue"]
    return _row(
        "single enqueue (client)",
        ">= 90 % of raw INSERT",
        f"{100 * e['single_ratio']:.0f} % ({fmt(e['single'])} vs {fmt(e['raw_insert'])} jobs/s)",
        e["single_ratio"] >= SINGLE_ENQUEUE_MIN_RATIO,
    )


def _copy(r: Results) -> dict[str, Any]:
    rate = r["enqueue"]["copy"]
    return _row("COPY enqueue", ">= 150,000 jobs/s", f"{fmt(rate)} jobs/s", rate >= COPY_MIN)


def _pickup(r: Results) -> dict[str, Any]:
    p = r["pickup"]
    return _row(
        "idle pickup p50 / p99",
        "<= 1.2 ms / <= 2.5 ms",
        f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms (max {p['max_ms']:.1f}; raw loop"
        f" {p['raw']['p50_ms']:.2f} / {p['raw']['p99_ms']:.2f})",
        p["p50_ms"] <= PICKUP_P50_MAX_MS and p["p99_ms"] <= PICKUP_P99_MAX_MS,
    )


def _claim(r: Results) -> dict[str, Any]:
    c = r["claim"]
    ratios = ", ".join(f"{v:.2f}x (size {k})" for k, v in c["ratios"].items())
    # Per backlog, the smallest claim size with a plan that is not ok, in any of the checks.
    worst: dict[int, int] = {}
    for level in c["levels"]:
        if not level["plans_ok"]:
            pending = level["pending"]
            worst[pending] = min(worst.get(pending, level["claim_size"]), level["claim_size"])
    for pending, sweep in c["sweeps"].items():
        for size, verdict in sweep.items():
            if verdict["custom"] != "ok" or verdict["generic"] != "ok":
                key = int(pending)
                worst[key] = min(worst.get(key, int(size)), int(size))
    if worst:
        where = ", ".join(f"{n:,} pending from size {s}" for n, s in sorted(worst.items()))
        plans = f"plan not ok: {where}"
    else:
        plans = "index scan in every plan"
    return _row(
        "claim p50, largest vs smallest backlog",
        "<= 2x, index scan, also prepared",
        f"{ratios}; {plans}",
        c["max_ratio"] <= CLAIM_MAX_RATIO and c["plans_ok"] and c["sweeps_ok"],
    )


def _rss(r: Results) -> dict[str, Any]:
    rss = r["burndown"]["peak_rss_mib"]
    return _row("worker peak RSS (burn-down)", "<= 45 MiB", f"{rss:.1f} MiB", rss <= RSS_MAX_MIB)


CHECKS: Final[list[tuple[tuple[str, ...], Callable[[Results], dict[str, Any]]]]] = [
    (("burndown",), _best),
    (("burndown",), _defaults),
    (("io",), _io),
    (("enqueue",), _single),
    (("enqueue",), _copy),
    (("pickup",), _pickup),
    (("claim",), _claim),
    (("burndown",), _rss),
]


def summarise(results: Results) -> list[dict[str, Any]]:
    """One row per target whose measures ran: target, measured value, pass or FAIL."""
    return [check(results) for needs, check in CHECKS if all(n in results for n in needs)]
