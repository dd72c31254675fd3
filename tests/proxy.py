"""A TCP proxy to PostgreSQL that drops notifications, as a transaction-mode pooler does.

Behind PgBouncer in transaction mode a LISTEN succeeds, but the server connection it ran on
goes back to the pool, and the client never hears a NOTIFY. This proxy reproduces that
from the client's side: every message passes, except NotificationResponse ('A').
Clients must connect with sslmode=disable and gssencmode=disable (the proxy parses the
server's messages, which an encryption handshake would hide).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg.conninfo


def _upstream_address(dsn: str) -> tuple[int, Any]:
    """(address family, address) of the server a DSN points at (TCP or a Unix socket)."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class NotificationDroppingProxy:
    """Listens on 127.0.0.1 and forwards to the server of `dsn`, dropping notifications."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._family, self._address = _upstream_address(dsn)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self.dropped = 0

    def dsn(self) -> str:
        """The DSN of the same database, through this proxy."""
        return psycopg.conninfo.make_conninfo(
            self._dsn,
            host="127.0.0.1",
            port=str(self.port),
            sslmode="disable",
            gssencmode="disable",
        )

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                server.connect(self._address)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._filter, args=(server, client), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def _filter(self, source: socket.socket, target: socket.socket) -> None:
        """Forward the server's messages (type byte, int32 length, body), bar 'A' ones."""
        with contextlib.suppress(OSError):
            for kind, message in _messages(source):
                if kind == b"A":
                    self.dropped += 1
                    continue
                target.sendall(message)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _messages(sock: socket.socket) -> Iterator[tuple[bytes, bytes]]:
    buffer = b""
    while True:
        while len(buffer) >= 5:
            length = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 1 + length:
                break
            yield buffer[:1], buffer[: 1 + length]
            buffer = buffer[1 + length :]
        data = sock.recv(65536)
        if not data:
            return
        buffer += data
