"""Operator actions on jobs: list, show, retry, cancel, and prune (why.py explains one).

Functions take an autocommit connection and do their work in one transaction each, so a
refused request changes nothing and every age is measured against one `now()` of the
database. They return frozen dataclasses that the CLI prints as tables or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
import psycopg.errors

from pgworker import admin_queries as q
from pgworker import queries
from pgworker.config import Retention
from pgworker.errors import Conflict, NotFound
from pgworker.jobs import FINISHED_STATUSES, JobStatus, check_name
from pgworker.maintenance import prune_batch
from pgworker.queues import now, require_queue

Connection = psycopg.Connection[Any]

# Jobs per transaction of `jobs retry --failed`.
RETRY_BATCH: Final = 1000


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job's columns, payload and error history aside."""

    id: int
    queue: str
    task: str
    status: str
    priority: int
    attempts: int
    max_attempts: int | None
    run_after: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    last_error: str | None
    dedup_key: str | None
    cancel_requested_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobList:
    """Jobs newest first, and the database's time when they were read."""

    as_of: datetime
    jobs: list[JobInfo]


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Every column of one job, its error history (oldest first) and its worker, if any."""

    as_of: datetime
    job: JobInfo
    payload: Any
    errors: list[dict[str, Any]]
    worker_hostname: str | None
    worker_pid: int | None
    worker_heartbeat_at: datetime | None


@dataclass(frozen=True, slots=True)
class RetryResult:
    """Jobs put back to pending, and jobs left alone with the reason."""

    retried: list[int]
    skipped: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Pending jobs cancelled at once, and running jobs whose handler was asked to stop."""

    cancelled: list[int]
    requested: list[int]


def _job(row: Sequence[Any]) -> JobInfo:
    return JobInfo(*row[:15])


def _checked_ids(ids: Iterable[int]) -> list[int]:
    unique = sorted(set(ids))
    if not unique:
        raise ValueError("no job ids given")
    return unique


def list_jobs(
    conn: Connection,
    *,
    statuses: Sequence[str] | None = None,
    queue: str | None = None,
    task: str | None = None,
    limit: int = 50,
) -> JobList:
    """The newest jobs matching every filter given; NotFound for a queue nothing names."""
    for status in statuses or ():
        JobStatus(status)  # ValueError for a status that does not exist
    if task is not None:
        check_name("task", task)
    if limit < 1:
        raise ValueError("the limit must be at least 1")
    with conn.transaction():
        params = {
            "statuses": list(statuses) if statuses else None,
            "queue": queue,
            "task": task,
            "limit": limit,
        }
        jobs = [_job(row) for row in conn.execute(q.LIST_JOBS, params)]
        if not jobs and queue is not None:
            require_queue(conn, queue)
        return JobList(as_of=now(conn), jobs=jobs)


def show_job(conn: Connection, job_id: int) -> JobDetail:
    """Every column of one job; NotFound if there is no such job."""
    with conn.transaction():
        row = conn.execute(q.SHOW_JOB, {"id": job_id}).fetchone()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        return JobDetail(
            as_of=now(conn),
            job=_job(row),
            payload=json.loads(row[15]),
            errors=list(row[16] or []),
            worker_hostname=row[17],
            worker_pid=row[18],
            worker_heartbeat_at=row[19],
        )


def retry_jobs(conn: Connection, ids: Iterable[int]) -> RetryResult:
    """Put these failed or cancelled jobs back to pending (attempts 0, due now), all or none.

    NotFound for an unknown id; Conflict for a job in another state, or whose dedup key a
    live job holds (or another of these jobs has).
    """
    wanted = _checked_ids(ids)
    with conn.transaction():
        rows = conn.execute(q.LOCK_JOBS, {"ids": wanted}).fetchall()
        found = {row[0]: row for row in rows}
        missing = [job_id for job_id in wanted if job_id not in found]
        if missing:
            raise NotFound(_no_such_jobs(missing))
        for job_id, status, _queue, _key in rows:
            if status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise Conflict(
                    f"job {job_id} is {status}: only failed or cancelled jobs can be retried"
                )
        holders = dict(_live_holders(conn, [row[3] for row in rows if row[3] is not None]))
        seen: dict[str, int] = {}
        for job_id, _status, _queue, key in rows:
            if key is None:
                continue
            if key in holders:
                raise Conflict(
                    f"job {job_id} has dedup key {key!r}, which live job {holders[key]} holds:"
                    " let that job finish or cancel it first"
                )
            if key in seen:
                raise Conflict(
                    f"jobs {seen[key]} and {job_id} have the same dedup key {key!r}:"
                    " retry one of them"
                )
            seen[key] = job_id
        retried = _retry(conn, wanted)
    return RetryResult(retried=retried, skipped=[])


def retry_matching(
    conn: Connection,
    *,
    statuses: Sequence[str] = (JobStatus.FAILED,),
    queue: str | None = None,
    task: str | None = None,
    batch: int = RETRY_BATCH,
) -> RetryResult:
    """Retry every job in `statuses` (failed, cancelled) of the queue and task given.

    Newest first, `batch` jobs per transaction. A job whose dedup key a live job holds is
    skipped, and so is any older job with the key of one just retried.
    """
    for status in statuses:
        if status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ValueError(f"only failed or cancelled jobs can be retried, not {status}")
    if task is not None:
        check_name("task", task)
    if queue is not None:
        require_queue(conn, queue)
    retried: list[int] = []
    skipped: list[tuple[int, str]] = []
    before = 2**63 - 1
    while True:
        with conn.transaction():
            rows = conn.execute(
                q.RETRY_CANDIDATES,
                {"statuses": list(statuses), "queue": queue, "task": task,
                 "before": before, "batch": batch},
            ).fetchall()  # fmt: skip
            if not rows:
                break
            before = rows[-1][0]
            chosen: list[int] = []
            taken: dict[str, int] = {}
            for job_id, _queue, key, holder in rows:
                if key is not None and holder is not None:
                    skipped.append((job_id, f"live job {holder} holds its dedup key {key!r}"))
                elif key is not None and key in taken:
                    skipped.append((job_id, f"newer job {taken[key]} has its dedup key {key!r}"))
                else:
                    chosen.append(job_id)
                    if key is not None:
                        taken[key] = job_id
            retried += _retry(conn, chosen)
        if len(rows) < batch:
            break
    return RetryResult(retried=sorted(retried), skipped=sorted(skipped))


def _retry(conn: Connection, ids: list[int]) -> list[int]:
    if not ids:
        return []
    try:
        rows = conn.execute(q.RETRY_FINISHED_JOBS, {"ids": ids}).fetchall()
    except psycopg.errors.UniqueViolation:
        # A job with the same dedup key was enqueued since the check.
        raise Conflict(
            "a live job with the same dedup key appeared meanwhile; nothing was retried"
        ) from None
    woken = sorted({queue for _, queue in rows})
    if woken:
        conn.execute(queries.NOTIFY_QUEUES, {"queues": woken})
    return sorted(job_id for job_id, _ in rows)


def _live_holders(conn: Connection, keys: list[str]) -> list[tuple[str, int]]:
    if not keys:
        return []
    return [(key, job_id) for key, job_id in conn.execute(q.LIVE_DEDUP_HOLDERS, {"keys": keys})]


def _no_such_jobs(missing: list[int]) -> str:
    if len(missing) == 1:
        return f"no job with id {missing[0]}"
    return "no jobs with ids " + ", ".join(map(str, missing))


def cancel_jobs(conn: Connection, ids: Iterable[int]) -> CancelResult:
    """Cancel pending jobs now and ask running ones to stop, all or none.

    NotFound for an unknown id; Conflict for a job that has finished already.
    """
    wanted = _checked_ids(ids)
    with conn.transaction():
        rows = conn.execute(q.LOCK_JOBS, {"ids": wanted}).fetchall()
        found = {row[0]: row[1] for row in rows}
        missing = [job_id for job_id in wanted if job_id not in found]
        if missing:
            raise NotFound(_no_such_jobs(missing))
        for job_id, status in found.items():
            if status in FINISHED_STATUSES:
                raise Conflict(f"job {job_id} is {status} already: there is nothing to cancel")
        pending = [job_id for job_id, status in found.items() if status == JobStatus.PENDING]
        running = [job_id for job_id, status in found.items() if status == JobStatus.PROCESSING]
        cancelled = [row[0] for row in conn.execute(q.CANCEL_PENDING_JOBS, {"ids": pending})]
        requested = [row[0] for row in conn.execute(q.REQUEST_CANCEL, {"ids": running})]
        if requested:
            conn.execute(q.NOTIFY_CANCEL, {"ids": requested})
    return CancelResult(cancelled=sorted(cancelled), requested=sorted(requested))


def prune_jobs(
    conn: Connection,
    *,
    retention: Retention | None = None,
    statuses: Sequence[str] = FINISHED_STATUSES,
    dry_run: bool = False,
    batch: int = queries.PRUNE_BATCH,
) -> dict[str, int]:
    """Delete (or, dry, count) finished jobs past `retention`; returns the count per status.

    Batches of `batch` jobs, each in its own transaction that first waits for the pruners'
    lock, so a worker pruning at the same moment is waited for, never raced.
    """
    retention = retention or Retention()
    counts: dict[str, int] = {}
    for status, older_than in retention.items():
        if status not in statuses:
            continue
        params = {"status": status, "older_than": older_than}
        if dry_run:
            row = conn.execute(q.COUNT_PRUNABLE, params).fetchone()
            counts[status] = int(row[0]) if row else 0
            continue
        total = 0
        while True:
            with conn.transaction():
                conn.execute(queries.PRUNE_LOCK)
                deleted = prune_batch(conn, status, older_than, batch)
            total += deleted
            if deleted < batch:
                break
        counts[status] = total
    return counts
