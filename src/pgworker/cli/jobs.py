"""`pgworker jobs list|show|retry|cancel|why`: inspect and steer single jobs."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Annotated

import typer

from pgworker.cli.app import (
    DsnOption,
    JsonOption,
    StaleAfterOption,
    admin_connection,
    app,
    fail,
)
from pgworker.cli.output import ago, echo_json, echo_table, shorten
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.durations import format_duration
from pgworker.jobs import JobStatus, preview

if TYPE_CHECKING:
    from datetime import datetime

    from pgworker.admin import JobDetail, JobInfo

jobs_app = typer.Typer(
    help="Inspect and steer jobs: list, show, retry, cancel, and why one is not running.",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")

# Text of a payload `jobs show` prints before cutting it (--json prints all of it).
PAYLOAD_PREVIEW = 4000


@jobs_app.command("list")
def list_command(
    status: Annotated[
        list[JobStatus] | None,
        typer.Option(
            "--status", help="Only jobs in this status (repeat for several).", show_default=False
        ),
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Only jobs of this queue.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only jobs of this task.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many jobs.", min=1)] = 50,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """List jobs, newest first."""
    from pgworker.admin import list_jobs

    with admin_connection(dsn) as conn:
        found = list_jobs(
            conn,
            statuses=[str(s) for s in status] if status else None,
            queue=queue,
            task=task,
            limit=limit,
        )
    if as_json:
        echo_json(found.jobs)
        return
    rows = [
        (
            job.id,
            job.queue,
            job.task,
            job.status,
            _attempts(job),
            ago(found.as_of, job.created_at),
            _when(job, found.as_of),
            shorten(job.last_error, 50),
        )
        for job in found.jobs
    ]
    headers = ("ID", "QUEUE", "TASK", "STATUS", "ATTEMPTS", "CREATED", "WHEN", "LAST ERROR")
    echo_table(headers, rows, empty="no jobs match")


def _attempts(job: JobInfo) -> str:
    return f"{job.attempts}/{job.max_attempts}" if job.max_attempts else str(job.attempts)


def _when(job: JobInfo, as_of: datetime) -> str:
    """Where the job is in time: due or scheduled, running since, finished ago."""
    if job.status == JobStatus.PENDING:
        seconds = (job.run_after - as_of).total_seconds()
        if seconds > 0:
            return f"in {format_duration(seconds)}"
        return f"due {format_duration(-seconds)}"
    if job.status == JobStatus.PROCESSING:
        if job.started_at is None:
            return "running"
        return f"running {format_duration((as_of - job.started_at).total_seconds())}"
    return f"ended {ago(as_of, job.finished_at)}"


# Job ids as typed: ASCII digits within bigint, so `1_0` or other scripts' digits (which
# int() accepts) never select a job, and an id too large gets a clear line, not the
# database's "bigint out of range".
_MAX_JOB_ID = 2**63 - 1


def _job_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_JOB_ID:
        raise typer.BadParameter(f"{preview(value)} is not a job id (a whole number from 1)")
    return int(value)


@jobs_app.command("show")
def show_command(
    job_id: Annotated[int, typer.Argument(help="The job's id.", metavar="ID", parser=_job_id)],
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Show every column of one job, its timings and its error history."""
    from pgworker.admin import show_job

    with admin_connection(dsn) as conn:
        detail = show_job(conn, job_id)
    if as_json:
        echo_json(detail)
        return
    typer.echo("\n".join(_describe(detail)))


def _describe(detail: JobDetail) -> list[str]:
    job, as_of = detail.job, detail.as_of

    def moment(value: datetime | None) -> str:
        if value is None:
            return "-"
        relative = (value - as_of).total_seconds()
        when = f"in {format_duration(relative)}" if relative > 0 else ago(as_of, value)
        return f"{value.isoformat(timespec='seconds')} ({when})"

    def span(start: datetime | None, end: datetime | None) -> str | None:
        if start is None or end is None:
            return None
        return format_duration((end - start).total_seconds())

    fields: list[tuple[str, str | None]] = [
        ("task", job.task),
        ("queue", job.queue),
        ("status", job.status),
        ("priority", str(job.priority)),
        ("attempts", _attempts(job) + ("" if job.max_attempts else " (max: the task's)")),
        ("dedup key", job.dedup_key or "-"),
        ("created", moment(job.created_at)),
        ("run after", moment(job.run_after)),
        ("started", moment(job.started_at)),
        ("finished", moment(job.finished_at)),
        ("waited", span(job.run_after, job.started_at)),  # due to claimed, last attempt
        ("ran", span(job.started_at, job.finished_at or (as_of if job.worker_id else None))),
        ("total", span(job.created_at, job.finished_at)),
    ]
    if job.worker_id is not None:
        worker = job.worker_id
        if detail.worker_hostname is not None:
            beat = ago(as_of, detail.worker_heartbeat_at)
            worker += f" ({detail.worker_hostname}, pid {detail.worker_pid}, heartbeat {beat})"
        elif job.status == JobStatus.PROCESSING:
            worker += " (no worker row: lost, the rescue will put the job back)"
        fields.append(("worker", worker))
    if job.cancel_requested_at is not None:
        fields.append(("cancel asked", moment(job.cancel_requested_at)))
    lines = [f"job {job.id}"]
    lines += [f"  {name:<13}{value}" for name, value in fields if value is not None]
    if job.last_error:
        lines.append("last error")
        lines += ["  " + line for line in job.last_error.splitlines()]
    payload = json.dumps(detail.payload, indent=2, ensure_ascii=False)
    if len(payload) > PAYLOAD_PREVIEW:
        payload = payload[:PAYLOAD_PREVIEW] + f"\n... ({len(payload):,} characters; --json for all)"
    lines.append("payload")
    lines += ["  " + line for line in payload.splitlines()]
    if detail.errors:
        lines.append("errors (oldest first)")
        for entry in detail.errors:
            error = shorten(str(entry.get("error", "")), 90)
            lines.append(f"  attempt {entry.get('attempt', '?')}  {entry.get('at', '?')}  {error}")
    return lines


@jobs_app.command("retry")
def retry_command(
    job_ids: Annotated[
        list[int] | None,
        typer.Argument(
            help="Ids of failed or cancelled jobs.",
            metavar="[ID]...",
            show_default=False,
            parser=_job_id,
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Retry every failed job (of --task, --queue).")
    ] = False,
    cancelled: Annotated[
        bool, typer.Option("--cancelled", help="Retry every cancelled job (of --task, --queue).")
    ] = False,
    task: Annotated[
        str | None, typer.Option("--task", help="With --failed/--cancelled: this task only.")
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help="With --failed/--cancelled: this queue only.")
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Put failed or cancelled jobs back to pending: attempts reset, due now.

    Either job ids (all or none are retried) or --failed / --cancelled with optional
    --task and --queue. A job whose dedup key a live job holds is not retried.
    """
    from pgworker.admin import retry_jobs, retry_matching

    bulk = failed or cancelled
    if job_ids and bulk:
        fail("give job ids or --failed/--cancelled, not both", 2)
    if not job_ids and not bulk:
        fail("give job ids, or --failed or --cancelled to retry every such job", 2)
    if job_ids and (task is not None or queue is not None):
        fail("--task and --queue select jobs for --failed/--cancelled, not with job ids", 2)
    with admin_connection(dsn) as conn:
        if job_ids:
            result = retry_jobs(conn, job_ids)
        else:
            statuses = [s for s, wanted in (("failed", failed), ("cancelled", cancelled)) if wanted]
            result = retry_matching(conn, statuses=statuses, queue=queue, task=task)
    for job_id, why in result.skipped:
        typer.echo(f"skipped job {job_id}: {why}")
    if not result.retried:
        typer.echo("no job retried" if result.skipped else "no job matched: nothing retried")
        return
    typer.echo(f"retried {_jobs(result.retried)}: pending, due now")


def _jobs(ids: list[int]) -> str:
    if len(ids) == 1:
        return f"job {ids[0]}"
    shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
    return f"{len(ids):,} jobs ({shown})"


@jobs_app.command("cancel")
def cancel_command(
    job_ids: Annotated[
        list[int],
        typer.Argument(help="Ids of pending or running jobs.", metavar="ID...", parser=_job_id),
    ],
    dsn: DsnOption = None,
) -> None:
    """Cancel jobs, all or none: pending ones now, running ones cooperatively.

    A running job's handler sees ctx.cancelled (set through the database), and the job
    ends cancelled when it returns.
    """
    from pgworker.admin import cancel_jobs

    with admin_connection(dsn) as conn:
        result = cancel_jobs(conn, job_ids)
    if result.cancelled:
        typer.echo(f"cancelled {_jobs(result.cancelled)}")
    if result.requested:
        typer.echo(
            f"asked {_jobs(result.requested)} to stop: the handler sees ctx.cancelled, and the"
            " job ends cancelled when it returns"
        )


@jobs_app.command("why")
def why_command(
    job_id: Annotated[int, typer.Argument(help="The job's id.", metavar="ID", parser=_job_id)],
    stale_after: StaleAfterOption = DEFAULT_STALE_AFTER,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Explain in one paragraph why a job is not running yet, or what it is doing."""
    from pgworker.why import why_job

    with admin_connection(dsn) as conn:
        why = why_job(conn, job_id, stale_after=stale_after)
    if as_json:
        echo_json({"job": why.job, "codes": why.codes, "reasons": why.reasons, "text": why.text})
        return
    # Ids, hosts and queue names hold hyphens: never break a line inside one.
    typer.echo(textwrap.fill(why.text, width=100, break_on_hyphens=False, break_long_words=False))
