"""Handlers for the worker tests. Each execution can be recorded in a table of the test's
database, on the handler's own connection, so tests count runs exactly."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg

from pgworker import JobContext, PermanentError, RetryLater, RetryPolicy, TaskRegistry

registry = TaskRegistry()

EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS executions (
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    worker_id text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (job_id, attempt)
)
"""

_local = threading.local()


def _conn() -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        dsn = os.environ.get("RECORD_DSN") or os.environ["PGWORKER_DSN"]
        conn = psycopg.connect(dsn, autocommit=True)
        _local.conn = conn
    return conn


def record(ctx: JobContext) -> None:
    """Insert (job_id, attempt, pid, worker_id) into executions; a duplicate raises."""
    _conn().execute(
        "INSERT INTO executions (job_id, attempt, pid, worker_id) VALUES (%s, %s, %s, %s)",
        (ctx.job_id, ctx.attempt, os.getpid(), ctx.worker_id),
    )


@registry.task("noop")
def noop(ctx: JobContext, payload: Any) -> None:
    pass


@registry.task("record")
def record_task(ctx: JobContext, payload: Any) -> None:
    record(ctx)
    if payload and payload.get("sleep"):
        time.sleep(payload["sleep"])


@registry.task("sleep", timeout=600)
def sleep(ctx: JobContext, payload: Any) -> None:
    """Record, then sleep payload["s"] seconds (or until cancelled)."""
    record(ctx)
    ctx.cancelled.wait(payload.get("s", 1.0))


@registry.task("flaky", max_attempts=3, retry=RetryPolicy(initial_delay=0.1, max_delay=0.2))
def flaky(ctx: JobContext, payload: Any) -> None:
    """Fails until attempt payload["succeed_on"]."""
    record(ctx)
    if ctx.attempt < payload.get("succeed_on", 2):
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")


@registry.task("always_fails", max_attempts=3, retry=RetryPolicy(initial_delay=0.05))
def always_fails(ctx: JobContext, payload: Any) -> None:
    record(ctx)
    raise RuntimeError("always fails")


@registry.task("permanent")
def permanent(ctx: JobContext, payload: Any) -> None:
    raise PermanentError("this job can never succeed")


@registry.task("later")
def later(ctx: JobContext, payload: Any) -> None:
    raise RetryLater(payload.get("delay", 60))


@registry.task("crash", max_attempts=2)
def crash(ctx: JobContext, payload: Any) -> None:
    """Kill the whole worker process mid-job."""
    record(ctx)
    os._exit(7)


@registry.task("hang", timeout=1.0, max_attempts=2, retry=RetryPolicy(initial_delay=0.1))
def hang(ctx: JobContext, payload: Any) -> None:
    """Ignore cancellation and block far past the timeout."""
    record(ctx)
    time.sleep(payload.get("s", 3600))


@registry.task("huge_error", max_attempts=1)
def huge_error(ctx: JobContext, payload: Any) -> None:
    raise ValueError("x" * 10_000_000)


@registry.task("exits")
def exits(ctx: JobContext, payload: Any) -> None:
    raise SystemExit(3)


@registry.task("leaky", max_attempts=1)
def leaky(ctx: JobContext, payload: Any) -> None:
    """Fail with a message that quotes a secret from the payload (for the redaction hook)."""
    raise RuntimeError(f"upstream refused token={payload.get('token')}")
