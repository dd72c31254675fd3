"""Why a job is not running yet, or what it is doing: `pgworker jobs why`.

Reads the job, its queue's pause state and the workers in one transaction, and says in one
paragraph every reason that applies, each with a stable code for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from pgworker import admin_queries as q
from pgworker.admin import JobDetail, JobInfo, show_job
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.durations import format_duration
from pgworker.jobs import FINISHED_STATUSES, JobStatus
from pgworker.queues import WorkerInfo, read_workers

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason a job is where it is: a stable `code` for scripts and a sentence."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Why:
    """Why a job is not running yet (or what it is doing), as one paragraph."""

    as_of: datetime
    job: JobInfo
    reasons: list[Reason]

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    @property
    def text(self) -> str:
        """The reasons as one paragraph."""
        job = self.job
        intro = []
        if job.status == JobStatus.PENDING:
            intro = [f"Job {job.id} ({job.task} on queue '{job.queue}') is pending."]
        return " ".join(intro + [reason.text for reason in self.reasons])


# The codes of Why.reasons, for scripts.
WHY_CODES: Final = (
    "finished",  # succeeded, failed or cancelled: it will not run unless retried
    "processing",  # running on a worker
    "worker_lost",  # running on a worker that stopped heartbeating: the rescue will come
    "cancel_requested",  # running, asked to stop
    "paused",  # its queue is paused
    "scheduled",  # run_after in the future
    "retry_wait",  # run_after in the future after a failed or rescheduled attempt
    "no_worker",  # no live worker serves its queue
    "no_task",  # live workers serve its queue, none has its task
    "at_capacity",  # every live worker able to run it is busy
    "ready",  # due, with free workers: it waits its turn
    "ahead",  # besides a reason above: how many due jobs of its queue come first
)


def why_job(conn: Connection, job_id: int, *, stale_after: float = DEFAULT_STALE_AFTER) -> Why:
    """Why a job is not running yet, or what it is doing; NotFound if there is no such job."""
    with conn.transaction():
        detail = show_job(conn, job_id)
        job = detail.job
        if job.status in FINISHED_STATUSES:
            reasons = [_finished(detail)]
        elif job.status == JobStatus.PROCESSING:
            reasons = _processing(detail, read_workers(conn, stale_after=stale_after))
        else:
            reasons = _pending(conn, detail, read_workers(conn, stale_after=stale_after))
    return Why(as_of=detail.as_of, job=job, reasons=reasons)


def _ago(as_of: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "at an unknown time"
    return f"{format_duration((as_of - moment).total_seconds())} ago"


def _first_line(text: str | None, limit: int = 200) -> str:
    lines = (text or "").strip().splitlines()
    line = lines[0] if lines else "no error recorded"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _attempts(job: JobInfo) -> str:
    if job.max_attempts is None:
        return f"attempt {job.attempts} (of the task's default maximum)"
    return f"attempt {job.attempts} of {job.max_attempts}"


def _finished(detail: JobDetail) -> Reason:
    job, as_of = detail.job, detail.as_of
    when = _ago(as_of, job.finished_at)
    if job.status == JobStatus.SUCCEEDED:
        ran = ""
        if job.started_at is not None and job.finished_at is not None:
            seconds = (job.finished_at - job.started_at).total_seconds()
            ran = f", its last attempt ran {format_duration(seconds)}"
        text = (
            f"Job {job.id} succeeded {when} after {job.attempts} attempt(s){ran};"
            " it will not run again."
        )
    elif job.status == JobStatus.FAILED:
        text = (
            f"Job {job.id} failed {when} after {job.attempts} attempt(s):"
            f" {_first_line(job.last_error)}. `pgworker jobs retry {job.id}` runs it again."
        )
    else:
        text = f"Job {job.id} was cancelled {when}. `pgworker jobs retry {job.id}` runs it again."
    return Reason("finished", text)


def _processing(detail: JobDetail, workers: list[WorkerInfo]) -> list[Reason]:
    job, as_of = detail.job, detail.as_of
    worker = next((w for w in workers if w.id == job.worker_id), None)
    started = _ago(as_of, job.started_at)
    if worker is None:
        reasons = [
            Reason(
                "worker_lost",
                f"Job {job.id} is processing ({_attempts(job)}, started {started}), but its"
                f" worker {job.worker_id} has no row any more: it was declared dead or exited"
                " abruptly, and the next rescue by a live worker puts the job back to pending.",
            )
        ]
    else:
        where = f"worker {worker.id} ({worker.hostname}, pid {worker.pid})"
        beat = format_duration(worker.heartbeat_age)
        if worker.alive:
            reasons = [
                Reason(
                    "processing",
                    f"Job {job.id} is running on {where}: {_attempts(job)}, started {started};"
                    f" the worker's last heartbeat was {beat} ago.",
                )
            ]
        else:
            reasons = [
                Reason(
                    "worker_lost",
                    f"Job {job.id} is processing on {where} ({_attempts(job)}, started"
                    f" {started}), but that worker's last heartbeat was {beat} ago: it looks"
                    " lost, and a live worker's rescue will put the job back to pending.",
                )
            ]
    if job.cancel_requested_at is not None:
        reasons.append(
            Reason(
                "cancel_requested",
                f"Its cancellation was requested {_ago(as_of, job.cancel_requested_at)}: the"
                " handler's ctx.cancelled is set, and the attempt ends cancelled whatever it"
                " returns.",
            )
        )
    return reasons


def _pending(conn: Connection, detail: JobDetail, workers: list[WorkerInfo]) -> list[Reason]:
    job, as_of = detail.job, detail.as_of
    reasons: list[Reason] = []
    blocked = False
    state = conn.execute(q.QUEUE_STATE, {"queue": job.queue}).fetchone()
    if state is not None and state[0]:
        blocked = True
        reasons.append(
            Reason(
                "paused",
                f"Its queue '{job.queue}' is paused (since {_ago(as_of, state[1])}):"
                f" `pgworker queues resume {job.queue}` lets workers claim from it again.",
            )
        )
    if job.run_after > as_of:
        blocked = True
        wait = format_duration((job.run_after - as_of).total_seconds())
        at = job.run_after.isoformat(timespec="seconds")
        if job.attempts > 0 and job.last_error is not None:
            reasons.append(
                Reason(
                    "retry_wait",
                    f"It is waiting for a retry: {_attempts(job)} failed"
                    f" ({_first_line(job.last_error)}); the next attempt may start in {wait}"
                    f" ({at}).",
                )
            )
        elif job.attempts > 0:
            reasons.append(
                Reason(
                    "retry_wait",
                    f"Its handler asked to run it later (RetryLater) after {_attempts(job)};"
                    f" the next attempt may start in {wait} ({at}).",
                )
            )
        else:
            reasons.append(
                Reason(
                    "scheduled", f"Its run_after is in the future: it may start in {wait} ({at})."
                )
            )
    live = [w for w in workers if w.alive]
    serving = [w for w in live if w.serves(job.queue)]
    capable = [w for w in serving if w.serves(job.queue, job.task)]
    if not serving:
        blocked = True
        lost = [w for w in workers if not w.alive and w.serves(job.queue)]
        note = ""
        if lost:
            note = (
                f" ({len(lost)} worker(s) serving it stopped heartbeating, the latest"
                f" {format_duration(min(w.heartbeat_age for w in lost))} ago)"
            )
        reasons.append(
            Reason(
                "no_worker",
                f"No live worker serves queue '{job.queue}'{note}: start one with"
                f" `pgworker work --app YOUR.TASKS --queues {job.queue}`.",
            )
        )
    elif not capable:
        blocked = True
        known = sorted({task for w in serving for task in w.tasks})
        shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        reasons.append(
            Reason(
                "no_task",
                f"Live workers serve queue '{job.queue}', but none has task '{job.task}'"
                f" registered (they know: {shown or 'nothing'}): deploy a worker whose --app"
                " registers it, or a worker would fail the job as an unknown task.",
            )
        )
    elif all(w.busy >= w.concurrency for w in capable):
        blocked = True
        slots = ", ".join(
            f"{w.hostname} pid {w.pid}: {w.busy}/{w.concurrency}" for w in capable[:5]
        )
        reasons.append(
            Reason(
                "at_capacity",
                f"Every live worker able to run it is busy at its last heartbeat ({slots}):"
                " it waits for a free slot, or for more workers.",
            )
        )
    if job.run_after <= as_of:
        row = conn.execute(
            q.JOBS_AHEAD,
            {"queue": job.queue, "priority": job.priority, "run_after": job.run_after,
             "id": job.id},
        ).fetchone()  # fmt: skip
        ahead = int(row[0]) if row else 0
        if not blocked:
            reasons.append(
                Reason(
                    "ready",
                    f"It is due and waits its turn: {ahead} due job(s) of the queue come before"
                    " it, and live workers serving the queue have free slots, so it should be"
                    " claimed within a poll interval.",
                )
            )
        elif ahead:
            reasons.append(Reason("ahead", f"{ahead} due job(s) of the queue come before it."))
    return reasons
