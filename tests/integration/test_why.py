"""`jobs why`: every reason a job is not running yet, or what it is doing, from factories."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from pgworker.errors import NotFound
from pgworker.why import WHY_CODES, why_job

from support import make_job, make_worker

Conn = psycopg.Connection[Any]


def _worker(conn: Conn, **kwargs: Any) -> str:
    kwargs.setdefault("tasks", ("send",))
    return make_worker(conn, str(uuid.uuid4()), **kwargs)


def test_ready_with_free_workers_counts_the_jobs_ahead(conn: Conn) -> None:
    _worker(conn, busy=1, concurrency=5)
    first = make_job(conn, "send", run_after="-2 seconds")
    urgent = make_job(conn, "send", priority=-1, run_after="-1 second")
    job = make_job(conn, "send", run_after="-1 second")
    later_priority = make_job(conn, "send", priority=5, run_after="-5 seconds")
    why = why_job(conn, job)
    assert why.codes == ["ready"]
    assert "2 due job(s) of the queue come before it" in why.text
    assert why.text.startswith(f"Job {job} (send on queue 'default') is pending.")
    assert "before it" in why_job(conn, later_priority).text
    assert "0 due job(s)" in why_job(conn, urgent).text
    assert why_job(conn, first).codes == ["ready"]


def test_scheduled(conn: Conn) -> None:
    _worker(conn)
    job = make_job(conn, "send", run_after="2 hours")
    why = why_job(conn, job)
    assert why.codes == ["scheduled"]
    assert "run_after is in the future: it may start in 1 h 59 min" in why.text


def test_waiting_for_a_retry_names_the_attempt_and_the_error(conn: Conn) -> None:
    _worker(conn)
    job = make_job(
        conn, "send", attempts=2, max_attempts=5, run_after="30 seconds",
        last_error="ConnectionError: smtp down\nTraceback (most recent call last): ...",
    )  # fmt: skip
    why = why_job(conn, job)
    assert why.codes == ["retry_wait"]
    assert "waiting for a retry: attempt 2 of 5 failed (ConnectionError: smtp down)" in why.text
    assert "Traceback" not in why.text


def test_rescheduled_by_its_handler(conn: Conn) -> None:
    _worker(conn)
    job = make_job(conn, "send", attempts=1, max_attempts=4, run_after="1 minute")
    assert why_job(conn, job).codes == ["retry_wait"]
    assert "RetryLater" in why_job(conn, job).text


def test_paused_queue(conn: Conn) -> None:
    _worker(conn)
    job = make_job(conn, "send")
    conn.execute("INSERT INTO pgworker.queues (name, paused) VALUES ('default', true)")
    why = why_job(conn, job)
    assert why.codes == ["paused"]
    assert "queue 'default' is paused" in why.text
    assert "pgworker queues resume default" in why.text


def test_paused_and_scheduled_both_show(conn: Conn) -> None:
    _worker(conn)
    job = make_job(conn, "send", run_after="1 hour")
    conn.execute("INSERT INTO pgworker.queues (name, paused) VALUES ('default', true)")
    assert why_job(conn, job).codes == ["paused", "scheduled"]


def test_no_live_worker_serves_the_queue(conn: Conn) -> None:
    _worker(conn, queues=("other",))
    _worker(conn, heartbeat_age="5 minutes")  # serves it, but lost
    job = make_job(conn, "send")
    why = why_job(conn, job)
    assert why.codes == ["no_worker"]
    assert "No live worker serves queue 'default'" in why.text
    assert "1 worker(s) serving it stopped heartbeating" in why.text
    assert "pgworker work --app YOUR.TASKS --queues default" in why.text


def test_no_live_worker_has_the_task(conn: Conn) -> None:
    _worker(conn, tasks=("other", "more"))
    job = make_job(conn, "send")
    why = why_job(conn, job)
    assert why.codes == ["no_task"]
    assert "none has task 'send' registered (they know: more, other)" in why.text


def test_every_capable_worker_is_at_capacity(conn: Conn) -> None:
    _worker(conn, busy=5, concurrency=5, hostname="web1", pid=11)
    _worker(conn, busy=2, concurrency=2, hostname="web2", pid=12)
    _worker(conn, busy=0, tasks=("other",))  # free, but cannot run it
    make_job(conn, "send", run_after="-1 second")
    job = make_job(conn, "send")
    why = why_job(conn, job)
    assert why.codes == ["at_capacity", "ahead"]
    assert "web1 pid 11: 5/5" in why.text
    assert "web2 pid 12: 2/2" in why.text
    assert "1 due job(s) of the queue come before it" in why.text


def test_processing_on_a_live_worker(conn: Conn) -> None:
    worker = _worker(conn, hostname="web7", pid=77, heartbeat_age="2 seconds")
    job = make_job(
        conn, "send", status="processing", attempts=2, max_attempts=4,
        started_at="-10 seconds", worker_id=worker,
    )  # fmt: skip
    why = why_job(conn, job)
    assert why.codes == ["processing"]
    assert f"running on worker {worker} (web7, pid 77): attempt 2 of 4" in why.text
    assert "started 10 s ago" in why.text
    assert "last heartbeat was 2.0 s ago" in why.text


def test_processing_on_a_lost_worker(conn: Conn) -> None:
    stale = _worker(conn, heartbeat_age="10 minutes")
    on_stale = make_job(conn, "send", status="processing", attempts=1, worker_id=stale)
    gone = make_job(conn, "send", status="processing", attempts=1, worker_id=str(uuid.uuid4()))
    assert why_job(conn, on_stale).codes == ["worker_lost"]
    assert "last heartbeat was 10 min ago" in why_job(conn, on_stale).text
    assert why_job(conn, gone).codes == ["worker_lost"]
    assert "has no row any more" in why_job(conn, gone).text


def test_processing_with_a_cancel_request(conn: Conn) -> None:
    worker = _worker(conn)
    job = make_job(conn, "send", status="processing", attempts=1, worker_id=worker)
    conn.execute(
        "UPDATE pgworker.jobs SET cancel_requested_at = now() - interval '3 s' WHERE id = %s",
        (job,),
    )
    why = why_job(conn, job)
    assert why.codes == ["processing", "cancel_requested"]
    assert "ends cancelled" in why.text


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("succeeded", "succeeded 1 min ago after 1 attempt(s), its last attempt ran 2.0 s"),
        ("failed", "failed 1 min ago after 1 attempt(s): ValueError: bad. `pgworker jobs retry"),
        ("cancelled", "was cancelled 1 min ago. `pgworker jobs retry"),
    ],
)
def test_finished(conn: Conn, status: str, fragment: str) -> None:
    job = make_job(
        conn, "send", status=status, attempts=1, started_at="-62 seconds",
        finished_at="-60 seconds", last_error="ValueError: bad" if status == "failed" else None,
    )  # fmt: skip
    why = why_job(conn, job)
    assert why.codes == ["finished"]
    assert fragment in why.text


def test_every_code_is_documented(conn: Conn) -> None:
    assert set(WHY_CODES) >= {
        "finished", "processing", "worker_lost", "cancel_requested", "paused", "scheduled",
        "retry_wait", "no_worker", "no_task", "at_capacity", "ready", "ahead",
    }  # fmt: skip


def test_unknown_job(conn: Conn) -> None:
    with pytest.raises(NotFound, match="no job with id 4040"):
        why_job(conn, 4040)
