"""Connections: the settings every pgworker connection carries, and one-line error texts."""

from __future__ import annotations

import contextlib
import random
from typing import Any, Final

import psycopg
import psycopg.conninfo
import psycopg.errors

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


def is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean "this connection is no good": lost, refused, read-only."""
    return isinstance(
        exc,
        psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction | psycopg.InterfaceError,
    )


class Backoff:
    """Capped exponential delays with jitter, for reconnecting after failures."""

    def __init__(self, *, initial: float = 0.05, maximum: float = 1.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The delay to wait now; the one after doubles, up to `maximum`."""
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class DedicatedConnection:
    """One connection a background loop keeps to itself, reopened after any failure.

    A pool adds nothing when each loop holds its connection for the life of the process, and
    psycopg_pool's reconnect delay doubles without a cap (1 s, 2 s, ... up to its
    reconnect_timeout, when it gives up): after a long outage a worker would sit idle for
    minutes. Here the loop decides, with Backoff's 1 s cap.
    """

    def __init__(self, dsn: str, *, application_name: str, autocommit: bool = True) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._autocommit = autocommit
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        """The open connection, connecting first if needed (raises DatabaseUnavailable)."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = connect(
                self._dsn, application_name=self._application_name, autocommit=self._autocommit
            )
            self._conn = conn
        return conn

    def discard(self) -> None:
        """Close the connection after a failure; the next get() opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.discard()
