"""Connections: the settings every pgworker connection carries, and one-line error texts."""

from __future__ import annotations

from typing import Any, Final

import psycopg
import psycopg.conninfo

from pgworker.config import first_line
from pgworker.errors import DatabaseUnavailable

CONNECT_TIMEOUT: Final = 10
# A dead peer that sends no reset (a pulled cable, a dropped VM) is noticed within ~30 s:
# unacknowledged data gives up after tcp_user_timeout, an idle socket after
# keepalives_idle + keepalives_count x keepalives_interval. Unix sockets ignore these.
TCP_SETTINGS: Final[dict[str, Any]] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def connection_kwargs(dsn: str, application_name: str) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect(): ours, unless the DSN sets the same key."""
    given = psycopg.conninfo.conninfo_to_dict(dsn)
    ours: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": application_name,
        **TCP_SETTINGS,
    }
    return {key: value for key, value in ours.items() if key not in given}


def connect(
    dsn: str, *, application_name: str = "pgworker", autocommit: bool = True
) -> psycopg.Connection[Any]:
    """Open one connection, turning a failure into DatabaseUnavailable with a one-line reason."""
    try:
        return psycopg.connect(
            dsn, autocommit=autocommit, **connection_kwargs(dsn, application_name)
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {describe_error(exc)}") from None


def describe_error(exc: BaseException) -> str:
    """One line about a database error; libpq never puts the password in its messages."""
    text = first_line(str(exc)) or type(exc).__name__
    return text.removeprefix("connection failed: ")
