"""`pgworker status`: workers, queues, recent failures, and jobs no worker can run."""

from __future__ import annotations

import typer

from pgworker.cli.app import DsnOption, JsonOption, StaleAfterOption, admin_connection, app
from pgworker.cli.output import ago, echo_json, echo_table
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.durations import format_duration


@app.command("status")
def status_command(
    stale_after: StaleAfterOption = DEFAULT_STALE_AFTER,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Show workers, queue depth and throughput, recent failures, jobs no worker can run.

    Throughput counts jobs finished in the last minute; failures, the last hour.
    """
    from pgworker.queues import read_status

    with admin_connection(dsn) as conn:
        status = read_status(conn, stale_after=stale_after)
    if as_json:
        echo_json(
            {
                "as_of": status.as_of,
                "workers": status.workers,
                "queues": status.queues,
                "failed_last_hour": status.failed_last_hour,
                "unrunnable": status.unrunnable,
            }
        )
        return
    live = sum(1 for w in status.workers if w.alive)
    lost = len(status.workers) - live
    typer.echo(f"workers: {live} live" + (f", {lost} lost (not heartbeating)" if lost else ""))
    echo_table(
        ("WORKER", "HOST", "PID", "QUEUES", "BUSY", "HEARTBEAT", "STARTED", "STATE"),
        [
            (
                w.id[:8],
                w.hostname,
                w.pid,
                ",".join(w.queues),
                f"{w.busy}/{w.concurrency}",
                f"{format_duration(w.heartbeat_age)} ago",
                ago(status.as_of, w.started_at),
                "live" if w.alive else "lost",
            )
            for w in status.workers
        ],
        empty="  (none)",
    )
    typer.echo("")
    typer.echo("queues:")
    echo_table(
        (
            "QUEUE",
            "STATE",
            "PENDING",
            "SCHEDULED",
            "PROCESSING",
            "DONE/MIN",
            "FAILED/1H",
            "OLDEST",
            "WORKERS",
        ),
        [
            (
                q.name,
                "paused" if q.paused else "active",
                q.pending,
                q.scheduled,
                q.processing,
                q.finished_last_minute,
                q.failed_last_hour,
                "-" if q.oldest_due_age is None else format_duration(q.oldest_due_age),
                q.workers,
            )
            for q in status.queues
        ],
        empty="  (none)",
    )
    typer.echo("")
    typer.echo(f"failed in the last hour: {status.failed_last_hour:,}")
    if not status.unrunnable:
        typer.echo("jobs no live worker can run: none")
        return
    total = sum(item.jobs for item in status.unrunnable)
    typer.echo(f"jobs no live worker can run: {total:,}")
    echo_table(
        ("QUEUE", "TASK", "JOBS", "WHY"),
        [
            (
                item.queue,
                item.task,
                item.jobs,
                "no live worker has the task"
                if item.queue_served
                else "no live worker serves the queue",
            )
            for item in status.unrunnable
        ],
        empty="",
    )
