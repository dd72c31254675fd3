"""Completer: writes the outcomes of attempts in batches, one statement per kind and batch."""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from pgworker import queries
from pgworker.db import Backoff, DedicatedConnection, describe_error, is_connection_error
from pgworker.logs import RateLimiter, database_trouble

log = logging.getLogger("pgworker.completer")

# A success is a plain tuple, the hot path: (job_id, attempts, worker_id).
Success = tuple[int, int, str]


class Ending(NamedTuple):
    """Any other end of an attempt: a retry, a failure, a reschedule or a hand-back."""

    job_id: int
    attempts: int
    worker_id: str
    status: str  # 'pending', 'failed' or 'cancelled'
    delay: float = 0.0  # seconds before a 'pending' job may run again
    refund: int = 0  # 1 takes the attempt back (a job that never ran, or ran into shutdown)
    # A live worker's give-back of a job it never started. Never retried: if the write fails
    # its outcome is unknown, and a retry could refund a later claim of the same job by the
    # same worker. The worker's reconciliation finds such a job still held and gives it back.
    reconcile: bool = False
    max_attempts: int | None = None  # replaces the job's max_attempts when set
    error: str | None = None  # becomes last_error
    summary: str | None = None  # appended to the error history


Outcome = Success | Ending

# Idle wait between checks of the stop flag; outcomes wake the thread at once.
_IDLE_WAIT: Final = 0.5


class Completer:
    """Buffers outcomes from handler threads and writes them from one thread, in batches.

    The batch is whatever accumulated while the previous write ran, so a busy worker writes
    hundreds of jobs per statement and an idle one writes each job at once. Writes that fail
    on a lost connection are kept and retried until the database answers: they are fenced,
    so a retry can never change a job that has moved on.
    """

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        on_written: Callable[[list[int]], None] | None = None,
        on_dropped: Callable[[], None] | None = None,
    ) -> None:
        self._on_written = on_written  # gets the job ids of every write that went through
        self._on_dropped = on_dropped  # told when give-backs were dropped after a failure
        self._conn = DedicatedConnection(dsn, application_name=application_name)
        # Outcomes, flush markers (an Event set once everything before it is written), and
        # None to wake the thread for stopping.
        self._queue: queue.SimpleQueue[Outcome | threading.Event | None] = queue.SimpleQueue()
        self._held: list[Outcome] = []  # taken from the queue, not yet written
        self._markers: list[threading.Event] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._limiter = RateLimiter()
        self._retrying = False  # the last write failed: its outcome is unknown
        self._count_lock = threading.Lock()
        self._pending = 0
        # Test signal: called with (statement, expected rows, changed rows) on a fenced write.
        self.on_fenced: list[Callable[[str, int, int], None]] = []

    def submit(self, outcome: Outcome) -> None:
        """Queue one outcome for writing; called from handler threads."""
        with self._count_lock:
            self._pending += 1
        self._queue.put(outcome)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pgworker-completer", daemon=True)
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until every outcome submitted before this call is written; False on timeout."""
        marker = threading.Event()
        self._queue.put(marker)
        return marker.wait(timeout)

    def stop(self, timeout: float) -> bool:
        """Write everything submitted so far, waiting up to `timeout` s; True if all written."""
        flushed = self.flush(timeout)
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._conn.close()
        return flushed

    @property
    def pending(self) -> int:
        """Outcomes submitted and not yet written: their jobs are still 'processing'."""
        return self._pending

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            if not self._held and not self._markers:
                try:
                    self._take(self._queue.get(timeout=_IDLE_WAIT))
                except queue.Empty:
                    continue
            self._drain()
            try:
                self.run_once()
            except Exception as exc:
                self._conn.discard()
                self._retrying = True
                self._log_failure(exc)
                self._stop.wait(backoff.next_delay())
                continue
            self._retrying = False
            backoff.reset()

    def _take(self, item: Outcome | threading.Event | None) -> None:
        if isinstance(item, threading.Event):
            self._markers.append(item)
        elif item is not None:
            self._held.append(item)

    def _drain(self) -> None:
        get = self._queue.get_nowait
        try:
            while len(self._held) < 10 * queries.COMPLETION_BATCH:
                self._take(get())
        except queue.Empty:
            pass

    def run_once(self) -> None:
        """Write every held outcome, then release the flush markers taken with them.

        On an exception the outcomes not yet written stay held for the next call.
        """
        held, self._held = self._held, []
        successes: defaultdict[str, list[Success]] = defaultdict(list)
        endings: defaultdict[str, list[Ending]] = defaultdict(list)
        for outcome in held:
            if isinstance(outcome, Ending):
                endings[outcome.worker_id].append(outcome)
            else:
                successes[outcome[2]].append(outcome)
        batches: list[tuple[str, str, list[Any]]] = []
        size = queries.COMPLETION_BATCH
        for worker_id, done in successes.items():
            batches += [
                ("complete", worker_id, done[i : i + size]) for i in range(0, len(done), size)
            ]
        for worker_id, ended in endings.items():
            batches += [("end", worker_id, ended[i : i + size]) for i in range(0, len(ended), size)]
        for index, (kind, worker_id, batch) in enumerate(batches):
            try:
                self._write(kind, worker_id, batch)
            except BaseException:
                unwritten = [o for _, _, rest in batches[index:] for o in rest]
                dropped = [o for o in unwritten if isinstance(o, Ending) and o.reconcile]
                if dropped:
                    unwritten = [
                        o for o in unwritten if not (isinstance(o, Ending) and o.reconcile)
                    ]
                    self._written([o.job_id for o in dropped])  # no longer waited for
                    if self._on_dropped is not None:
                        self._on_dropped()
                self._held = unwritten + self._held
                raise
        for marker in self._markers:
            marker.set()
        self._markers.clear()

    def _write(self, kind: str, worker_id: str, batch: list[Any]) -> None:
        conn = self._conn
        # prepare=False: each batch is planned with its real size. A prepared statement gets
        # a generic plan that believes one job is 'processing' (true whenever ANALYZE runs)
        # and scans all of them once per id: 300 ms a batch with 2,000 jobs in flight.
        if kind == "complete":
            cursor = conn.execute(
                queries.COMPLETE_JOBS,
                {
                    "ids": [o[0] for o in batch],
                    "attempts": [o[1] for o in batch],
                    "worker_id": worker_id,
                },
                prepare=False,
            )
            self._account("COMPLETE_JOBS", len(batch), cursor.rowcount)
            self._written([o[0] for o in batch])
            return
        cursor = conn.execute(
            queries.RETRY_OR_FAIL_JOBS,
            {
                "ids": [e.job_id for e in batch],
                "attempts": [e.attempts for e in batch],
                "statuses": [e.status for e in batch],
                "delays": [e.delay for e in batch],
                "refunds": [e.refund for e in batch],
                "max_attempts": [e.max_attempts for e in batch],
                "errors": [e.error for e in batch],
                "summaries": [e.summary for e in batch],
                "worker_id": worker_id,
            },
            prepare=False,
        )
        self._account("RETRY_OR_FAIL_JOBS", len(batch), cursor.rowcount)
        self._written([e.job_id for e in batch])

    def _written(self, job_ids: list[int]) -> None:
        with self._count_lock:
            self._pending -= len(job_ids)
        if self._on_written is not None:
            self._on_written(job_ids)

    def _account(self, statement: str, expected: int, changed: int) -> None:
        if changed < expected:
            missed = expected - changed
            allowed, held_back = self._limiter.allow("fenced", missed)
            if allowed and self._retrying:
                # The failed attempt may have committed before its connection dropped.
                log.info(
                    "outcomes already written before the connection dropped, or rescued",
                    extra={"count": missed + held_back},
                )
            elif allowed:
                log.warning(
                    "late write changed nothing: the jobs were rescued and belong to another claim",
                    extra={"count": missed + held_back},
                )
            for callback in self.on_fenced:
                callback(statement, expected, changed)

    @property
    def connection(self) -> DedicatedConnection:
        return self._conn

    def _log_failure(self, exc: BaseException) -> None:
        allowed, held_back = database_trouble.allow("database")
        if allowed:
            what = "lost the database" if is_connection_error(exc) else "write failed"
            log.warning(
                f"{what}: {len(self._held)} outcomes kept, retrying: {describe_error(exc)}",
                extra={"count": held_back or None},
            )
