"""Doctor: the checks that can save a production queue, each ok or warning, with a fix.

A SKIP LOCKED queue lives on vacuum: every claim and every completion leaves a dead row
version behind. Whatever holds back the xmin horizon (a forgotten transaction, a replication
slot) lets them pile up in front of the claim index until each claim wades through them, the
queue slows, jobs pile up, and it gets worse: the death spiral. The doctor looks for that
and for the other quiet failures: LISTEN broken by a pooler, a schema behind the code, a
claim plan that left its index, jobs no worker can run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from pgworker import admin_queries as q
from pgworker import queries
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.db import connect, describe_error
from pgworker.durations import format_duration
from pgworker.errors import PgworkerError
from pgworker.migrate import SCHEMA_REVISION, current_revision
from pgworker.queues import unrunnable_jobs

Connection = psycopg.Connection[Any]

DEFAULT_MAX_XMIN_AGE: Final = 300.0
DEFAULT_LISTEN_TIMEOUT: Final = 5.0
# Dead row versions of jobs worth a warning: well past what autovacuum, set at migrate time to
# start at 1,000 + 1 % of the table, lets accumulate when it keeps up.
DEAD_TUPLES_BASE: Final = 10_000
DEAD_TUPLES_FRACTION: Final = 0.2
# pg_notification_queue_usage() worth a warning: NOTIFY fails once it reaches 1.
NOTIFY_QUEUE_WARNING: Final = 0.1
# Below this many pending jobs a scan is as cheap as the index: any claim plan is fine.
PLAN_MATTERS_FROM: Final = 10_000
# The claim size whose plan is checked: a worker's typical batch.
PLAN_CLAIM_SIZE: Final = 100

OK: Final = "ok"
WARNING: Final = "warning"
SKIPPED: Final = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict: ok, warning or skipped, a one-line reason and a one-line fix."""

    name: str
    status: str
    reason: str
    fix: str = ""


def run_checks(
    dsn: str,
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
    max_xmin_age: float = DEFAULT_MAX_XMIN_AGE,
    listen_timeout: float = DEFAULT_LISTEN_TIMEOUT,
) -> list[Check]:
    """Run every check against the database at `dsn`; DatabaseUnavailable if unreachable."""
    checks: list[Check] = []
    with connect(dsn, application_name="pgworker:doctor") as conn:
        checks.append(_guard("connection", lambda: check_connection(conn)))
        schema = _guard("schema", lambda: check_schema(conn))
        checks.append(schema)
        checks.append(_guard("listen", lambda: check_listen(conn, dsn, timeout=listen_timeout)))
        checks.append(_guard("xmin", lambda: check_xmin(conn, max_age=max_xmin_age)))
        checks.append(_guard("notify_queue", lambda: check_notify_queue(conn)))
        needs_schema: list[tuple[str, Callable[[], Check]]] = [
            ("vacuum", lambda: check_vacuum(conn)),
            ("claim_plan", lambda: check_claim_plan(conn)),
            ("unrunnable", lambda: check_unrunnable(conn, stale_after=stale_after)),
        ]
        for name, check in needs_schema:
            if schema.status == OK:
                checks.append(_guard(name, check))
            else:
                checks.append(Check(name, SKIPPED, "needs the pgworker schema at head"))
    return checks


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised is a warning: something kept it from looking."""
    try:
        return check()
    except (psycopg.Error, PgworkerError) as exc:
        detail = describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
        return Check(
            name,
            WARNING,
            f"could not check: {detail}",
            "run the doctor as the schema owner, or as a member of pg_monitor",
        )


def check_connection(conn: Connection) -> Check:
    """Which server, database and role the other checks looked at."""
    version, database, user = conn.execute(q.SERVER_IDENTITY).fetchone() or ("?", "?", "?")
    return Check("connection", OK, f"PostgreSQL {version}, database {database}, role {user}")


def check_schema(conn: Connection) -> Check:
    """The schema is at the revision this pgworker runs against."""
    revision = current_revision(conn)
    if revision == SCHEMA_REVISION:
        return Check("schema", OK, f"at head ({revision})")
    if revision is None:
        return Check("schema", WARNING, "the pgworker schema is not installed", "pgworker migrate")
    if revision < SCHEMA_REVISION:
        return Check(
            "schema",
            WARNING,
            f"at {revision}, this pgworker needs {SCHEMA_REVISION}: workers refuse to start",
            "pgworker migrate",
        )
    return Check(
        "schema",
        WARNING,
        f"at {revision}, newer than this pgworker ({SCHEMA_REVISION})",
        "upgrade pgworker where this doctor and the workers run",
    )


def check_listen(conn: Connection, dsn: str, *, timeout: float) -> Check:
    """A NOTIFY sent on one connection reaches a LISTEN on another, as workers need."""
    token = uuid.uuid4().hex
    with connect(dsn, application_name="pgworker:doctor") as listener:
        listener.execute(q.DOCTOR_LISTEN)
        started = time.monotonic()
        conn.execute(q.DOCTOR_NOTIFY, {"token": token})
        deadline = started + timeout
        while (left := deadline - time.monotonic()) > 0:
            for note in listener.notifies(timeout=left, stop_after=1):
                if note.payload == token:
                    took = format_duration(time.monotonic() - started)
                    return Check("listen", OK, f"a NOTIFY came back through LISTEN in {took}")
    return Check(
        "listen",
        WARNING,
        f"a NOTIFY never reached a LISTEN on another connection within {timeout:g} s:"
        " something between here and PostgreSQL (a transaction-mode pooler such as PgBouncer)"
        " drops notifications, so idle workers wake only when they poll",
        "connect workers directly or through a session-mode pool, or run them with --no-listen"
        " (polling every --poll-interval)",
    )


def check_xmin(conn: Connection, *, max_age: float) -> Check:
    """Nothing has held back the xmin horizon (so vacuum) for longer than `max_age` s."""
    rows = conn.execute(q.XMIN_HOLDERS).fetchall()
    problems = []
    for kind, holder, detail, state, seconds, xids in rows:
        if kind == "replication slot":
            if state == "inactive":
                problems.append((kind, holder, detail, state, seconds, xids))
        elif seconds is not None and seconds >= max_age:
            problems.append((kind, holder, detail, state, seconds, xids))
    if not problems:
        if not rows:
            return Check("xmin", OK, "no transaction or replication slot holds back vacuum")
        kind, holder, detail, state, seconds, xids = rows[0]
        age = format_duration(seconds) if seconds is not None else f"{xids:,} transactions"
        return Check("xmin", OK, f"oldest snapshot: {kind} {holder} ({detail}), {age} old")
    kind, holder, detail, state, seconds, xids = problems[0]
    age = f"for {format_duration(seconds)}, " if seconds is not None else ""
    more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
    reason = (
        f"{kind} {holder} ({detail}, {state}) has held back vacuum {age}{xids:,} transactions"
        f" old: dead jobs rows pile up in front of the claim index{more}"
    )
    if kind == "replication slot":
        fix = f"drop the unused slot: SELECT pg_drop_replication_slot('{holder}')"
    elif kind == "prepared transaction":
        fix = f"finish it: COMMIT PREPARED '{holder}' (or ROLLBACK PREPARED)"
    else:
        pid = holder.removeprefix("pid ")
        fix = (
            f"end that transaction (SELECT pg_terminate_backend({pid})), and set"
            " idle_in_transaction_session_timeout so it cannot happen again"
        )
    return Check("xmin", WARNING, reason, fix)


def check_vacuum(conn: Connection) -> Check:
    """Autovacuum runs on pgworker.jobs and dead row versions do not pile up."""
    row = conn.execute(q.JOBS_TABLE_STATS).fetchone()
    if row is None:
        return Check("vacuum", WARNING, "no statistics for pgworker.jobs", "ANALYZE pgworker.jobs")
    live, dead, since_auto, since_any, server_autovacuum, table_autovacuum = row
    last = f"last autovacuum {format_duration(since_auto)} ago" if since_auto is not None else (
        "never autovacuumed"
    )  # fmt: skip
    state = f"{dead:,} dead and {live:,} live row versions, {last}"
    if not server_autovacuum:
        return Check(
            "vacuum",
            WARNING,
            f"autovacuum is off on this server ({state}): nothing removes dead jobs rows",
            "set autovacuum = on (postgresql.conf or ALTER SYSTEM), then SELECT pg_reload_conf()",
        )
    if not table_autovacuum:
        return Check(
            "vacuum",
            WARNING,
            f"autovacuum is off for pgworker.jobs ({state}): nothing removes dead rows",
            "ALTER TABLE pgworker.jobs RESET (autovacuum_enabled)",
        )
    if dead > DEAD_TUPLES_BASE + DEAD_TUPLES_FRACTION * live:
        vacuumed = "" if since_any is None else f" (any vacuum: {format_duration(since_any)} ago)"
        return Check(
            "vacuum",
            WARNING,
            f"{state}{vacuumed}: vacuum is not keeping up, and each claim reads the dead rows",
            "look at the xmin check first; then VACUUM (VERBOSE) pgworker.jobs shows what it"
            " cannot remove",
        )
    return Check("vacuum", OK, state)


def check_notify_queue(conn: Connection) -> Check:
    """The server's notification queue is nearly empty (NOTIFY fails once it is full)."""
    row = conn.execute(q.NOTIFICATION_QUEUE_USAGE).fetchone()
    usage = float(row[0]) if row else 0.0
    if usage >= NOTIFY_QUEUE_WARNING:
        return Check(
            "notify_queue",
            WARNING,
            f"the notification queue is {usage:.0%} full: a session LISTENs but does not read"
            " (a long transaction); at 100 % every insert of a job fails",
            "find the listening session that is idle in transaction in pg_stat_activity and end it",
        )
    return Check("notify_queue", OK, f"the notification queue is {usage:.1%} full")


def check_claim_plan(conn: Connection) -> Check:
    """The claim statement walks jobs_claim_idx, so its cost never depends on the backlog."""
    from pgworker.worker import claim_statements

    row = conn.execute(q.CLAIM_INDEX_VALID).fetchone()
    if row is None:
        return Check(
            "claim_plan",
            WARNING,
            "the index jobs_claim_idx is missing: every claim scans the jobs table",
            "CREATE INDEX CONCURRENTLY jobs_claim_idx ON pgworker.jobs"
            " (queue, priority, run_after, id) WHERE status = 'pending'",
        )
    if not row[0]:
        return Check(
            "claim_plan",
            WARNING,
            "the index jobs_claim_idx is invalid (a failed concurrent build)",
            "REINDEX INDEX CONCURRENTLY pgworker.jobs_claim_idx",
        )
    busiest = conn.execute(q.BUSIEST_QUEUE).fetchone()
    queue = busiest[0] if busiest else "default"
    statement = claim_statements(queries.CLAIM_JOBS_TEMPLATE)[PLAN_CLAIM_SIZE]
    plan_row = conn.execute(
        q.EXPLAIN + statement, {"queue": queue, "worker_id": str(uuid.uuid4())}
    ).fetchone()
    plan = json.dumps(plan_row[0] if plan_row else None)
    if '"jobs_claim_idx"' in plan:
        return Check("claim_plan", OK, f"the claim of queue '{queue}' walks jobs_claim_idx")
    counted = conn.execute(q.PENDING_UP_TO, {"cap": PLAN_MATTERS_FROM}).fetchone()
    pending = int(counted[0]) if counted else 0
    if pending < PLAN_MATTERS_FROM:
        return Check(
            "claim_plan",
            OK,
            f"the claim of queue '{queue}' scans the table, as cheap as the index with"
            f" {pending:,} pending jobs",
        )
    return Check(
        "claim_plan",
        WARNING,
        f"the claim of queue '{queue}' does not use jobs_claim_idx with {pending:,}+ pending"
        " jobs: each claim reads the whole backlog",
        "ANALYZE pgworker.jobs, then EXPLAIN the claim (see `pgworker doctor` in the README)",
    )


def check_unrunnable(conn: Connection, *, stale_after: float) -> Check:
    """Every pending job has a live worker serving its queue with its task registered."""
    found = unrunnable_jobs(conn, stale_after=stale_after)
    if not found:
        return Check("unrunnable", OK, "every pending job has a live worker able to run it")
    total = sum(item.jobs for item in found)
    parts = [
        f"{item.jobs:,} of task '{item.task}' in queue '{item.queue}'"
        + (" (no worker has the task)" if item.queue_served else " (no worker serves the queue)")
        for item in found[:3]
    ]
    more = f", and {len(found) - 3} more" if len(found) > 3 else ""
    return Check(
        "unrunnable",
        WARNING,
        f"{total:,} pending jobs no live worker can run: {', '.join(parts)}{more}",
        "start workers serving those queues (pgworker work --queues ...) with an --app that"
        " registers those tasks; `pgworker jobs why ID` explains one job",
    )
