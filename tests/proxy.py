"""TCP proxies to PostgreSQL for tests: one a test can take down, bring back and blackhole
(a server restart, a network cut, a partition), one that drops notifications as a
transaction-mode pooler does. Both work in front of any server, a shared one included.
"""

from __future__ import annotations

import contextlib
import socket
import struct
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


# Behind PgBouncer in transaction mode a LISTEN succeeds, but the server connection it ran on
# goes back to the pool, and the client never hears a NOTIFY. NotificationDroppingProxy
# reproduces that from the client's side: every message passes, except NotificationResponse
# ('A'). Clients must connect with sslmode=disable and gssencmode=disable (the proxy parses
# the server's messages, which an encryption handshake would hide).


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


class Proxy:
    """Forwards 127.0.0.1:<port> to the server of `dsn`."""

    def __init__(self, dsn: str) -> None:
        self._family, self._address = _upstream_address(dsn)
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
