"""Helpers shared by the test suites: factories that insert any state, and polling waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.conninfo
from psycopg import sql

T = TypeVar("T")

_JOB_COLUMNS = {
    "id", "queue", "task", "payload", "status", "priority", "attempts", "max_attempts",
    "run_after", "created_at", "started_at", "finished_at", "worker_id", "last_error",
    "errors", "dedup_key",
}  # fmt: skip


def make_job(conn: psycopg.Connection[Any], task: str = "noop", **state: Any) -> int:
    """Insert one job in exactly the given state (any column) and return its id.

    Timestamps may be given as SQL interval offsets from now(), e.g. run_after="-5 seconds".
    """
    unknown = set(state) - _JOB_COLUMNS
    if unknown:
        raise TypeError(f"unknown job columns: {sorted(unknown)}")
    state["task"] = task
    if "payload" in state and not isinstance(state["payload"], str):
        state["payload"] = json.dumps(state["payload"])
    if "errors" in state and not isinstance(state["errors"], str | type(None)):
        state["errors"] = json.dumps(state["errors"])
    columns = list(state)
    values = []
    params: list[Any] = []
    for column in columns:
        value = state[column]
        if column in {"run_after", "created_at", "started_at", "finished_at"} and isinstance(
            value, str
        ):
            values.append(sql.SQL("now() + {}::interval").format(sql.Placeholder()))
        else:
            values.append(sql.Placeholder())
        params.append(value)
    query = sql.SQL("INSERT INTO pgworker.jobs ({}) {} VALUES ({}) RETURNING id").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL("OVERRIDING SYSTEM VALUE" if "id" in state else ""),
        sql.SQL(", ").join(values),
    )
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def make_worker(
    conn: psycopg.Connection[Any],
    worker_id: str,
    *,
    queues: tuple[str, ...] = ("default",),
    tasks: tuple[str, ...] = (),
    concurrency: int = 5,
    heartbeat_age: str = "0 seconds",
    busy: int = 0,
    hostname: str = "test-host",
    pid: int = 4242,
) -> str:
    """Insert one row in pgworker.workers whose last heartbeat was `heartbeat_age` ago."""
    conn.execute(
        """
        INSERT INTO pgworker.workers
            (id, hostname, pid, queues, tasks, concurrency, busy, started_at, heartbeat_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, now() - %s::interval, now() - %s::interval)
        """,
        (worker_id, hostname, pid, list(queues), list(tasks), concurrency, busy,
         heartbeat_age, heartbeat_age),
    )  # fmt: skip
    return worker_id


def job_row(conn: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    """Every column of one job as a dict."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM pgworker.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None, f"job {job_id} does not exist"
    return row


def count_jobs(conn: psycopg.Connection[Any], status: str | None = None) -> int:
    """How many jobs, optionally in one status."""
    if status is None:
        row = conn.execute("SELECT count(*) FROM pgworker.jobs").fetchone()
    else:
        row = conn.execute(
            "SELECT count(*) FROM pgworker.jobs WHERE status = %s", (status,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


PGWORKER = [sys.executable, "-m", "pgworker"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a pgworker subprocess: no inherited DSN, no colours, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PGWORKER_DSN", "DATABASE_URL", "PGWORKER_HOME"}
        and not key.startswith("PGWORKER_")
    }
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"})
    env.update(extra)
    return env


Run = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Roles:
    """Three LOGIN roles of this test, named after the run, and DSNs that connect as them."""

    worker: str
    enqueue: str
    readonly: str
    owner_dsn: str

    def dsn(self, role: str, **params: str) -> str:
        """The test database's DSN as `role` (trust auth: no password is checked)."""
        return psycopg.conninfo.make_conninfo(self.owner_dsn, user=role, **params)

    def connect(self, role: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(role), autocommit=True)

    def grant_all(self) -> None:
        from pgworker.roles import grant

        with psycopg.connect(self.owner_dsn, autocommit=True) as owner:
            grant(
                owner,
                [("worker", self.worker), ("enqueue", self.enqueue), ("readonly", self.readonly)],
            )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `pgworker: error: ...` line a failed command printed (asserted: one line)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgworker: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample served at 127.0.0.1:port/metrics, as {(name, sorted labels): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's samples over every label set."""
    return sum(value for (sample, _), value in samples.items() if sample == name)
