"""Queues and workers as an operator sees them: depth, pausing, live workers, overall status.

Functions take an autocommit connection and read in one transaction, so every count and age
belongs to one moment, measured on the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from pgworker import admin_queries as q
from pgworker import queries
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.errors import NotFound
from pgworker.jobs import check_name

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One row of pgworker.workers; `alive` when it heartbeated within stale_after."""

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    tasks: tuple[str, ...]
    concurrency: int
    busy: int  # handler threads running a job, as of the last heartbeat
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age: float  # seconds
    alive: bool

    def serves(self, queue: str, task: str | None = None) -> bool:
        """True if it claims from `queue` (and, given `task`, has that task registered)."""
        return queue in self.queues and (task is None or task in self.tasks)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue: its jobs by state, its recent finishes, and the live workers serving it."""

    name: str
    paused: bool
    pending: int  # due now
    scheduled: int  # pending, run_after in the future
    processing: int
    failed: int  # all retained failed jobs
    oldest_due_age: float | None  # seconds the oldest due pending job has waited
    finished_last_minute: int
    failed_last_hour: int
    workers: int  # live workers serving it
    busy: int  # their busy slots
    slots: int  # their concurrency


@dataclass(frozen=True, slots=True)
class Unrunnable:
    """Pending jobs of one queue and task that no live worker can run."""

    queue: str
    task: str
    jobs: int
    queue_served: bool  # a live worker serves the queue, but none has the task


@dataclass(frozen=True, slots=True)
class Status:
    """What `pgworker status` shows: workers, queues, recent failures, unrunnable jobs."""

    as_of: datetime
    workers: list[WorkerInfo]
    queues: list[QueueInfo]
    unrunnable: list[Unrunnable]

    @property
    def failed_last_hour(self) -> int:
        return sum(queue.failed_last_hour for queue in self.queues)


def now(conn: Connection) -> datetime:
    """The database's now() (the start of the current transaction)."""
    row = conn.execute(q.NOW).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def read_workers(conn: Connection, *, stale_after: float = DEFAULT_STALE_AFTER) -> list[WorkerInfo]:
    """Every registered worker, live or not, by hostname and start time."""
    workers = []
    rows = conn.execute(q.WORKERS).fetchall()
    for wid, host, pid, queues, tasks, concurrency, busy, started, beat, age in rows:
        workers.append(
            WorkerInfo(
                id=wid,
                hostname=host,
                pid=pid,
                queues=tuple(queues),
                tasks=tuple(tasks),
                concurrency=concurrency,
                busy=busy,
                started_at=started,
                heartbeat_at=beat,
                heartbeat_age=age,
                alive=age < stale_after,
            )
        )
    return workers


def list_queues(conn: Connection, *, stale_after: float = DEFAULT_STALE_AFTER) -> list[QueueInfo]:
    """Every queue with pending, processing or failed jobs, a live worker, recent finishes,
    or a pause; sorted by name."""
    with conn.transaction():
        return _queues(conn, read_workers(conn, stale_after=stale_after))


def _queues(conn: Connection, workers: list[WorkerInfo]) -> list[QueueInfo]:
    counts: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return counts.setdefault(
            name,
            {"paused": False, "pending": 0, "scheduled": 0, "processing": 0, "failed": 0,
             "oldest_due_age": None, "finished_last_minute": 0, "failed_last_hour": 0},
        )  # fmt: skip

    as_of = now(conn)
    for name, status, jobs, scheduled, oldest_due in conn.execute(q.QUEUE_COUNTS):
        item = entry(name)
        item[status] = jobs
        if status == "pending":
            item["scheduled"] = scheduled
            if oldest_due is not None:
                item["oldest_due_age"] = max(0.0, (as_of - oldest_due).total_seconds())
    for name, paused, _updated in conn.execute(q.QUEUE_STATES):
        if paused:  # a resumed queue with nothing else to show is not listed
            entry(name)["paused"] = True
    for name, last_minute, failed_last_hour in conn.execute(q.RECENT_FINISHES):
        item = entry(name)
        item["finished_last_minute"] = last_minute
        item["failed_last_hour"] = failed_last_hour
    live = [w for w in workers if w.alive]
    for worker in live:
        for name in worker.queues:
            entry(name)
    result = []
    for name in sorted(counts):
        serving = [w for w in live if name in w.queues]
        result.append(
            QueueInfo(
                name=name,
                workers=len(serving),
                busy=sum(w.busy for w in serving),
                slots=sum(w.concurrency for w in serving),
                **counts[name],
            )
        )
    return result


def unrunnable_jobs(
    conn: Connection, *, stale_after: float = DEFAULT_STALE_AFTER
) -> list[Unrunnable]:
    """Pending jobs, by queue and task, that no live worker serves; most jobs first."""
    return [
        Unrunnable(queue=queue, task=task, jobs=jobs, queue_served=served)
        for queue, task, jobs, served in conn.execute(
            q.UNRUNNABLE_JOBS, {"stale_after": stale_after}
        )
    ]


def read_status(conn: Connection, *, stale_after: float = DEFAULT_STALE_AFTER) -> Status:
    """Workers, queues (depth, throughput, failures) and jobs no live worker can run."""
    with conn.transaction():
        workers = read_workers(conn, stale_after=stale_after)
        return Status(
            as_of=now(conn),
            workers=workers,
            queues=_queues(conn, workers),
            unrunnable=unrunnable_jobs(conn, stale_after=stale_after),
        )


def require_queue(conn: Connection, queue: str) -> None:
    """Raise NotFound unless `queue` is steered, served by a worker, or has jobs."""
    check_name("queue", queue)
    row = conn.execute(q.QUEUE_KNOWN, {"queue": queue}).fetchone()
    if not row or not row[0]:
        raise NotFound(f"unknown queue {queue!r}: no job, no worker and no pause state names it")


def pause_queue(conn: Connection, queue: str, *, force: bool = False) -> bool:
    """Pause `queue` for every worker (at its next claim); False if it was paused already.

    An unknown queue raises NotFound unless `force` (to pause a queue before its first job).
    """
    with conn.transaction():
        if not force:
            require_queue(conn, queue)
        check_name("queue", queue)
        return conn.execute(q.PAUSE_QUEUE, {"queue": queue}).fetchone() is not None


def resume_queue(conn: Connection, queue: str) -> bool:
    """Resume a paused queue and wake the workers serving it; False if it was not paused."""
    with conn.transaction():
        require_queue(conn, queue)
        changed = conn.execute(q.RESUME_QUEUE, {"queue": queue}).fetchone() is not None
        if changed:
            conn.execute(queries.NOTIFY_QUEUES, {"queues": [queue]})
        return changed
