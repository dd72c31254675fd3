"""Operator actions on jobs, called as functions: list, show, retry, cancel, prune by hand."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from pgworker import admin
from pgworker.config import Retention
from pgworker.errors import Conflict, NotFound

from support import count_jobs, job_row, make_job, make_worker

Conn = psycopg.Connection[Any]


def _one_of_each(conn: Conn) -> dict[str, int]:
    """One job in every state, with the timestamps a worker would have left."""
    worker = make_worker(conn, str(uuid.uuid4()))
    return {
        "pending": make_job(conn, "a"),
        "scheduled": make_job(conn, "a", run_after="1 hour"),
        "processing": make_job(
            conn, "b", status="processing", attempts=1, started_at="-2 seconds", worker_id=worker
        ),
        "succeeded": make_job(
            conn, "b", status="succeeded", attempts=1, started_at="-3 seconds",
            finished_at="-2 seconds",
        ),
        "failed": make_job(
            conn, "c", queue="mail", status="failed", attempts=3, max_attempts=3,
            finished_at="-1 minute", last_error="RuntimeError: boom\nTraceback ...",
            errors=[{"attempt": 3, "at": "2026-11-23T17:00:00Z", "error": "RuntimeError: boom"}],
        ),
        "cancelled": make_job(conn, "c", status="cancelled", finished_at="-1 minute"),
    }  # fmt: skip


def test_list_is_newest_first_and_filters(conn: Conn) -> None:
    ids = _one_of_each(conn)
    listed = admin.list_jobs(conn)
    assert [job.id for job in listed.jobs] == sorted(ids.values(), reverse=True)
    assert {job.status for job in listed.jobs} == {
        "pending", "processing", "succeeded", "failed", "cancelled",
    }  # fmt: skip

    failed = admin.list_jobs(conn, statuses=["failed", "cancelled"])
    assert [job.id for job in failed.jobs] == [ids["cancelled"], ids["failed"]]
    assert [job.id for job in admin.list_jobs(conn, queue="mail").jobs] == [ids["failed"]]
    by_task = admin.list_jobs(conn, task="a", statuses=["pending"])
    assert [job.id for job in by_task.jobs] == [ids["scheduled"], ids["pending"]]
    assert len(admin.list_jobs(conn, limit=2).jobs) == 2
    assert admin.list_jobs(conn, task="nobody").jobs == []


def test_list_of_an_unknown_queue_says_so(conn: Conn) -> None:
    make_job(conn, "a")
    with pytest.raises(NotFound, match="unknown queue 'nope'"):
        admin.list_jobs(conn, queue="nope")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"statuses": ["done"]}, "JobStatus"),
        ({"task": "bad name"}, "invalid task name"),
        ({"limit": 0}, "limit"),
    ],
)
def test_list_refuses_bad_filters(conn: Conn, kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        admin.list_jobs(conn, **kwargs)


def test_show_has_every_column_the_error_history_and_the_worker(conn: Conn) -> None:
    ids = _one_of_each(conn)
    failed = admin.show_job(conn, ids["failed"])
    assert failed.job.last_error is not None
    assert failed.job.last_error.startswith("RuntimeError: boom")
    assert failed.errors == [
        {"attempt": 3, "at": "2026-11-23T17:00:00Z", "error": "RuntimeError: boom"}
    ]
    assert failed.payload == {}
    assert (failed.job.attempts, failed.job.max_attempts, failed.job.queue) == (3, 3, "mail")

    running = admin.show_job(conn, ids["processing"])
    assert running.worker_hostname == "test-host"
    assert running.worker_pid == 4242
    assert running.worker_heartbeat_at is not None
    assert running.job.started_at is not None
    assert running.as_of > running.job.started_at


def test_show_an_unknown_job(conn: Conn) -> None:
    with pytest.raises(NotFound, match="no job with id 999"):
        admin.show_job(conn, 999)


def test_retry_resets_failed_and_cancelled_jobs_and_wakes_workers(dsn: str, conn: Conn) -> None:
    ids = _one_of_each(conn)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgworker_jobs")
        result = admin.retry_jobs(conn, [ids["failed"], ids["cancelled"]])
        assert result.retried == sorted([ids["failed"], ids["cancelled"]])
        woken = {n.payload for n in listener.notifies(timeout=5, stop_after=2)}
    assert woken == {"mail", "default"}
    for name in ("failed", "cancelled"):
        job = job_row(conn, ids[name])
        assert (job["status"], job["attempts"], job["finished_at"], job["worker_id"]) == (
            "pending", 0, None, None,
        )  # fmt: skip
        assert job["run_after"] <= conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    # The history stays for the operator.
    assert job_row(conn, ids["failed"])["errors"][0]["error"] == "RuntimeError: boom"


@pytest.mark.parametrize("state", ["pending", "scheduled", "processing", "succeeded"])
def test_retry_refuses_a_job_that_is_not_failed_or_cancelled(conn: Conn, state: str) -> None:
    ids = _one_of_each(conn)
    before = job_row(conn, ids["failed"])
    with pytest.raises(Conflict, match="only failed or cancelled jobs can be retried"):
        admin.retry_jobs(conn, [ids["failed"], ids[state]])
    assert job_row(conn, ids["failed"]) == before  # all or nothing


def test_retry_an_unknown_job_changes_nothing(conn: Conn) -> None:
    failed = make_job(conn, "c", status="failed", finished_at="-1 minute")
    with pytest.raises(NotFound, match="no jobs with ids 998, 999"):
        admin.retry_jobs(conn, [failed, 998, 999])
    assert job_row(conn, failed)["status"] == "failed"


def test_retry_refuses_a_dedup_key_a_live_job_holds(conn: Conn) -> None:
    old = make_job(conn, "c", status="failed", dedup_key="report-7", finished_at="-1 minute")
    live = make_job(conn, "c", dedup_key="report-7")
    with pytest.raises(Conflict, match=f"dedup key 'report-7', which live job {live} holds"):
        admin.retry_jobs(conn, [old])
    assert job_row(conn, old)["status"] == "failed"


def test_retry_refuses_two_jobs_with_one_dedup_key(conn: Conn) -> None:
    first = make_job(conn, "c", status="failed", dedup_key="k", finished_at="-1 minute")
    second = make_job(conn, "c", status="cancelled", dedup_key="k", finished_at="-1 minute")
    with pytest.raises(Conflict, match=f"jobs {first} and {second} have the same dedup key"):
        admin.retry_jobs(conn, [first, second])
    assert count_jobs(conn, "pending") == 0


def test_retry_matching_filters_and_skips_dedup_collisions(conn: Conn) -> None:
    a1 = make_job(conn, "a", status="failed", finished_at="-1 minute")
    a2 = make_job(conn, "a", queue="mail", status="failed", finished_at="-1 minute")
    b1 = make_job(conn, "b", status="failed", finished_at="-1 minute")
    cancelled = make_job(conn, "a", status="cancelled", finished_at="-1 minute")
    held = make_job(conn, "a", status="failed", dedup_key="held", finished_at="-1 minute")
    holder = make_job(conn, "a", dedup_key="held")
    older = make_job(conn, "a", status="failed", dedup_key="twice", finished_at="-2 minutes")
    newer = make_job(conn, "a", status="failed", dedup_key="twice", finished_at="-1 minute")

    only_mail = admin.retry_matching(conn, queue="mail")
    assert only_mail.retried == [a2]
    only_b = admin.retry_matching(conn, task="b")
    assert only_b.retried == [b1]
    rest = admin.retry_matching(conn, batch=2)  # batches: the newest job with a key wins
    assert rest.retried == [a1, newer]
    assert rest.skipped == [
        (held, f"live job {holder} holds its dedup key 'held'"),
        (older, f"newer job {newer} has its dedup key 'twice'"),
    ]
    assert job_row(conn, cancelled)["status"] == "cancelled"
    assert admin.retry_matching(conn, statuses=["cancelled"]).retried == [cancelled]
    assert admin.retry_matching(conn).retried == []


def test_retry_matching_an_unknown_queue(conn: Conn) -> None:
    with pytest.raises(NotFound, match="unknown queue 'nope'"):
        admin.retry_matching(conn, queue="nope")


def test_cancel_ends_pending_jobs_and_asks_running_ones_to_stop(dsn: str, conn: Conn) -> None:
    ids = _one_of_each(conn)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgworker_cancel")
        result = admin.cancel_jobs(conn, [ids["pending"], ids["scheduled"], ids["processing"]])
        notes = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert result.cancelled == sorted([ids["pending"], ids["scheduled"]])
    assert result.requested == [ids["processing"]]
    assert notes == [str(ids["processing"])]
    pending = job_row(conn, ids["pending"])
    assert pending["status"] == "cancelled"
    assert pending["finished_at"] is not None
    running = job_row(conn, ids["processing"])
    assert running["status"] == "processing"  # until its worker writes the attempt's end
    assert running["cancel_requested_at"] is not None


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_cancel_refuses_finished_jobs(conn: Conn, state: str) -> None:
    ids = _one_of_each(conn)
    with pytest.raises(Conflict, match=f"job {ids[state]} is {state} already"):
        admin.cancel_jobs(conn, [ids["pending"], ids[state]])
    assert job_row(conn, ids["pending"])["status"] == "pending"


def test_cancel_an_unknown_job(conn: Conn) -> None:
    with pytest.raises(NotFound, match="no job with id 12345"):
        admin.cancel_jobs(conn, [12345])


def test_prune_by_hand_honours_retention_per_status(conn: Conn) -> None:
    old_ok = make_job(conn, "a", status="succeeded", finished_at="-2 days")
    new_ok = make_job(conn, "a", status="succeeded", finished_at="-1 hour")
    old_failed = make_job(conn, "a", status="failed", finished_at="-8 days")
    new_failed = make_job(conn, "a", status="failed", finished_at="-2 days")
    old_cancelled = make_job(conn, "a", status="cancelled", finished_at="-8 days")
    pending = make_job(conn, "a", run_after="-30 days")

    dry = admin.prune_jobs(conn, dry_run=True)
    assert dry == {"succeeded": 1, "failed": 1, "cancelled": 1}
    assert count_jobs(conn) == 6
    assert admin.prune_jobs(conn) == dry
    left = {row[0] for row in conn.execute("SELECT id FROM pgworker.jobs")}
    assert left == {new_ok, new_failed, pending}
    assert not {old_ok, old_failed, old_cancelled} & left

    only_failed = admin.prune_jobs(conn, retention=Retention.parse("1d"), statuses=["failed"])
    assert only_failed == {"failed": 1}
    assert admin.prune_jobs(conn, retention=Retention.parse("0")) == {
        "succeeded": 1, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    assert [row[0] for row in conn.execute("SELECT id FROM pgworker.jobs")] == [pending]


def test_prune_by_hand_works_in_batches(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, status, finished_at)"
        " SELECT 't', 'succeeded', now() - interval '2 days' FROM generate_series(1, 25)"
    )
    assert admin.prune_jobs(conn, batch=10)["succeeded"] == 25
    assert count_jobs(conn) == 0
