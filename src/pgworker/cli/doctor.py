"""`pgworker doctor`: the checks that can save a production queue."""

from __future__ import annotations

from typing import Annotated

import typer

from pgworker.cli.app import DsnOption, JsonOption, StaleAfterOption, app, dsn_from
from pgworker.cli.output import echo_json
from pgworker.config import DEFAULT_STALE_AFTER
from pgworker.doctor import DEFAULT_LISTEN_TIMEOUT, DEFAULT_MAX_XMIN_AGE, WARNING


@app.command("doctor")
def doctor_command(
    max_xmin_age: Annotated[
        float,
        typer.Option(
            "--max-xmin-age",
            help="Seconds a transaction may hold back vacuum before it is a warning.",
            min=0,
        ),
    ] = DEFAULT_MAX_XMIN_AGE,
    listen_timeout: Annotated[
        float,
        typer.Option(
            "--listen-timeout", help="Seconds to wait for the LISTEN/NOTIFY round trip.", min=0.01
        ),
    ] = DEFAULT_LISTEN_TIMEOUT,
    stale_after: StaleAfterOption = DEFAULT_STALE_AFTER,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Check what can quietly break a queue; exit 1 if any check warns.

    The schema, LISTEN/NOTIFY end to end, whatever holds back vacuum, dead rows in jobs,
    the notification queue, the claim's plan, and jobs no live worker can run. Run it with
    the workers' own DSN: a pooler in their path is what it must see.
    """
    from pgworker.doctor import run_checks

    checks = run_checks(
        dsn_from(dsn),
        stale_after=stale_after,
        max_xmin_age=max_xmin_age,
        listen_timeout=listen_timeout,
    )
    warnings = sum(1 for check in checks if check.status == WARNING)
    if as_json:
        echo_json({"ok": warnings == 0, "checks": checks})
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            typer.echo(f"{check.status:<8} {check.name:<{width}}  {check.reason}")
            if check.status == WARNING and check.fix:
                typer.echo(f"{'':<8} {'':<{width}}  fix: {check.fix}")
        typer.echo("all checks ok" if not warnings else f"{warnings} warning(s)")
    if warnings:
        raise typer.Exit(1)
