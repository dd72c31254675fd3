"""Schema and server commands: migrate, dsn, embedded."""

from __future__ import annotations

from typing import Annotated

import typer

from pgworker.cli.app import DsnOption, app, dsn_from, fail
from pgworker.config import home_dir, mask_dsn, resolve_dsn

migrate_app = typer.Typer(
    help="Create or upgrade the pgworker schema (idempotent); see also `migrate downgrade`.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(migrate_app, name="migrate")

embedded_app = typer.Typer(help="Manage the embedded PostgreSQL used when no DSN is configured.")
app.add_typer(embedded_app, name="embedded")


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the schema is at head; change nothing.")
    ] = False,
    sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the SQL of a full upgrade instead of running it."),
    ] = False,
    dsn: DsnOption = None,
) -> None:
    """Create or upgrade the pgworker schema to head (safe to run again, and concurrently)."""
    if ctx.invoked_subcommand is not None:
        return
    from pgworker import migrate as schema

    if sql:
        if check:
            fail("--sql and --check cannot be combined", 2)
        typer.echo(schema.migration_sql("head"), nl=False)
        return
    target = dsn_from(dsn)
    head = schema.head_revision()
    if check:
        from pgworker.db import connect

        with connect(target, application_name="pgworker:migrate") as conn:
            current = schema.current_revision(conn)
        if current == head:
            typer.echo(f"pgworker schema is at head ({head})")
            return
        state = "not installed" if current is None else f"at {current}"
        fail(f"pgworker schema is {state}, head is {head}: run `pgworker migrate`", 1)
    before, after = schema.upgrade(target)
    if before == after:
        typer.echo(f"pgworker schema already at head ({after})")
    else:
        typer.echo(f"pgworker schema upgraded: {before or 'none'} -> {after} (head)")


@migrate_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' to remove all.")],
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL from head down to REVISION instead.")
    ] = False,
    dsn: DsnOption = None,
) -> None:
    """Downgrade the pgworker schema to REVISION ('base' drops pgworker's tables)."""
    from pgworker import migrate as schema

    if sql:
        typer.echo(schema.migration_sql(revision, down=True), nl=False)
        return
    try:
        before, after = schema.downgrade(dsn_from(dsn), revision)
    except Exception as exc:
        if type(exc).__module__.startswith("alembic"):
            fail(f"cannot downgrade to {revision!r}: {exc}", 2)
        raise
    typer.echo(f"pgworker schema downgraded: {before or 'none'} -> {after or 'none'}")


@app.command("dsn")
def dsn_command(dsn: DsnOption = None) -> None:
    """Print the DSN in use (password masked), e.g. for `psql "$(pgworker dsn)"`."""
    typer.echo(mask_dsn(dsn_from(dsn)))


@embedded_app.command("stop")
def embedded_stop() -> None:
    """Stop the embedded PostgreSQL under $PGWORKER_HOME (its data stays)."""
    from pgworker.embedded import stop_server

    home = home_dir()
    if stop_server(home):
        typer.echo(f"stopped the embedded PostgreSQL in {home}")
    else:
        typer.echo(f"no embedded PostgreSQL running in {home}")


@embedded_app.command("status")
def embedded_status() -> None:
    """Say whether the embedded PostgreSQL under $PGWORKER_HOME runs, and whether it is in use."""
    from pgworker.embedded import server_dsn

    home = home_dir()
    running = server_dsn(home)
    source = resolve_dsn(None)
    typer.echo(
        f"embedded PostgreSQL in {home}: " + (f"running at {running}" if running else "stopped")
    )
    if source.dsn is not None:
        typer.echo(f"not in use: {source.origin} is set")
