"""The typer application and what every command shares: --dsn, output helpers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from pgworker.config import database_dsn, env_name
from pgworker.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

app = typer.Typer(
    name="pgworker",
    help="A background job queue for Python built on PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="PostgreSQL connection string. Default: $PGWORKER_DSN, then $DATABASE_URL, "
        "then the embedded server under $PGWORKER_HOME (./.pgworker).",
        show_default=False,
    ),
]


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")
]

StaleAfterOption = Annotated[
    float,
    typer.Option(
        "--stale-after",
        help="Seconds without a heartbeat before a worker counts as lost.",
        envvar=env_name("--stale-after"),
        min=0.01,
    ),
]


def dsn_from(flag: str | None) -> str:
    """The DSN a command uses, starting the embedded server when none is configured."""
    return database_dsn(flag)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit: 2 for usage errors, 1 for runtime failures."""
    print(f"pgworker: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


@contextmanager
def admin_connection(dsn: str | None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection for an operator command; a ValueError raised by the input
    checks inside becomes a usage error (exit 2)."""
    from pgworker.db import connect

    target = dsn_from(dsn)
    try:
        with connect(target, application_name="pgworker:cli") as conn:
            yield conn
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
