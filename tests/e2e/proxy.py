"""A TCP proxy in front of PostgreSQL that tests can take down, bring back and blackhole.

Workers connect through it, so a test can do to them what a server restart, a network cut
or a partition does, on any server (a shared one included) without touching the server.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Any

import psycopg.conninfo


def _target(dsn: str) -> tuple[int, Any]:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class Proxy:
    """Forwards 127.0.0.1:<port> to the server of `dsn`."""

    def __init__(self, dsn: str) -> None:
        self._family, self._address = _target(dsn)
        self._dsn = dsn
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._listener: socket.socket | None = None
        self.port = 0
        self.up()

    def dsn(self) -> str:
        """The DSN of the same database, through this proxy."""
        return psycopg.conninfo.make_conninfo(self._dsn, host="127.0.0.1", port=str(self.port))

    # --- what tests do ----------------------------------------------------------------------

    def down(self) -> None:
        """The server goes away: every connection is reset, new ones are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.cut()

    def up(self) -> None:
        """The server is back on the same port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Reset every open connection (as a crashed or restarted server does)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def blackhole(self) -> None:
        """Stop forwarding anything, keeping every socket open: packets simply vanish."""
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.down()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # --- plumbing ---------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.socket(self._family, socket.SOCK_STREAM)
                server.connect(self._address)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _reset(client)
                    _reset(server)
                    return
                self._pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Drop a connection as a dying server does.

    shutdown() first: close() alone does not wake a thread blocked in recv() on the socket,
    which would keep the connection open, silently, behind the test's back.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
