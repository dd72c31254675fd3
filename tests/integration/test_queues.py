"""Queues and status as functions, and pause honoured by running in-process workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from pgworker import Worker, WorkerConfig
from pgworker.errors import NotFound
from pgworker.queues import list_queues, pause_queue, read_status, resume_queue

from apps.tasks import registry
from support import count_jobs, make_job, make_worker, wait_until

Conn = psycopg.Connection[Any]


def test_list_queues_counts_each_state(conn: Conn) -> None:
    make_worker(conn, str(uuid.uuid4()), queues=("default", "mail"), busy=2, concurrency=4)
    make_worker(conn, str(uuid.uuid4()), queues=("mail",), heartbeat_age="10 minutes")  # lost
    make_job(conn, "a", run_after="-90 seconds")
    make_job(conn, "a")
    make_job(conn, "a", run_after="1 hour")
    make_job(conn, "a", status="processing", attempts=1)
    make_job(conn, "a", status="failed", finished_at="-2 hours")
    make_job(conn, "a", status="succeeded", finished_at="-10 seconds")
    make_job(conn, "a", queue="reports", status="failed", finished_at="-5 minutes")
    conn.execute("INSERT INTO pgworker.queues (name, paused) VALUES ('idle', true)")

    queues = {q.name: q for q in list_queues(conn)}
    assert sorted(queues) == ["default", "idle", "mail", "reports"]
    default = queues["default"]
    assert (default.pending, default.scheduled, default.processing, default.failed) == (2, 1, 1, 1)
    assert default.oldest_due_age is not None
    assert default.oldest_due_age >= 90
    assert (default.workers, default.busy, default.slots) == (1, 2, 4)
    assert (default.finished_last_minute, default.failed_last_hour) == (1, 0)
    assert not default.paused
    assert queues["idle"].paused
    assert queues["mail"].workers == 1  # the lost worker does not count
    assert (queues["reports"].failed, queues["reports"].failed_last_hour) == (1, 1)
    assert queues["reports"].oldest_due_age is None


def test_pause_and_resume_keep_state_in_the_database(dsn: str, conn: Conn) -> None:
    make_job(conn, "a", queue="mail")
    assert pause_queue(conn, "mail") is True
    assert pause_queue(conn, "mail") is False
    assert conn.execute("SELECT paused FROM pgworker.queues WHERE name = 'mail'").fetchone() == (
        True,
    )
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgworker_jobs")
        assert resume_queue(conn, "mail") is True
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["mail"]
    assert resume_queue(conn, "mail") is False
    assert pause_queue(conn, "mail") is True  # again, after a resume


def test_unknown_queues_are_refused_unless_forced(conn: Conn) -> None:
    with pytest.raises(NotFound, match="unknown queue 'emails'"):
        pause_queue(conn, "emails")
    with pytest.raises(NotFound, match="unknown queue 'emails'"):
        resume_queue(conn, "emails")
    assert pause_queue(conn, "emails", force=True) is True
    assert resume_queue(conn, "emails") is True
    with pytest.raises(ValueError, match="invalid queue name"):
        pause_queue(conn, "bad queue", force=True)


def test_a_queue_with_only_history_or_a_worker_is_known(conn: Conn) -> None:
    make_job(conn, "a", queue="old", status="succeeded", finished_at="-1 day")
    make_worker(conn, str(uuid.uuid4()), queues=("served",))
    assert pause_queue(conn, "old") is True
    assert pause_queue(conn, "served") is True


def test_status_shows_workers_queues_failures_and_unrunnable_jobs(conn: Conn) -> None:
    live = make_worker(conn, str(uuid.uuid4()), queues=("default",), tasks=("a",), busy=1)
    lost = make_worker(conn, str(uuid.uuid4()), queues=("mail",), tasks=("m",),
                       heartbeat_age="1 hour")  # fmt: skip
    make_job(conn, "a")
    make_job(conn, "b", run_after="1 hour")  # default is served, task b is not
    make_job(conn, "m", queue="mail")
    make_job(conn, "m", queue="mail")
    for _ in range(3):
        make_job(conn, "a", status="succeeded", finished_at="-5 seconds")
    make_job(conn, "a", status="failed", finished_at="-10 minutes")
    make_job(conn, "a", status="failed", finished_at="-2 hours")

    status = read_status(conn)
    # By host, then start: the lost worker started an hour ago.
    assert [(w.id, w.alive) for w in status.workers] == [(lost, False), (live, True)]
    default = next(q for q in status.queues if q.name == "default")
    assert (default.pending, default.scheduled, default.finished_last_minute) == (1, 1, 3)
    assert status.failed_last_hour == 1
    unrunnable = {(u.queue, u.task): (u.jobs, u.queue_served) for u in status.unrunnable}
    assert unrunnable == {("mail", "m"): (2, False), ("default", "b"): (1, True)}


def _noop_worker(dsn: str, queues: tuple[str, ...]) -> Worker:
    config = WorkerConfig(
        queues=queues, concurrency=2, poll_interval=0.05, heartbeat_interval=0.5,
        stale_after=5, shutdown_timeout=5, prune=False,
    )  # fmt: skip
    return Worker(registry, dsn, config)


@contextmanager
def _running(worker: Worker) -> Iterator[Worker]:
    worker.start()
    try:
        yield worker
    finally:
        assert worker.stop(timeout=20) == 0


def _polls(worker: Worker, count: int = 3) -> None:
    """Wait until the worker has run `count` more claims: each saw the queue paused."""
    start = worker.claims
    wait_until(lambda: worker.claims >= start + count, message=f"{count} claims")


def test_a_running_worker_honours_pause_and_resume(dsn: str, conn: Conn) -> None:
    for _ in range(5):
        make_job(conn, "noop")
    pause_queue(conn, "default")
    with _running(_noop_worker(dsn, ("default",))) as worker:
        _polls(worker)
        assert count_jobs(conn, "pending") == 5
        resume_queue(conn, "default")
        wait_until(lambda: count_jobs(conn, "succeeded") == 5, message="5 jobs succeeded")

        pause_queue(conn, "default")
        for _ in range(4):
            make_job(conn, "noop")
        _polls(worker)
        assert count_jobs(conn, "pending") == 4
        resume_queue(conn, "default")
        wait_until(lambda: count_jobs(conn, "succeeded") == 9, message="9 jobs succeeded")


def test_pause_of_one_queue_leaves_the_others_running(dsn: str, conn: Conn) -> None:
    for queue in ("a", "b"):
        for _ in range(3):
            make_job(conn, "noop", queue=queue)
    pause_queue(conn, "a")
    with _running(_noop_worker(dsn, ("a", "b"))) as worker:
        wait_until(lambda: count_jobs(conn, "succeeded") == 3, message="queue b's jobs")
        _polls(worker)
        rows = conn.execute(
            "SELECT queue, status, count(*) FROM pgworker.jobs GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        assert rows == [("a", "pending", 3), ("b", "succeeded", 3)]
        resume_queue(conn, "a")
        wait_until(lambda: count_jobs(conn, "succeeded") == 6, message="queue a's jobs")


def test_a_resumed_queue_with_nothing_in_it_leaves_the_list(conn: Conn) -> None:
    pause_queue(conn, "future", force=True)
    assert [q.name for q in list_queues(conn)] == ["future"]
    resume_queue(conn, "future")
    assert list_queues(conn) == []
