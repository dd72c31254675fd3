"""The typer application and what every command shares: --dsn, output helpers."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

from pgworker.config import database_dsn

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


def dsn_from(flag: str | None) -> str:
    """The DSN a command uses, starting the embedded server when none is configured."""
    return database_dsn(flag)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit: 2 for usage errors, 1 for runtime failures."""
    print(f"pgworker: error: {message}", file=sys.stderr)
    raise typer.Exit(code)
