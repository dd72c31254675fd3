"""Worker: registers, claims jobs in batches, runs them on threads, and shuts down gracefully."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from types import FrameType
from typing import Any, Final, LiteralString, cast

from psycopg import sql

from pgworker import queries
from pgworker.completer import Completer, Ending
from pgworker.config import WorkerConfig
from pgworker.db import Backoff, DedicatedConnection, describe_error
from pgworker.executor import Executor, Row
from pgworker.logs import database_trouble
from pgworker.maintenance import Heartbeat, Maintenance, Pruner, Rescuer, Watchdog
from pgworker.migrate import require_schema
from pgworker.notifier import Notifier
from pgworker.redaction import Redactor
from pgworker.tasks import TaskRegistry

log = logging.getLogger("pgworker.worker")

# Completions still unwritten at shutdown get this long past the shutdown timeout.
FLUSH_GRACE: Final = 10.0


def _render(template: LiteralString, size: int, pickup: bool) -> LiteralString:
    # A constant with a literal number in it: still a literal string in spirit.
    extra = sql.SQL(queries.CLAIM_PICKUP_COLUMN if pickup else "")
    return sql.SQL(template).format(limit=sql.Literal(size), pickup=extra).as_string(None)


def claim_statements(template: LiteralString, *, pickup: bool = False) -> dict[int, LiteralString]:
    """The claim statement with each of CLAIM_SIZES as its literal LIMIT.

    With `pickup`, each row carries a 7th column: seconds from due to claimed.
    """
    return {size: _render(template, size, pickup) for size in queries.CLAIM_SIZES}


def claim_size_below(wanted: int) -> int:
    """The largest of CLAIM_SIZES not above `wanted` (at least the smallest)."""
    best = queries.CLAIM_SIZES[0]
    for size in queries.CLAIM_SIZES:
        if size > wanted:
            break
        best = size
    return best


class Worker:
    """Claims due jobs of its queues and runs them with the registry's handlers until stopped.

    `redact`, a `str -> str` function, rewrites every error text before it is stored in
    `last_error` and `errors` or logged (see pgworker.redaction).

    `metrics`, when given, is called on the claim loop and handler threads: `claimed(rows)`,
    `job_ended(task, queue, status, seconds)`, and if it has them `picked_up(rows)` (claimed
    rows with their pickup latency as a 7th column), `rescued(rows)` and `pruned(count)`.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        dsn: str,
        config: WorkerConfig | None = None,
        *,
        redact: Redactor | None = None,
        metrics: Any = None,
    ) -> None:
        self.registry = registry
        self.config = config or WorkerConfig()
        self.queues: tuple[str, ...] = self.config.queues or tuple(registry.queues())
        self._dsn = dsn
        self._metrics = metrics
        self.worker_id = str(uuid.uuid4())
        self._application_name = f"pgworker:{self.worker_id}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.started = threading.Event()  # test signal: registered, threads running
        self._declared_dead = False
        self._signals = 0
        self._thread: threading.Thread | None = None
        self.exit_code: int | None = None

        # Jobs this worker claimed whose outcome is not written yet: the claim thread adds,
        # the completer removes. Set operations are atomic under the GIL.
        self._claimed_ids: set[int] = set()
        self._claim_lock = threading.Lock()  # one claim at a time on the claim connection
        self._reconcile = False
        self.completer = Completer(
            dsn,
            application_name=self._application_name,
            on_written=self._on_written,
            on_dropped=self._on_dropped,
        )
        self.heartbeat = Heartbeat(
            interval=self.config.heartbeat_interval, stale_after=self.config.stale_after
        )
        self.executor = Executor(
            registry,
            self.completer,
            concurrency=self.config.concurrency,
            prefetch=self.config.effective_prefetch,
            wake=self._wake,
            redact=redact,
            log_payloads=self.config.log_payloads,
            on_job_end=metrics.job_ended if metrics is not None else None,
            heartbeat=self.heartbeat,
        )
        self.executor.worker_id = self.worker_id
        self.executor.on_given_back = self._on_given_back
        self.notifier: Notifier | None = None
        if self.config.listen:
            self.notifier = Notifier(
                dsn,
                self.queues,
                self._on_notify,
                application_name=self._application_name,
                on_cancel=self.executor.cancel,
            )
        self.maintenance = Maintenance(
            dsn,
            application_name=self._application_name,
            heartbeat=self.heartbeat,
            rescuer=Rescuer(stale_after=self.config.stale_after),
            rescue_interval=self.config.rescue_interval,
            worker_id=lambda: self.worker_id,
            busy=self.executor.busy,
            on_declared_dead=self._on_declared_dead,
            on_cancel=self.executor.cancel,
            pruner=Pruner(retention=self.config.retention) if self.config.prune else None,
            prune_interval=self.config.prune_interval,
        )
        self._picked_up = getattr(metrics, "picked_up", None)
        for hook, callbacks in (
            (getattr(metrics, "rescued", None), self.maintenance.on_rescue),
            (getattr(metrics, "pruned", None), self.maintenance.on_prune),
        ):
            if hook is not None:
                callbacks.append(hook)
        self.watchdog = Watchdog(self._watch)
        self._claim_conn = DedicatedConnection(dsn, application_name=self._application_name)
        self._attached: list[DedicatedConnection] = []  # see attach()
        pickup = self._picked_up is not None
        if len(self.queues) == 1:
            self._claims = claim_statements(queries.CLAIM_JOBS_TEMPLATE, pickup=pickup)
            self._claim_params: dict[str, Any] = {"queue": self.queues[0]}
        else:
            self._claims = claim_statements(queries.CLAIM_JOBS_MULTI_TEMPLATE, pickup=pickup)
            self._claim_params = {"queues": list(self.queues)}
        self.claims = 0  # claim statements run (a test signal)

    # --- lifecycle --------------------------------------------------------------------------

    def run(self, *, install_signals: bool = False) -> int:
        """Run until stopped (SIGTERM/SIGINT when `install_signals`); returns the exit code."""
        try:
            self._register()
        except BaseException:
            self._claim_conn.close()
            self._stopped.set()
            raise
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.completer.start()
        self.executor.start()
        if self.notifier is not None:
            self.notifier.start()
        self.maintenance.start()
        self.watchdog.start()
        self.started.set()
        log.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "queue": ",".join(self.queues),
                "count": len(self.registry),
            },
        )
        try:
            self._claim_loop()
        finally:
            self.exit_code = self._shutdown()
            self._stopped.set()
        return self.exit_code

    def start(self) -> None:
        """Run in a background thread (for tests and embedding); stop() ends it."""
        self._thread = threading.Thread(target=self._run_quietly, name="pgworker-main", daemon=True)
        self._thread.start()

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("worker failed")
            self._stopped.set()

    def request_stop(self) -> None:
        """Stop claiming and begin the graceful shutdown."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float | None = None) -> int | None:
        """Request a stop and wait for the shutdown to finish; returns the exit code."""
        self.request_stop()
        limit = timeout if timeout is not None else self.config.shutdown_timeout + FLUSH_GRACE + 5
        self._stopped.wait(limit)
        if self._thread is not None:
            self._thread.join(timeout=1)
        return self.exit_code

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info(
                f"{name}: stopping; running jobs get {self.config.shutdown_timeout:g} s,"
                " send it again to exit at once"
            )
            self.request_stop()
            return
        # A second signal: exit now. Unfinished jobs stay 'processing' until the rescue.
        print(f"pgworker: second {name}, exiting at once", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def _register(self) -> None:
        require_schema(self._claim_conn.get())
        self._insert_worker_row()

    def _insert_worker_row(self) -> None:
        sent = time.monotonic()
        self._claim_conn.execute(
            queries.REGISTER_WORKER,
            {
                "id": self.worker_id,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "queues": list(self.queues),
                "tasks": self.registry.names(),
                "concurrency": self.config.concurrency,
            },
        )
        self.heartbeat.confirmed(sent)

    def _on_dropped(self) -> None:
        self._reconcile = True
        self._wake.set()

    def _on_given_back(self, job_ids: list[int]) -> None:
        self._claimed_ids.difference_update(job_ids)

    def _on_written(self, job_ids: list[int]) -> None:
        self._claimed_ids.difference_update(job_ids)
        self._wake.set()  # the claim loop may be waiting for room

    def connections(self) -> list[DedicatedConnection]:
        """Every connection this worker holds: its whole budget on the server."""
        held = [self._claim_conn, self.completer.connection, self.maintenance.connection]
        if self.notifier is not None:
            held.append(self.notifier.connection)
        return held + self._attached

    def attach(self, connection: DedicatedConnection) -> None:
        """Hold `connection` (the metrics scrape's) as this worker's own: named after its
        worker id, renamed when that changes, cut by the --db-timeout watchdog."""
        connection.application_name = self._application_name
        self._attached.append(connection)

    def _watch(self) -> int:
        """The watchdog's round: attempts past their timeout, statements past the deadline."""
        deadline = self.config.db_timeout
        for connection in self.connections():
            if connection.abort_if_stuck(deadline):
                log.warning(
                    f"a database call took over {deadline:g} s: cut its connection, reconnecting"
                )
        return self.executor.check_timeouts()

    def _reclaim_lost(self) -> int:
        """Give back jobs the database says this worker holds but it never received.

        A claim whose connection dropped after the commit leaves its jobs 'processing' under
        this worker's id, unseen; the rescue never takes them, since this worker is alive.
        """
        rows = self._claim_conn.execute(queries.HELD_JOBS, {"id": self.worker_id}).fetchall()
        lost = [row for row in rows if row[0] not in self._claimed_ids]
        for job_id, _task, attempts, _max_attempts in lost:
            # Never run here: the attempt is refunded, and the write never retried (if it
            # fails, the next reconciliation finds the job again).
            self.completer.submit(
                Ending(job_id, attempts, self.worker_id, "pending", refund=1, reconcile=True)
            )
        if lost:
            log.warning(
                "a claim's reply was lost with its connection: gave its jobs back",
                extra={"count": len(lost)},
            )
        return len(lost)

    def _on_declared_dead(self) -> None:
        self._declared_dead = True
        self._wake.set()

    def _reregister(self) -> None:
        """Another worker declared this one dead and rescued its jobs: carry on under a new id.

        Jobs still running under the old id finish, but their writes are fenced off; buffered
        ones are skipped. Claims under the old id stopped already (the claim checks the row).
        """
        old = self.worker_id
        self.worker_id = str(uuid.uuid4())
        self.executor.worker_id = self.worker_id
        self._claimed_ids.clear()  # what the old id held was rescued: not ours any more
        self._application_name = f"pgworker:{self.worker_id}"
        for connection in self.connections():
            connection.application_name = self._application_name
        self._declared_dead = False
        log.warning(
            "this worker was declared dead by another (no heartbeat for --stale-after):"
            " its jobs were rescued; continuing under a new worker id",
            extra={"worker_id": self.worker_id, "error": f"old worker id {old}"},
        )
        self._insert_worker_row()

    # --- the claim loop ---------------------------------------------------------------------

    def _claim_loop(self) -> None:
        wake = self._wake
        poll = self.config.poll_interval
        backoff = Backoff()
        failing = False
        while not self._stopping.is_set():
            wake.clear()
            try:
                if self._declared_dead:
                    self._reregister()
                if self._reconcile:
                    self._reclaim_lost()
                    self._reconcile = False
                with self._claim_lock:
                    more = self._claim_and_dispatch()
                if more:
                    continue
                backoff.reset()
                if failing:
                    failing = False
                    log.info("claiming again: the database answers")
            except Exception as exc:
                self._claim_conn.discard()
                failing = True
                self._reconcile = True  # a claim may have committed unseen
                allowed, held_back = database_trouble.allow("database")
                if allowed:
                    log.warning(
                        f"cannot claim, retrying: {describe_error(exc)}",
                        extra={"count": held_back or None},
                    )
                self._stopping.wait(backoff.next_delay())
                continue
            wake.wait(poll)

    def _claim_and_dispatch(self) -> bool:
        """Claim what there is room for and hand it to the threads; True if more may be due.

        The caller holds _claim_lock.
        """
        executor = self.executor
        size = executor.claim_size()
        if size <= 0:
            return False
        wanted = claim_size_below(size)
        rows = self.claim(wanted)
        executor.drained = len(rows) < wanted
        if rows:
            executor.dispatch(rows, self.worker_id)
        return not executor.drained

    def _on_notify(self) -> None:
        """Jobs were inserted into a served queue.

        An idle worker claims them right here, on the notifier's thread: one thread hand-off
        less between the insert's commit and the handler (idle pickup p50 1.25 -> ~1.0 ms on
        2 cores). A busy worker only wakes its claim loop, which is claiming anyway.
        """
        idle = self.executor.drained and not (
            self._stopping.is_set() or self._declared_dead or self._reconcile
        )
        if not idle or not self._claim_lock.acquire(blocking=False):
            self._wake.set()
            return
        try:
            if self._claim_and_dispatch():
                self._wake.set()
        except Exception:
            # The claim loop owns connection trouble: it reconnects, logs and reconciles.
            self._claim_conn.discard()
            self._reconcile = True
            self._wake.set()
        finally:
            self._claim_lock.release()

    def claim(self, size: int) -> list[Row]:
        """Claim up to `size` due jobs (one of CLAIM_SIZES) for this worker."""
        params = {**self._claim_params, "worker_id": self.worker_id}
        rows = cast(list[Row], self._claim_conn.execute(self._claims[size], params).fetchall())
        self._claimed_ids.update(row[0] for row in rows)
        self.claims += 1
        if self._metrics is not None:
            if self._picked_up is not None and rows:
                self._picked_up(rows)
                rows = [row[:6] for row in rows]  # the pickup column, read above
            self._metrics.claimed(rows)
        return rows

    # --- shutdown ---------------------------------------------------------------------------

    def _shutdown(self) -> int:
        executor = self.executor
        executor.stopping = True
        buffered = executor.hand_back_buffered()
        deadline = time.monotonic() + self.config.shutdown_timeout
        running = executor.busy()
        if running or buffered:
            log.info(
                "waiting for running jobs",
                extra={"count": running, "error": f"{buffered} buffered jobs handed back"},
            )
        while executor.busy() and time.monotonic() < deadline:
            self._stopped.wait(0.02)
        abandoned = executor.hand_back_running("interrupted by shutdown")
        if abandoned:
            log.warning("shutdown timeout: running jobs handed back", extra={"count": abandoned})
        executor.stop_threads()
        self.watchdog.stop()
        flushed = self.completer.stop(timeout=FLUSH_GRACE)
        if self.notifier is not None:
            self.notifier.stop()
        self.maintenance.stop()
        code = 0
        if not flushed:
            log.error(
                "could not record every outcome before exiting; those jobs will be rescued",
                extra={"count": self.completer.pending},
            )
            code = 1
        try:
            self._claim_conn.execute(queries.DEREGISTER_WORKER, {"id": self.worker_id})
        except Exception as exc:
            log.warning(f"could not remove the worker row: {describe_error(exc)}")
        self._claim_conn.close()
        log.info("worker stopped", extra={"worker_id": self.worker_id})
        return code
