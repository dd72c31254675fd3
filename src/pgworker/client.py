"""Client: enqueue jobs one at a time or in bulk, on its own pool or in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, LiteralString, Self

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from pgworker import queries
from pgworker.config import DEFAULT_QUEUE, database_dsn
from pgworker.db import connection_kwargs, describe_error
from pgworker.errors import DatabaseUnavailable
from pgworker.jobs import check_name, encode_payload

# Rows per write() during COPY: large enough to amortise the call, small enough to stream.
_COPY_CHUNK = 2000


class Client:
    """Enqueues jobs through a small connection pool, or on a connection the caller passes."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
    ) -> None:
        self._dsn = database_dsn(dsn)
        self._pool: ConnectionPool[Any] | None = None
        self._owns_pool = True
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout

    @classmethod
    def from_pool(cls, pool: ConnectionPool[Any]) -> Self:
        """A client that borrows connections from an existing pool and never closes it."""
        client = cls.__new__(cls)
        client._dsn = ""
        client._pool = pool
        client._owns_pool = False
        client._min_size = pool.min_size
        client._max_size = pool.max_size
        client._timeout = pool.timeout
        return client

    def _get_pool(self) -> ConnectionPool[Any]:
        if self._pool is None:
            self._pool = ConnectionPool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                # Autocommit: one round trip per enqueue instead of BEGIN, INSERT, COMMIT.
                kwargs={"autocommit": True, **connection_kwargs(self._dsn, "pgworker:client")},
                name="pgworker-client",
                open=True,
            )
        return self._pool

    @contextmanager
    def _connection(
        self, conn: psycopg.Connection[Any] | None
    ) -> Iterator[psycopg.Connection[Any]]:
        if conn is not None:
            # The caller's connection: their transaction, their commit or rollback.
            yield conn
            return
        try:
            with self._get_pool().connection() as pooled:
                yield pooled
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection: {describe_error(exc)}") from None

    def enqueue(
        self,
        task: str,
        payload: Any = None,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        run_after: datetime | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        dedup_key: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> int | None:
        """Enqueue one job and return its id, or None when a live job has the same dedup_key.

        With `conn`, the insert joins that connection's transaction: rolled back, no job.
        """
        statement: LiteralString = queries.ENQUEUE_JOB
        params: tuple[Any, ...] = (
            check_name("task", task),
            encode_payload(payload),
            check_name("queue", queue),
            _priority(priority),
        )
        if run_after is not None or delay or max_attempts is not None or dedup_key is not None:
            statement = queries.ENQUEUE_JOB_WITH_OPTIONS
            params += (run_after, _delay(run_after, delay), max_attempts, _dedup_key(dedup_key))
        with self._connection(conn) as connection, _refusals():
            row = connection.execute(statement, params).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def enqueue_many(
        self,
        task: str,
        payloads: Iterable[Any],
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        run_after: datetime | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> int:
        """Enqueue one job per payload through COPY, in one transaction; returns the count.

        COPY cannot skip conflicts, so bulk jobs carry no dedup_key: use enqueue() for those.
        """
        check_name("task", task)
        check_name("queue", queue)
        _priority(priority)
        seconds = _delay(run_after, delay)
        max_text = "\\N" if max_attempts is None else str(int(max_attempts))
        prefix = f"{task}\t{queue}\t"
        count = 0
        with self._connection(conn) as connection, _refusals():
            if run_after is None and seconds:
                row = connection.execute(queries.DB_TIME_AFTER, {"delay": seconds}).fetchone()
                assert row is not None
                run_after = row[0]
            suffix = f"\t{int(priority)}\t{max_text}"
            statement = queries.COPY_JOBS
            if run_after is not None:
                suffix += f"\t{run_after.isoformat()}"
                statement = queries.COPY_SCHEDULED_JOBS
            suffix += "\n"
            # One COPY statement is atomic on its own; on the caller's connection it joins
            # their transaction (transaction() here would commit it).
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                lines: list[str] = []
                for payload in payloads:
                    # COPY text format: JSON text has no raw tabs or newlines, so the
                    # backslash is the only character to escape.
                    text = encode_payload(payload).replace("\\", "\\\\")
                    lines.append(prefix + text + suffix)
                    if len(lines) >= _COPY_CHUNK:
                        copy.write("".join(lines))
                        count += len(lines)
                        lines.clear()
                if lines:
                    copy.write("".join(lines))
                    count += len(lines)
        return count

    def close(self) -> None:
        """Close the pool this client opened (a borrowed pool is left open)."""
        if self._pool is not None and self._owns_pool:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _delay(run_after: datetime | None, delay: float | None) -> float:
    if run_after is not None and delay is not None:
        raise ValueError("pass run_after or delay, not both")
    if delay is not None and delay < 0:
        raise ValueError("delay must be >= 0")
    return float(delay or 0.0)


def _priority(priority: int) -> int:
    # The column is a smallint; the SQL function says the same, but COPY would not.
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int, not {type(priority).__name__}")
    if not -32768 <= priority <= 32767:
        raise ValueError(f"priority {priority} is out of range: use -32768 to 32767")
    return priority


def _dedup_key(dedup_key: str | None) -> str | None:
    # Any text is a fine key (it is bound, never interpreted); only its length is checked, by
    # jobs_dedup_key_length. NUL is the one character PostgreSQL text cannot hold.
    if dedup_key is None:
        return None
    if not isinstance(dedup_key, str):
        raise ValueError(f"dedup_key must be a str, not {type(dedup_key).__name__}")
    if "\x00" in dedup_key:
        raise ValueError("dedup_key contains a NUL character, which PostgreSQL cannot store")
    return dedup_key


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn the schema's refusals (CHECKs, pgworker.enqueue()'s checks) into ValueError."""
    try:
        yield
    except psycopg.errors.CheckViolation as exc:
        name = exc.diag.constraint_name or "a CHECK constraint"
        raise ValueError(f"job refused by {name}: {describe_error(exc)}") from exc
    except (
        psycopg.errors.NumericValueOutOfRange,
        psycopg.errors.InvalidParameterValue,
        psycopg.errors.NotNullViolation,
    ) as exc:
        raise ValueError(f"job refused: {describe_error(exc)}") from exc
