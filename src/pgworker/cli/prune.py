"""`pgworker prune`: delete finished jobs past their retention, by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from pgworker.cli.app import DsnOption, JsonOption, admin_connection, app, fail
from pgworker.cli.output import echo_json
from pgworker.config import Retention
from pgworker.jobs import FINISHED_STATUSES, JobStatus


@app.command("prune")
def prune_command(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Delete jobs finished longer ago than this: one duration (3d) or per status"
            " (succeeded=12h,failed=30d). Default: the workers' default retention,"
            " succeeded=1d,failed=7d,cancelled=7d.",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        list[JobStatus] | None,
        typer.Option(
            "--status", help="Only this finished status (repeat for several).", show_default=False
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Delete finished jobs (succeeded, failed, cancelled) past their retention, in batches.

    Workers do this on their own every --prune-interval; this is for doing it now.
    """
    from pgworker.admin import prune_jobs

    retention = Retention.parse(older_than, "--older-than") if older_than else Retention()
    statuses = [str(s) for s in status] if status else [str(s) for s in FINISHED_STATUSES]
    for chosen in statuses:
        if chosen not in FINISHED_STATUSES:
            fail(
                f"--status {chosen}: only finished jobs are pruned (succeeded, failed, cancelled)",
                2,
            )
    with admin_connection(dsn) as conn:
        counts = prune_jobs(conn, retention=retention, statuses=statuses, dry_run=dry_run)
    if as_json:
        echo_json({"dry_run": dry_run, "jobs": counts, "total": sum(counts.values())})
        return
    detail = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    verb = "would prune" if dry_run else "pruned"
    typer.echo(f"{verb} {sum(counts.values()):,} finished jobs ({detail})")
