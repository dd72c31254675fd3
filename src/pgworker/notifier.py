"""Notifier: a LISTEN connection that wakes the claim loop the moment jobs are inserted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

import psycopg

from pgworker import queries
from pgworker.db import Backoff, DedicatedConnection, describe_error
from pgworker.logs import database_trouble

log = logging.getLogger("pgworker.notifier")

# How long one wait for notifications lasts before the stop flag is checked again.
_WAIT: Final = 0.5
# How often the idle LISTEN connection proves its server still answers.
_PING_EVERY: Final = 10.0


class Notifier:
    """Listens on pgworker_jobs and calls `wake` for notifications about the served queues;
    passes cancellation requests (pgworker_cancel) to `on_cancel`.

    After a lost connection it reconnects (capped backoff), LISTENs again and calls `wake`
    once, since notifications sent while it was away are lost.
    """

    def __init__(
        self,
        dsn: str,
        queues: Iterable[str],
        wake: Callable[[], None],
        *,
        application_name: str,
        on_cancel: Callable[[set[int]], int] | None = None,
    ) -> None:
        self._conn = DedicatedConnection(dsn, application_name=application_name)
        self._queues = frozenset(queues)
        self._wake = wake
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # test signal: set while LISTEN is active
        self.on_listen: list[Callable[[], None]] = []  # test signal: each (re)LISTEN

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pgworker-notifier", daemon=True)
        self._thread.start()

    @property
    def connection(self) -> DedicatedConnection:
        return self._conn

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * _WAIT + 1)
        self._conn.close()

    def _run(self) -> None:
        backoff = Backoff()
        lost = False
        while not self._stop.is_set():
            try:
                self._conn.execute(queries.LISTEN)
                conn = self._conn.get()
                self.listening.set()
                for callback in self.on_listen:
                    callback()
                if lost:
                    log.info("listening again")
                    lost = False
                self._wake()  # whatever was notified while not listening
                backoff.reset()
                self._listen(conn)
            except Exception as exc:
                self.listening.clear()
                self._conn.discard()
                lost = True
                allowed, held = database_trouble.allow("database")
                if allowed:
                    log.warning(
                        f"lost the database, reconnecting: {describe_error(exc)}",
                        extra={"count": held or None},
                    )
                self._stop.wait(backoff.next_delay())

    def _listen(self, conn: psycopg.Connection[object]) -> None:
        queues = self._queues
        next_ping = time.monotonic() + _PING_EVERY
        while not self._stop.is_set():
            if time.monotonic() >= next_ping:
                self._conn.execute(queries.PING)
                next_ping = time.monotonic() + _PING_EVERY
            for note in conn.notifies(timeout=_WAIT):
                if note.channel == "pgworker_cancel":
                    if self._on_cancel is not None and note.payload.isdigit():
                        self._on_cancel({int(note.payload)})
                elif not note.payload or note.payload in queues:
                    self._wake()
