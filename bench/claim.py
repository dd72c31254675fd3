"""Claim latency with a backlog: the worker's claim at 1k, 100k and 1M due pending rows.

Beside the due rows the table holds finished rows (`finished_rows`, succeeded) and future
ones (a tenth of the backlog, run_after a day ahead, same priority), as a live queue does.
Each claim runs in its own transaction, rolled back, so every execution sees the same
backlog (its aborted row versions stay until a vacuum, as a live queue's claimed ones do:
"p50 last 100" shows whether that told). The statement is the worker's
(pgworker.worker.claim_statements), prepared on the server and executed on one
connection, so PostgreSQL's plan cache treats it as it treats the worker's (psycopg
prepares a statement after 5 executions): custom plans first, then perhaps a generic plan.

The plan is checked three ways: a plain EXPLAIN (the custom plan for these values), the
plan the prepared statement runs after all the executions (EXPLAIN EXECUTE, beside
pg_prepared_statements' generic/custom counts), and the plan with plan_cache_mode =
force_generic_plan (what EXPLAIN (GENERIC_PLAN) shows on PG16+, on any version). A plan
passes with an index scan of jobs_claim_idx, no seq scan of jobs and no sort of rows read from
jobs (the final sort of the claimed rows is fine). Right after
each load, before any claim, the custom and forced generic plans of every size in
CLAIM_SIZES are judged too: the worker claims any of them, and the join of the claimed ids
back to jobs is where a larger LIMIT turns into a hash join over a seq scan.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from bench.common import (
    connect,
    insert_due_jobs,
    insert_finished_jobs,
    insert_future_jobs,
    percentile,
    register_worker,
    reset_jobs,
    settle,
)
from bench.context import Context
from bench.settings import Settings
from pgworker import queries
from pgworker.worker import claim_size_below, claim_statements

CLAIM_INDEX = "jobs_claim_idx"
DIAGNOSTIC_EXECUTIONS = 100
MOVE_FUTURE_AHEAD = """
UPDATE pgworker.jobs
SET priority = -1
WHERE status = 'pending' AND run_after > now()
"""


def steps(settings: Settings) -> int:
    return len(settings.backlogs) * (1 + len(settings.claim_sizes)) + 1


def short(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return f"{count:,}"


# --- plans ---------------------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _input(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The nodes a node reads rows from: its subtree without InitPlans and CTEs hung on it."""
    for child in node.get("Plans", ()):
        if child.get("Parent Relationship") not in ("InitPlan", "SubPlan"):
            yield child
            yield from _input(child)


def judge_plan(explained: Any) -> dict[str, Any]:
    """What an EXPLAIN (FORMAT JSON) of the claim shows: its scans, and whether it passes."""
    root = explained[0]["Plan"]
    scans = []
    claim_index = seq_jobs = sort_jobs = False
    for node in _nodes(root):
        kind = node["Node Type"]
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        if "Scan" in kind and kind not in ("CTE Scan", "Subquery Scan", "Function Scan"):
            scans.append(f"{kind} {index or relation}")
        if index == CLAIM_INDEX and kind in ("Index Scan", "Index Only Scan"):
            claim_index = True
        if kind == "Seq Scan" and relation == "jobs":
            seq_jobs = True
        # Sorting rows read from jobs means sorting the backlog (the `queue = ANY(...)` trap);
        # the claim's final ORDER BY sorts only the rows it just claimed (a CTE Scan).
        if kind in ("Sort", "Incremental Sort") and any(
            child.get("Relation Name") == "jobs" for child in _input(node)
        ):
            sort_jobs = True
    problems = [
        text
        for text, bad in (
            ("no claim index scan", not claim_index),
            ("seq scan of jobs", seq_jobs),
            ("sort", sort_jobs),
        )
        if bad
    ]
    return {
        "verdict": ", ".join(problems) or "ok",
        "scans": ", ".join(scans),
        "claim_index_scan": claim_index,
        "seq_scan_on_jobs": seq_jobs,
        "sort": sort_jobs,
        "ok": claim_index and not seq_jobs and not sort_jobs,
    }


CLAIM_NAME = "bench_claim"


def server_statement(statement: LiteralString) -> LiteralString:
    """The claim with PostgreSQL's $n placeholders, as psycopg sends it to the server."""
    converted = statement.replace("%(queue)s", "$1").replace("%(worker_id)s", "$2")
    if "%(" in converted:
        raise ValueError("the claim has a parameter this benchmark does not know")
    return converted


def _prepare(conn: psycopg.Connection[Any], statement: LiteralString) -> None:
    # No parameter types given: the server infers them, as for psycopg's untyped strings.
    conn.execute(
        sql.SQL("PREPARE {} AS {}").format(
            sql.Identifier(CLAIM_NAME), sql.SQL(server_statement(statement))
        )
    )


def _execute_statement(params: dict[str, Any]) -> sql.Composed:
    # Literal arguments: EXECUTE cannot infer the types of parameters of its own.
    return sql.SQL("EXECUTE {}({}, {})").format(
        sql.Identifier(CLAIM_NAME), sql.Literal(params["queue"]), sql.Literal(params["worker_id"])
    )


def _explain_prepared(conn: psycopg.Connection[Any], params: dict[str, Any]) -> Any:
    """EXPLAIN EXECUTE: the plan the prepared statement's plan cache picks now."""
    row = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) {}").format(_execute_statement(params))
    ).fetchone()
    conn.rollback()
    assert row is not None
    return row[0]


def _plan_counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s",
        (CLAIM_NAME,),
    ).fetchone()
    conn.rollback()
    if row is None:
        raise RuntimeError("the claim is not prepared on this connection")
    return row[0], row[1]


def _claim_connection(dsn: str) -> psycopg.Connection[Any]:
    conn = connect(dsn, autocommit=False)
    # psycopg forgets its own prepared statements at every rollback (DEALLOCATE ALL): it must
    # prepare none here, so that the server-side PREPARE below lives through the rollbacks.
    conn.prepare_threshold = None
    return conn


def forced_generic_plan(
    dsn: str, statement: LiteralString, params: dict[str, Any]
) -> dict[str, Any]:
    """The claim's plan with plan_cache_mode = force_generic_plan."""
    with _claim_connection(dsn) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        _prepare(conn, statement)
        conn.commit()
        return judge_plan(_explain_prepared(conn, params))


def plan_sweep(dsn: str, worker_id: str) -> dict[int, dict[str, str]]:
    """The verdict on the custom and the forced generic plan of the claim at every size in
    CLAIM_SIZES: the worker claims any of them, depending on its concurrency and prefetch."""
    params = {"queue": "default", "worker_id": worker_id}
    verdicts: dict[int, dict[str, str]] = {}
    with _claim_connection(dsn) as conn:
        for size, statement in claim_statements(queries.CLAIM_JOBS_TEMPLATE).items():
            row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
            assert row is not None
            verdicts[size] = {"custom": judge_plan(row[0])["verdict"]}
        conn.execute("SET plan_cache_mode = force_generic_plan")
        for size, statement in claim_statements(queries.CLAIM_JOBS_TEMPLATE).items():
            _prepare(conn, statement)
            verdicts[size]["generic"] = judge_plan(_explain_prepared(conn, params))["verdict"]
            conn.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(CLAIM_NAME)))
        conn.rollback()
    return verdicts


def failing_sizes(verdicts: dict[int, dict[str, str]], kind: str) -> str:
    """The claim sizes whose `kind` plan is not ok, e.g. '320, 400, 500', or 'none'."""
    bad = [str(size) for size, v in verdicts.items() if v[kind] != "ok"]
    return ", ".join(bad) or "none"


# --- latency -------------------------------------------------------------------------------


def measure(
    ctx: Context, *, size: int, executions: int, worker_id: str, expect: int
) -> dict[str, Any]:
    """`executions` claims of `size` on one connection, each rolled back; latencies and plans.

    The claim is a server-side prepared statement (PREPARE, then EXECUTE), the same plan
    cache psycopg's automatic preparation uses in the worker: custom plans for the first
    five executions, then a generic plan if PostgreSQL finds it no costlier.
    """
    statement = claim_statements(queries.CLAIM_JOBS_TEMPLATE)[size]
    params = {"queue": "default", "worker_id": worker_id}
    with _claim_connection(ctx.dsn) as conn:
        row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
        conn.rollback()
        assert row is not None
        custom = judge_plan(row[0])
        _prepare(conn, statement)
        conn.commit()
        execute = _execute_statement(params).as_string(conn)
        times: list[float] = []
        for n in range(executions):
            start = time.perf_counter()
            rows = conn.execute(execute).fetchall()
            times.append((time.perf_counter() - start) * 1000)
            conn.rollback()
            if len(rows) != expect:
                raise RuntimeError(f"claim of {size} returned {len(rows)} rows, not {expect}")
            if n % 50 == 0:
                ctx.progress.update(n / executions, f"{n}/{executions} claims")
        generic_runs, custom_runs = _plan_counts(conn)
        after = judge_plan(_explain_prepared(conn, params))
    generic = forced_generic_plan(ctx.dsn, statement, params)
    tail = times[-min(100, len(times)) :]
    return {
        "claim_size": size,
        "executions": executions,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "p50_last_100_ms": percentile(tail, 50),
        "generic_plan_runs": generic_runs,
        "custom_plan_runs": custom_runs,
        "plan_custom": custom,
        "plan_after_executions": after,
        "plan_forced_generic": generic,
        "plans_ok": custom["ok"] and after["ok"] and generic["ok"],
    }


def run(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    sizes = sorted({claim_size_below(size) for size in s.claim_sizes})
    levels: list[dict[str, Any]] = []
    sweeps: dict[int, dict[int, dict[str, str]]] = {}
    with connect(ctx.dsn) as conn:
        reset_jobs(conn)
        ctx.progress.step(f"claim: {s.finished_rows:,} finished rows")
        insert_finished_jobs(conn, s.finished_rows)
        worker_id = register_worker(conn)
        pending = future = 0
        for backlog in sorted(s.backlogs):
            ctx.progress.step(f"claim: load {backlog:,} pending rows")
            insert_due_jobs(conn, backlog - pending)
            insert_future_jobs(conn, backlog // 10 - future)
            pending, future = backlog, backlog // 10
            settle(conn)
            # Before any claim: rolled-back claims leave dead rows that change the costs.
            sweeps[backlog] = plan_sweep(ctx.dsn, worker_id)
            for size in sizes:
                ctx.progress.step(
                    f"claim: {s.claim_executions:,} claims of {size}, {short(backlog)}"
                )
                result = measure(
                    ctx,
                    size=size,
                    executions=s.claim_executions,
                    worker_id=worker_id,
                    expect=min(size, backlog),
                )
                levels.append({"pending": backlog, "future": future, **result})
        # Diagnostic, no target: future rows ordered before the due ones (a lower priority
        # number) lie on the claim's index path; every claim steps over them.
        ctx.progress.step("claim: future rows at a higher priority")
        conn.execute(MOVE_FUTURE_AHEAD)
        settle(conn)
        size = max(sizes)
        diagnostic = measure(
            ctx,
            size=size,
            executions=min(DIAGNOSTIC_EXECUTIONS, s.claim_executions),
            worker_id=worker_id,
            expect=min(size, pending),
        )
        diagnostic.update(pending=pending, future=future)
    rows = [
        {
            "pending": short(r["pending"]),
            "claim size": r["claim_size"],
            "p50 ms": r["p50_ms"],
            "p99 ms": r["p99_ms"],
            "p50 last 100": r["p50_last_100_ms"],
            "generic runs": r["generic_plan_runs"],
            "custom plan": r["plan_custom"]["verdict"],
            "prepared plan": r["plan_after_executions"]["verdict"],
            "forced generic": r["plan_forced_generic"]["verdict"],
        }
        for r in levels
    ]
    ctx.show(
        f"claim latency: the worker's claim, {s.claim_executions:,} executions per row, each"
        f" rolled back; plus {s.finished_rows:,} finished rows and a tenth of the backlog due"
        " tomorrow",
        rows,
        "plans: ok = an index scan of jobs_claim_idx, no seq scan of jobs, no sort; custom ="
        " EXPLAIN for these values, prepared = EXPLAIN EXECUTE after all the executions"
        " ('generic runs' of them used the generic plan), forced generic = plan_cache_mode"
        " force_generic_plan. Scans of each plan are in the JSON.",
    )
    low, high = min(s.backlogs), max(s.backlogs)
    ratios = {}
    for size in sizes:
        by_level = {r["pending"]: r for r in levels if r["claim_size"] == size}
        ratios[size] = by_level[high]["p50_ms"] / by_level[low]["p50_ms"]
    ctx.show(
        "claim p50, largest backlog over smallest",
        [
            {
                "claim size": size,
                f"{short(low)} p50 ms": next(
                    r["p50_ms"] for r in levels if r["claim_size"] == size and r["pending"] == low
                ),
                f"{short(high)} p50 ms": next(
                    r["p50_ms"] for r in levels if r["claim_size"] == size and r["pending"] == high
                ),
                "ratio": ratios[size],
            }
            for size in sizes
        ],
    )
    ctx.show(
        f"plans of the claim at every size the worker uses ({queries.CLAIM_SIZES[0]} to"
        f" {queries.CLAIM_SIZES[-1]}), planned right after the load",
        [
            {
                "pending": short(backlog),
                "custom plan not ok at sizes": failing_sizes(verdicts, "custom"),
                "forced generic not ok at sizes": failing_sizes(verdicts, "generic"),
            }
            for backlog, verdicts in sweeps.items()
        ],
    )
    ctx.show(
        "diagnostic (no target): the same backlog with its future rows at priority -1, ahead"
        " of the due rows in the claim index",
        [
            {
                "pending": short(diagnostic["pending"]),
                "future": short(diagnostic["future"]),
                "claim size": diagnostic["claim_size"],
                "p50 ms": diagnostic["p50_ms"],
                "p99 ms": diagnostic["p99_ms"],
                "plan": diagnostic["plan_after_executions"]["scans"],
            }
        ],
    )
    return {
        "levels": levels,
        "table": rows,
        "ratios": {str(k): v for k, v in ratios.items()},
        "max_ratio": max(ratios.values()),
        "plans_ok": all(r["plans_ok"] for r in levels),
        "sweeps": {str(k): {str(s): v for s, v in sw.items()} for k, sw in sweeps.items()},
        "sweeps_ok": all(
            v["custom"] == "ok" and v["generic"] == "ok"
            for sw in sweeps.values()
            for v in sw.values()
        ),
        "diagnostic_future_ahead": diagnostic,
    }
