"""`jobs cancel` on a job a real worker is running: its handler stops, the job ends cancelled."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from pgworker import JobContext, TaskRegistry, Worker, WorkerConfig, admin

from support import job_row, make_job, wait_until

Conn = psycopg.Connection[Any]


@pytest.mark.parametrize("listen", [True, False], ids=["notify", "heartbeat"])
def test_cancel_stops_a_running_handler(dsn: str, conn: Conn, listen: bool) -> None:
    started = threading.Event()
    stopped: list[bool] = []
    registry = TaskRegistry()

    @registry.task("wait", timeout=600)
    def wait(ctx: JobContext, payload: Any) -> None:
        started.set()
        stopped.append(ctx.cancelled.wait(600))

    job = make_job(conn, "wait")
    config = WorkerConfig(
        poll_interval=0.05, heartbeat_interval=0.2, stale_after=5, shutdown_timeout=5,
        listen=listen, prune=False,
    )  # fmt: skip
    worker = Worker(registry, dsn, config)
    worker.start()
    try:
        assert started.wait(30), "the handler never started"
        assert admin.cancel_jobs(conn, [job]).requested == [job]
        # Without LISTEN (--no-listen), the next heartbeat passes the request on.
        wait_until(lambda: job_row(conn, job)["status"] == "cancelled", message="cancelled")
    finally:
        assert worker.stop(timeout=20) == 0
    assert stopped == [True]  # the handler saw ctx.cancelled, and returned
    ended = job_row(conn, job)
    assert ended["finished_at"] is not None
    assert ended["attempts"] == 1
