"""`pgworker queues list|pause|resume`: queue depth, and stopping claims from a queue."""

from __future__ import annotations

from typing import Annotated

import typer

from pgworker.cli.app import DsnOption, JsonOption, StaleAfterOption, admin_connection, app
from pgworker.cli.output import echo_json, echo_table
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.durations import format_duration

queues_app = typer.Typer(
    help="List queues, and pause or resume claims from one on every worker.",
    no_args_is_help=True,
)
app.add_typer(queues_app, name="queues")

QueueArgument = Annotated[str, typer.Argument(help="The queue's name.", metavar="QUEUE")]


@queues_app.command("list")
def list_command(
    stale_after: StaleAfterOption = DEFAULT_STALE_AFTER,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """List queues: jobs by state, the oldest due job's wait, the workers serving each."""
    from pgworker.queues import list_queues

    with admin_connection(dsn) as conn:
        queues = list_queues(conn, stale_after=stale_after)
    if as_json:
        echo_json(queues)
        return
    rows = [
        (
            queue.name,
            "paused" if queue.paused else "active",
            queue.pending,
            queue.scheduled,
            queue.processing,
            queue.failed,
            "-" if queue.oldest_due_age is None else format_duration(queue.oldest_due_age),
            queue.workers,
            f"{queue.busy}/{queue.slots}",
        )
        for queue in queues
    ]
    headers = ("QUEUE", "STATE", "PENDING", "SCHEDULED", "PROCESSING", "FAILED", "OLDEST",
               "WORKERS", "BUSY")  # fmt: skip
    echo_table(headers, rows, empty="no queues: no jobs, no workers")


@queues_app.command("pause")
def pause_command(
    queue: QueueArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Pause a queue nothing names yet (no job, no worker).")
    ] = False,
    dsn: DsnOption = None,
) -> None:
    """Pause a queue: every worker stops claiming its jobs at its next poll.

    Running jobs finish; new jobs wait until `queues resume`.
    """
    from pgworker.queues import pause_queue

    with admin_connection(dsn) as conn:
        changed = pause_queue(conn, queue, force=force)
    if changed:
        typer.echo(f"paused queue '{queue}': workers claim none of its jobs from their next poll")
    else:
        typer.echo(f"queue '{queue}' was paused already")


@queues_app.command("resume")
def resume_command(queue: QueueArgument, dsn: DsnOption = None) -> None:
    """Resume a paused queue and wake the workers serving it."""
    from pgworker.queues import resume_queue

    with admin_connection(dsn) as conn:
        changed = resume_queue(conn, queue)
    if changed:
        typer.echo(f"resumed queue '{queue}'")
    else:
        typer.echo(f"queue '{queue}' is not paused")
