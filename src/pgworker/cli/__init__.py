"""The `pgworker` command line: one line on stderr for every error, never a traceback."""

from __future__ import annotations

import sys

import psycopg
import psycopg.errors
import typer

from pgworker.cli import (  # noqa: F401 - registers the commands
    doctor,
    enqueue,
    jobs,
    prune,
    queues,
    schema,
    status,
    work,
)
from pgworker.cli.app import app
from pgworker.config import first_line
from pgworker.db import describe_error
from pgworker.errors import ConfigError, PgworkerError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit: 0 on success, 2 for usage errors, 1 for runtime failures."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="pgworker", standalone_mode=False)
    except ConfigError as exc:
        code = _error(str(exc), 2)
    except PgworkerError as exc:
        code = _error(str(exc), 1)
    except (
        psycopg.errors.UndefinedTable,
        psycopg.errors.UndefinedFunction,
        psycopg.errors.InvalidSchemaName,  # pgworker.enqueue() before the schema exists
    ) as exc:
        missing = "pgworker" in str(exc)
        message = "the pgworker schema is not installed: run `pgworker migrate`"
        code = _error(message if missing else describe_error(exc), 1)
    except psycopg.errors.InsufficientPrivilege as exc:
        message = f"{describe_error(exc)}: the database role lacks a privilege for this command"
        code = _error(message + " (see Security in the README)", 1)
    except psycopg.Error as exc:
        code = _error(describe_error(exc), 1)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        # click's UsageError and friends (typer may vendor click, so match by shape).
        exit_code = getattr(exc, "exit_code", None)
        if not hasattr(exc, "format_message") or not isinstance(exit_code, int):
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and exit_code == 2 else ""
        code = _error(first_line(exc.format_message()) + hint, exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str, code: int) -> int:
    print(f"pgworker: error: {message}", file=sys.stderr)
    return code
