"""`pgworker enqueue`: add one job from the shell."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from pgworker.cli.app import DsnOption, app, dsn_from, fail
from pgworker.config import DEFAULT_QUEUE


@app.command("enqueue")
def enqueue(
    task: Annotated[str, typer.Argument(help="The task's registered name.")],
    payload: Annotated[
        str, typer.Option("--payload", help="The job's payload as JSON.", show_default=True)
    ] = "{}",
    queue: Annotated[str, typer.Option("--queue", help="Queue name.")] = DEFAULT_QUEUE,
    priority: Annotated[int, typer.Option("--priority", help="Lower runs first.")] = 0,
    delay: Annotated[
        float, typer.Option("--delay", help="Seconds from now before the job may run.", min=0)
    ] = 0.0,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            "--max-attempts", help="Attempts before failing (default: the task's).", min=1
        ),
    ] = None,
    dedup_key: Annotated[
        str | None,
        typer.Option("--dedup-key", help="Skip the insert if a live job has this key."),
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Enqueue one job and print its id (nothing, and a note on stderr, for a duplicate)."""
    from pgworker.client import Client
    from pgworker.db import connect

    try:
        decoded: Any = json.loads(payload)
    except ValueError as exc:
        fail(f"invalid --payload: not JSON ({exc})", 2)
    target = dsn_from(dsn)
    client = Client(target)  # opens no pool: the insert runs on `conn`
    try:
        with connect(target, application_name="pgworker:enqueue") as conn:
            job_id = client.enqueue(
                task,
                decoded,
                queue=queue,
                priority=priority,
                delay=delay or None,
                max_attempts=max_attempts,
                dedup_key=dedup_key,
                conn=conn,
            )
    except ValueError as exc:
        fail(str(exc), 2)
    if job_id is None:
        print(
            f"pgworker: a live job already has dedup key {dedup_key!r}; nothing enqueued",
            file=sys.stderr,
        )
        return
    typer.echo(job_id)
