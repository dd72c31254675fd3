"""The worker in process, on a real database: claims, outcomes, retries, timeouts, prefetch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from pgworker import (
    JobContext,
    PermanentError,
    RetryLater,
    RetryPolicy,
    TaskRegistry,
    Worker,
    WorkerConfig,
)

from support import count_jobs, job_row, make_job, wait_until


@contextmanager
def running(registry: TaskRegistry, dsn: str, **config: Any) -> Iterator[Worker]:
    """A worker started in a background thread, stopped (gracefully) at the end."""
    config.setdefault("poll_interval", 0.1)
    worker = Worker(registry, dsn, WorkerConfig(**config))
    worker.start()
    try:
        assert worker.started.wait(10), "worker did not start"
        yield worker
    finally:
        worker.stop(timeout=30)


def statuses(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM pgworker.jobs GROUP BY 1").fetchall())


def test_runs_jobs_with_their_payload(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    seen: list[tuple[int, Any, int]] = []

    @registry.task("echo")
    def echo(ctx: JobContext, payload: Any) -> None:
        seen.append((ctx.job_id, payload, ctx.attempt))

    ids = [make_job(conn, "echo", payload={"n": n}) for n in range(20)]
    with running(registry, dsn):
        wait_until(lambda: count_jobs(conn, "succeeded") == 20, message="20 jobs succeeded")
    assert sorted(seen) == [(i, {"n": n}, 1) for n, i in enumerate(ids)]
    job = job_row(conn, ids[0])
    assert job["attempts"] == 1
    assert job["finished_at"] >= job["started_at"]
    assert job["worker_id"] is not None


def test_priority_then_run_after_decide_the_order(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    order: list[str] = []
    registry.task("mark")(lambda ctx, payload: order.append(payload))
    make_job(conn, "mark", payload='"late"', priority=5)
    make_job(conn, "mark", payload='"second"', priority=0, run_after="-1 minute")
    make_job(conn, "mark", payload='"first"', priority=-3)
    make_job(conn, "mark", payload='"third"', priority=0)
    future = make_job(conn, "mark", payload='"future"', run_after="1 hour")
    with running(registry, dsn, concurrency=1, prefetch=0):
        wait_until(lambda: len(order) == 4, message="4 due jobs ran")
    assert order == ["first", "second", "third", "late"]
    assert job_row(conn, future)["status"] == "pending"


def test_serves_only_its_queues(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    a = make_job(conn, "t", queue="a")
    b = make_job(conn, "t", queue="b")
    c = make_job(conn, "t", queue="c")
    with running(registry, dsn, queues=("a", "b")):
        wait_until(lambda: count_jobs(conn, "succeeded") == 2, message="queues a and b done")
    assert [job_row(conn, i)["status"] for i in (a, b, c)] == ["succeeded", "succeeded", "pending"]


def test_default_queues_are_the_tasks_queues(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("mail", queue="mail")(lambda ctx, payload: None)
    registry.task("plain")(lambda ctx, payload: None)
    make_job(conn, "mail", queue="mail")
    make_job(conn, "plain")
    with running(registry, dsn) as worker:
        assert worker.queues == ("default", "mail")
        wait_until(lambda: count_jobs(conn, "succeeded") == 2, message="both queues served")


def test_concurrency_is_never_exceeded(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    @registry.task("busy")
    def busy(ctx: JobContext, payload: Any) -> None:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.002)
        with lock:
            state["now"] -= 1

    for _ in range(300):
        make_job(conn, "busy")
    with running(registry, dsn, concurrency=4):
        wait_until(lambda: count_jobs(conn, "succeeded") == 300, timeout=30, message="all done")
    assert state["max"] == 4


def test_failures_retry_until_attempts_are_used_up(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()

    @registry.task("fails", max_attempts=3, retry=RetryPolicy(initial_delay=0.05))
    def fails(ctx: JobContext, payload: Any) -> None:
        raise RuntimeError(f"boom {ctx.attempt}")

    job_id = make_job(conn, "fails")
    with running(registry, dsn):
        wait_until(lambda: job_row(conn, job_id)["status"] == "failed", message="job failed")
    job = job_row(conn, job_id)
    assert job["attempts"] == 3
    assert job["last_error"].startswith("RuntimeError: boom 3\nTraceback")
    assert [e["attempt"] for e in job["errors"]] == [1, 2, 3]
    assert [e["error"] for e in job["errors"]] == [f"RuntimeError: boom {n}" for n in (1, 2, 3)]
    assert job["finished_at"] is not None


def test_a_flaky_job_succeeds_on_retry(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()

    @registry.task("flaky", retry=RetryPolicy(initial_delay=0.05))
    def flaky(ctx: JobContext, payload: Any) -> None:
        if ctx.attempt < 3:
            raise ConnectionError("upstream down")

    job_id = make_job(conn, "flaky")
    with running(registry, dsn):
        wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", message="succeeded")
    job = job_row(conn, job_id)
    assert job["attempts"] == 3
    assert len(job["errors"]) == 2


def test_retry_delays_follow_the_policy_within_the_jitter(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()
    policy = RetryPolicy(initial_delay=40, max_delay=100, jitter=0.25)

    @registry.task("fails", max_attempts=10, retry=policy)
    def fails(ctx: JobContext, payload: Any) -> None:
        raise RuntimeError("no")

    # Jobs already tried 0, 1 and 2 times: the worker makes attempt 1, 2 and 3 of each.
    ids = [make_job(conn, "fails", attempts=n) for n in range(3)]
    with running(registry, dsn):
        wait_until(lambda: all(job_row(conn, i)["errors"] for i in ids), message="one failure each")
    for job_id, base in zip(ids, (40, 80, 100), strict=True):
        job = job_row(conn, job_id)
        failed_at = job["errors"][-1]["at"]
        delay = (job["run_after"] - _parse(failed_at)).total_seconds()
        assert base * 0.75 <= delay <= base * 1.25, (job_id, delay)
        assert job["status"] == "pending"
        assert job["worker_id"] is None


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_permanent_error_fails_at_once(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()

    @registry.task("bad")
    def bad(ctx: JobContext, payload: Any) -> None:
        raise PermanentError("invalid address")

    job_id = make_job(conn, "bad")
    with running(registry, dsn):
        wait_until(lambda: job_row(conn, job_id)["status"] == "failed", message="failed")
    job = job_row(conn, job_id)
    assert job["attempts"] == 1
    assert job["last_error"].startswith("PermanentError: invalid address")


def test_retry_later_reschedules_without_counting_a_failure(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()

    @registry.task("later", max_attempts=4)
    def later(ctx: JobContext, payload: Any) -> None:
        raise RetryLater(120)

    job_id = make_job(conn, "later")
    with running(registry, dsn):
        wait_until(lambda: job_row(conn, job_id)["attempts"] == 1, message="claimed once")
        wait_until(lambda: job_row(conn, job_id)["status"] == "pending", message="rescheduled")
    job = job_row(conn, job_id)
    assert job["errors"] is None
    assert job["last_error"] is None
    assert job["max_attempts"] == 5  # one more attempt granted: the reschedule is free
    wait = job["run_after"] - job["started_at"]
    assert timedelta(seconds=119) <= wait <= timedelta(seconds=125)


def test_unknown_task_fails_once_without_retry(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("known")(lambda ctx, payload: None)
    job_id = make_job(conn, "not_registered_here", max_attempts=5)
    with running(registry, dsn):
        wait_until(lambda: job_row(conn, job_id)["status"] == "failed", message="failed")
    job = job_row(conn, job_id)
    assert job["attempts"] == 1
    assert job["last_error"] == "unknown task 'not_registered_here'"


def test_an_undecodable_payload_fails_alone(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    for n in range(99):
        make_job(conn, "t", payload={"n": n})
    # Valid jsonb, but Python refuses integers of more than 4,300 digits.
    bad = make_job(conn, "t", payload='{"n": 1' + "0" * 5000 + "}")
    with running(registry, dsn):
        wait_until(lambda: count_jobs(conn, "pending") == 0, message="all settled")
        wait_until(lambda: count_jobs(conn, "processing") == 0, message="all written")
    assert statuses(conn) == {"succeeded": 99, "failed": 1}
    # (not job_row: this test's own psycopg would fail to decode that payload too)
    row = conn.execute(
        "SELECT status, attempts, last_error FROM pgworker.jobs WHERE id = %s", (bad,)
    ).fetchone()
    assert row is not None
    assert row[:2] == ("failed", 1)
    assert row[2].startswith("undecodable payload: ValueError")


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt()])
def test_system_exit_in_a_handler_fails_the_job_not_the_worker(
    dsn: str, conn: psycopg.Connection[Any], exc: BaseException
) -> None:
    registry = TaskRegistry()

    @registry.task("exits", max_attempts=1)
    def exits(ctx: JobContext, payload: Any) -> None:
        raise exc

    registry.task("fine")(lambda ctx, payload: None)
    bad = make_job(conn, "exits")
    with running(registry, dsn, concurrency=1):
        wait_until(lambda: job_row(conn, bad)["status"] == "failed", message="failed")
        good = make_job(conn, "fine")
        wait_until(lambda: job_row(conn, good)["status"] == "succeeded", message="still works")
    assert job_row(conn, bad)["last_error"].startswith(type(exc).__name__)


def test_a_timed_out_handler_keeps_its_slot(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    release = threading.Event()
    started: list[int] = []

    @registry.task("block", timeout=0.3, retry=RetryPolicy(initial_delay=300))
    def block(ctx: JobContext, payload: Any) -> None:
        started.append(ctx.job_id)
        release.wait(30)  # ignores ctx.cancelled: Python cannot kill it

    ids = [make_job(conn, "block") for _ in range(3)]
    try:
        with running(registry, dsn, concurrency=2) as worker:
            wait_until(
                lambda: sum("timed out after 0.3 s" in (job_row(conn, i)["last_error"] or "")
                            for i in ids) == 2,
                message="two attempts timed out",
            )  # fmt: skip
            # Both threads are still inside their handlers: nothing else may start.
            assert worker.executor.busy() == 2
            assert worker.executor.claim_size() == 0
            third = next(i for i in ids if i not in started)
            assert job_row(conn, third)["attempts"] == 0
            assert len(started) == 2
            release.set()
            wait_until(lambda: len(started) == 3, message="the third job starts once freed")
    finally:
        release.set()
    timed_out = [job_row(conn, i) for i in started[:2]]
    assert all(j["status"] == "pending" and j["attempts"] == 1 for j in timed_out)


def test_listen_wakes_an_idle_worker_long_before_the_poll(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    with running(registry, dsn, poll_interval=60) as worker:
        assert worker.notifier is not None
        assert worker.notifier.listening.wait(10)
        job_id = make_job(conn, "t")
        wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", timeout=5,
                   message="woken by NOTIFY, not by the 60 s poll")  # fmt: skip


def test_without_listen_polling_finds_jobs(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    with running(registry, dsn, listen=False, poll_interval=0.1) as worker:
        assert worker.notifier is None
        job_id = make_job(conn, "t")
        wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", message="polled")


def test_a_busy_worker_does_not_hoard_slow_jobs(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    ran_by: dict[int, str] = {}

    @registry.task("slow")
    def slow(ctx: JobContext, payload: Any) -> None:
        ran_by[ctx.job_id] = ctx.worker_id
        time.sleep(0.3)

    for _ in range(8):
        make_job(conn, "slow")
    peak = 0
    with running(registry, dsn, concurrency=1) as first:
        wait_until(lambda: ran_by, message="first worker started a job")
        with running(registry, dsn, concurrency=1) as second:
            deadline = time.monotonic() + 30
            while count_jobs(conn, "pending") or count_jobs(conn, "processing"):
                assert time.monotonic() < deadline, "jobs did not finish"
                held = conn.execute(
                    "SELECT count(*) FROM pgworker.jobs WHERE status = 'processing'"
                    " AND worker_id = %s",
                    (first.worker_id,),
                ).fetchone()
                assert held is not None
                peak = max(peak, held[0])
                time.sleep(0.02)
    assert peak <= 1, "the busy worker claimed more than it could run"
    assert set(ran_by.values()) == {first.worker_id, second.worker_id}


def test_prefetched_jobs_go_back_when_handlers_turn_slow(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()
    registry.task("fast")(lambda ctx, payload: None)
    release = threading.Event()
    slow_started: list[int] = []

    @registry.task("slow")
    def slow(ctx: JobContext, payload: Any) -> None:
        slow_started.append(ctx.job_id)
        release.wait(0.2 if len(slow_started) == 1 else 30)

    for _ in range(200):
        make_job(conn, "fast")
    try:
        with running(registry, dsn, concurrency=1, prefetch=50) as worker:
            wait_until(lambda: count_jobs(conn, "succeeded") == 200, message="fast jobs done")
            assert worker.executor.claim_size() > 1  # fast handlers: prefetch is on
            slow_ids = [make_job(conn, "slow") for _ in range(20)]
            # The first slow job takes 0.2 s; the worker must then give back what it holds.
            wait_until(lambda: len(slow_started) >= 2, message="second slow job started")
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM pgworker.jobs WHERE status = 'processing'"
                    ).fetchone()
                    == (1,)
                ),
                message="only the running job stays claimed",
            )
            given_back = [job_row(conn, i) for i in slow_ids if i not in slow_started]
            assert all(j["status"] == "pending" for j in given_back)
            release.set()
    finally:
        release.set()


def test_stop_hands_back_buffered_and_running_jobs(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    registry.task("fast")(lambda ctx, payload: None)
    release = threading.Event()

    @registry.task("block")
    def block(ctx: JobContext, payload: Any) -> None:
        release.wait(30)

    for _ in range(100):
        make_job(conn, "fast")
    try:
        config = WorkerConfig(concurrency=1, prefetch=10, poll_interval=0.1, shutdown_timeout=0.2)
        worker = Worker(registry, dsn, config)
        worker.start()
        assert worker.started.wait(10)
        wait_until(lambda: count_jobs(conn, "succeeded") == 100, message="warmed up")
        ids = [make_job(conn, "block") for _ in range(5)]
        wait_until(lambda: count_jobs(conn, "processing") == 5, message="all five claimed")
        assert worker.stop(timeout=30) == 0
    finally:
        release.set()
    jobs = [job_row(conn, i) for i in ids]
    assert all(j["status"] == "pending" and j["attempts"] == 0 for j in jobs), jobs
    assert sorted(j["last_error"] or "" for j in jobs) == [
        "",
        "",
        "",
        "",
        "interrupted by shutdown",
    ]
    assert conn.execute("SELECT count(*) FROM pgworker.workers").fetchone() == (0,)


def test_cancel_request_sets_the_event_and_ends_cancelled(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()
    saw_cancel = threading.Event()

    @registry.task("long")
    def long(ctx: JobContext, payload: Any) -> None:
        if ctx.cancelled.wait(30):
            saw_cancel.set()

    job_id = make_job(conn, "long")
    with running(registry, dsn) as worker:
        assert worker.notifier is not None
        assert worker.notifier.listening.wait(10)
        wait_until(lambda: job_row(conn, job_id)["status"] == "processing", message="running")
        conn.execute(
            "UPDATE pgworker.jobs SET cancel_requested_at = now() WHERE id = %s", (job_id,)
        )
        conn.execute("SELECT pg_notify('pgworker_cancel', %s)", (str(job_id),))
        assert saw_cancel.wait(10)
        wait_until(lambda: job_row(conn, job_id)["status"] == "cancelled", message="cancelled")


def test_the_worker_row_lives_while_the_worker_runs(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    with running(registry, dsn, concurrency=3, queues=("a", "b")) as worker:
        row = conn.execute(
            "SELECT hostname, pid, queues, tasks, concurrency FROM pgworker.workers WHERE id = %s",
            (worker.worker_id,),
        ).fetchone()
        assert row is not None
        assert (row[2], row[3], row[4]) == (["a", "b"], ["t"], 3)
        names = conn.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE application_name LIKE 'pgworker:%%'"
        ).fetchall()
        assert (f"pgworker:{worker.worker_id}",) in names
    assert conn.execute("SELECT count(*) FROM pgworker.workers").fetchone() == (0,)


def test_json_payload_types_reach_the_handler(dsn: str, conn: psycopg.Connection[Any]) -> None:
    registry = TaskRegistry()
    got: list[Any] = []
    registry.task("t")(lambda ctx, payload: got.append(payload))
    values: list[Any] = [{"a": [1, 2.5, None, True]}, [1, "x"], "text", 42, None]
    for value in values:
        make_job(conn, "t", payload=json.dumps(value))
    with running(registry, dsn, concurrency=1, prefetch=0):
        wait_until(lambda: len(got) == len(values), message="all ran")
    assert got == values
