"""Connections: the settings every pgworker connection carries, and one-line error texts."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from typing import Any, Final, LiteralString

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
        # Set from any thread (a worker that re-registers renames its connections); the owner
        # applies it at its next get(), on the connection it has or the next one it opens.
        self.application_name = application_name
        self._named = application_name  # what the open connection's session is called
        self._autocommit = autocommit
        self._conn: psycopg.Connection[Any] | None = None
        self._busy_since: float | None = None

    def get(self) -> psycopg.Connection[Any]:
        """The open connection, connecting first if needed (raises DatabaseUnavailable)."""
        conn = self._conn
        name = self.application_name
        if conn is None or conn.closed:
            conn = connect(self._dsn, application_name=name, autocommit=self._autocommit)
            self._conn = conn
        elif name != self._named:
            conn.execute("SELECT set_config('application_name', %s, false)", (name,))
        self._named = name
        return conn

    def execute(
        self, query: LiteralString, params: Any = None, *, prepare: bool | None = None
    ) -> psycopg.Cursor[Any]:
        """Run one statement, timed so that abort_if_stuck() can cut it off."""
        conn = self.get()
        self._busy_since = time.monotonic()
        try:
            return conn.execute(query, params, prepare=prepare)
        finally:
            self._busy_since = None

    def abort_if_stuck(self, limit: float) -> bool:
        """Shut the socket of a statement running longer than `limit` s; True if it did.

        Called from another thread. A server that stopped answering but whose kernel still
        acknowledges packets (a frozen process, a proxy that stopped forwarding) defeats TCP
        keepalives and tcp_user_timeout: only the client can decide it waited long enough.
        shutdown() wakes the waiting thread, whose statement fails like any lost connection.
        """
        since, conn = self._busy_since, self._conn
        if since is None or conn is None or time.monotonic() - since < limit:
            return False
        with contextlib.suppress(Exception):
            fd = os.dup(conn.pgconn.socket)
            with socket.socket(fileno=fd) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        self._busy_since = None
        return True

    def discard(self) -> None:
        """Close the connection after a failure; the next get() opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.discard()
