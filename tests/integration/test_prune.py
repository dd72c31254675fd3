"""Retention: the Pruner in bounded batches, one pruner at a time, under concurrent workers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from pgworker import Worker, WorkerConfig, admin, queries
from pgworker.config import Retention
from pgworker.maintenance import Pruner

from apps.tasks import registry
from support import count_jobs, wait_until

Conn = psycopg.Connection[Any]

LOCK = "SELECT pg_advisory_lock(hashtext('pgworker.prune'))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext('pgworker.prune'))"


def _finished(conn: Conn, count: int, status: str = "succeeded", age: str = "2 days") -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, status, attempts, finished_at)"
        " SELECT 'noop', %s, 1, now() - %s::interval FROM generate_series(1, %s)",
        (status, age, count),
    )


def _old(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pgworker.jobs WHERE finished_at < now() - interval '1 hour'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_run_once_deletes_past_retention_in_batches(conn: Conn) -> None:
    _finished(conn, 25)
    _finished(conn, 5, age="1 minute")
    _finished(conn, 4, status="failed", age="8 days")
    _finished(conn, 3, status="failed", age="2 days")
    _finished(conn, 2, status="cancelled", age="8 days")
    pruner = Pruner(retention=Retention(), batch=10)
    assert pruner.run_once(conn) == (25 + 4 + 2, True)
    rows = conn.execute("SELECT status, count(*) FROM pgworker.jobs GROUP BY 1 ORDER BY 1")
    assert rows.fetchall() == [("failed", 3), ("succeeded", 5)]
    assert pruner.run_once(conn) == (0, True)


def test_run_once_gives_the_thread_back_when_its_budget_is_spent(conn: Conn) -> None:
    _finished(conn, 25)
    pruner = Pruner(retention=Retention(), batch=10)
    assert pruner.run_once(conn, budget=0) == (10, False)
    assert pruner.run_once(conn) == (15, True)


def test_pending_and_processing_jobs_are_never_pruned(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, status, finished_at, run_after)"
        " VALUES ('a', 'pending', now() - interval '9 days', now() - interval '9 days'),"
        " ('a', 'processing', now() - interval '9 days', now())"
    )
    assert Pruner(retention=Retention.parse("0")).run_once(conn) == (0, True)
    assert count_jobs(conn) == 2


def test_one_pruner_at_a_time(dsn: str, conn: Conn) -> None:
    _finished(conn, 30)
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute(LOCK)  # another pruner's turn
        assert Pruner(retention=Retention(), batch=10).run_once(conn) == (0, True)
        assert count_jobs(conn) == 30

        # `pgworker prune` waits for the other pruner instead of skipping.
        result: dict[str, int] = {}
        by_hand = threading.Thread(target=lambda: result.update(_prune_by_hand(dsn)))
        by_hand.start()
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                == (1,)
            ),
            message="pgworker prune waiting for the pruners' lock",
        )
        assert count_jobs(conn) == 30
        other.execute(UNLOCK)
        by_hand.join(timeout=30)
    assert result == {"succeeded": 30, "failed": 0, "cancelled": 0}
    assert count_jobs(conn) == 0


def _prune_by_hand(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return admin.prune_jobs(conn, batch=10)


def _worker(dsn: str, **config: Any) -> Worker:
    settings: dict[str, Any] = {
        "concurrency": 2, "poll_interval": 0.05, "heartbeat_interval": 0.2, "stale_after": 5,
        "shutdown_timeout": 5, "retention": Retention.parse("1h"), "prune_interval": 0.05,
    }  # fmt: skip
    settings.update(config)
    return Worker(registry, dsn, WorkerConfig(**settings))


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """Every warning pgworker logs during the test, as a function returning their messages."""
    caplog.set_level(logging.WARNING, logger="pgworker")
    return lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_concurrent_workers_prune_without_deadlocks(
    dsn: str, conn: Conn, warnings_logged: Callable[[], list[str]]
) -> None:
    _finished(conn, 2500)
    _finished(conn, 700, status="failed", age="3 hours")
    _finished(conn, 300, status="cancelled", age="3 hours")
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'noop' FROM generate_series(1, 300)")
    workers = [_worker(dsn) for _ in range(3)]
    with ExitStack() as stack:
        for worker in workers:
            worker.start()
            stack.callback(worker.stop, 20)
        by_hand: dict[str, int] = {}
        thread = threading.Thread(target=lambda: by_hand.update(_prune_by_hand(dsn)))
        thread.start()
        thread.join(timeout=60)
        wait_until(lambda: _old(conn) == 0, timeout=60, message="old jobs pruned")
        wait_until(lambda: count_jobs(conn, "succeeded") == 300, message="new jobs succeeded")
    assert [w.exit_code for w in workers] == [0, 0, 0]
    pruned = sum(w.maintenance.pruned_total for w in workers) + sum(by_hand.values())
    assert pruned == 3500  # each old job deleted once, by someone
    assert count_jobs(conn) == 300  # the new ones stay for their retention
    assert warnings_logged() == []


def test_the_table_does_not_grow_under_steady_load(dsn: str, conn: Conn) -> None:
    worker = _worker(dsn, retention=Retention.parse("0"))
    worker.start()
    try:
        for _ in range(3):
            conn.execute(
                "INSERT INTO pgworker.jobs (task) SELECT 'noop' FROM generate_series(1, 200)"
            )
            wait_until(lambda: count_jobs(conn) == 0, message="jobs run and pruned")
    finally:
        assert worker.stop(timeout=20) == 0
    assert worker.maintenance.pruned_total == 600


def test_a_failing_prune_leaves_heartbeats_alone(
    dsn: str,
    conn: Conn,
    monkeypatch: pytest.MonkeyPatch,
    warnings_logged: Callable[[], list[str]],
) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> int:
        raise psycopg.errors.InsufficientPrivilege("permission denied for table jobs")

    monkeypatch.setattr("pgworker.maintenance.prune_batch", refused)
    worker = _worker(dsn)
    worker.start()
    try:
        wait_until(
            lambda: any("prune failed" in m for m in warnings_logged()),
            message="the prune failure logged",
        )
        beats = worker.heartbeat.last_ok
        wait_until(lambda: worker.heartbeat.last_ok != beats, message="another heartbeat")
        conn.execute("INSERT INTO pgworker.jobs (task) VALUES ('noop')")
        wait_until(lambda: count_jobs(conn, "succeeded") == 1, message="a job run")
    finally:
        assert worker.stop(timeout=20) == 0
    assert worker.heartbeat.healthy_since is not None
    messages = warnings_logged()
    assert sum("prune failed" in m for m in messages) == 1  # rate-limited
    assert not [m for m in messages if "heartbeat" in m]


def test_a_prune_batch_reads_indexes_only(conn: Conn) -> None:
    _finished(conn, 20_000)
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'noop' FROM generate_series(1, 5000)")
    conn.execute("ANALYZE pgworker.jobs")
    with conn.transaction():
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN " + queries.PRUNE_JOBS,
                {"status": "succeeded", "older_than": 3600.0, "batch": 1000},
                prepare=False,
            )
        )
    assert "Index Scan using jobs_prune_idx" in plan, plan
    assert "Index Scan using jobs_pkey" in plan, plan
    assert "Seq Scan" not in plan, plan
