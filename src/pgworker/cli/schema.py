"""Schema and server commands: migrate, dsn, embedded."""

from __future__ import annotations

from typing import Annotated, Any

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


def _grant_option(kind: str, what: str) -> Any:
    return typer.Option(
        f"--grant-{kind}",
        metavar="ROLE",
        help=f"After migrating, grant ROLE {what} (repeatable; the role must exist).",
        show_default=False,
    )


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the schema is at head; change nothing.")
    ] = False,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql", help="Print the SQL of a full upgrade (and the grants) instead of running it."
        ),
    ] = False,
    grant_worker: Annotated[
        list[str] | None,
        _grant_option("worker", "what `pgworker work` needs: claim, finish, prune; no DDL"),
    ] = None,
    grant_enqueue: Annotated[
        list[str] | None,
        _grant_option(
            "enqueue", "what applications need: INSERT of a job's own columns, pgworker.enqueue()"
        ),
    ] = None,
    grant_readonly: Annotated[
        list[str] | None,
        _grant_option("readonly", "read access for dashboards, payloads excepted"),
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Create or upgrade the pgworker schema to head (safe to run again, and concurrently).

    Run it as the role that owns (or will own) the schema. --grant-worker, --grant-enqueue
    and --grant-readonly then grant other roles what they need and nothing more.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pgworker import migrate as schema
    from pgworker import roles
    from pgworker.db import connect

    grants = [
        (kind, role)
        for kind, given in (
            ("worker", grant_worker),
            ("enqueue", grant_enqueue),
            ("readonly", grant_readonly),
        )
        for role in given or ()
    ]
    for _, role in grants:
        roles.check_role_name(role)  # before anything runs: a typo changes nothing
    if sql:
        if check:
            fail("--sql and --check cannot be combined", 2)
        typer.echo(schema.migration_sql("head"), nl=False)
        typer.echo(roles.grant_sql(grants), nl=False)
        return
    if check and grants:
        fail("--check and --grant-* cannot be combined", 2)
    target = dsn_from(dsn)
    head = schema.head_revision()
    if check:
        with connect(target, application_name="pgworker:migrate") as conn:
            current = schema.current_revision(conn)
        if current == head:
            typer.echo(f"pgworker schema is at head ({head})")
            return
        state = "not installed" if current is None else f"at {current}"
        fail(f"pgworker schema is {state}, head is {head}: run `pgworker migrate`", 1)
    if grants:
        with connect(target, application_name="pgworker:migrate") as conn:
            roles.require_roles(conn, [role for _, role in grants])
    before, after = schema.upgrade(target)
    if before == after:
        typer.echo(f"pgworker schema already at head ({after})")
    else:
        typer.echo(f"pgworker schema upgraded: {before or 'none'} -> {after} (head)")
    if grants:
        with connect(target, application_name="pgworker:migrate") as conn:
            roles.grant(conn, grants)
        for kind, role in grants:
            typer.echo(f"granted the {kind} privileges to role {role}")


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
