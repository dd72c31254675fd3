"""Periodic services of a worker: heartbeat, rescue of lost workers' jobs, pruning of finished
jobs past their retention, and the watchdog."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import psycopg

from pgworker import queries
from pgworker.config import DEFAULT_PRUNE_INTERVAL, Retention
from pgworker.db import Backoff, DedicatedConnection, describe_error, is_connection_error
from pgworker.logs import RateLimiter, database_trouble

log = logging.getLogger("pgworker.maintenance")

WATCHDOG_INTERVAL: Final = 0.1
# A prune pass gives the thread back after this long (or half a heartbeat interval) and
# carries on at once, so a large backlog of old jobs never delays a heartbeat.
PRUNE_BUDGET: Final = 1.0

# A rescued job: (job_id, queue, new status, reason, task).
Rescued = tuple[int, str, str, str, str]


class Heartbeat:
    """Keeps this worker's row fresh, knows how long it has been healthy without a gap, and
    whether its claims can still be trusted to be its own."""

    def __init__(self, *, interval: float, stale_after: float) -> None:
        self.interval = interval
        self.stale_after = stale_after
        # A gap this long between two heartbeats (an outage, a paused process) starts the
        # healthy streak over: whoever could not heartbeat cannot judge who is dead.
        self.max_gap = max(2 * interval, stale_after / 2)
        self.healthy_since: float | None = None
        self.last_ok: float | None = None
        self.cancel_requests: set[int] = set()  # running jobs asked to stop, as last seen
        # When the last heartbeat that found this worker's row was sent (monotonic; the clock
        # runs on while the process is stopped). Another worker may declare this one dead
        # once its heartbeat_at is stale_after old, and heartbeat_at is never older than the
        # sending: until stale_after - interval after it, no claim of ours can have been
        # rescued, and a prefetched job may start.
        self.trust_for = stale_after - interval
        self._confirmed_at: float | None = None
        self._confirmed = threading.Condition()

    def run_once(self, conn: DedicatedConnection, worker_id: str, busy: int) -> bool:
        """Heartbeat once; False if this worker's row is gone (declared dead by another)."""
        sent = time.monotonic()
        row = conn.execute(queries.HEARTBEAT, {"id": worker_id, "busy": busy}).fetchone()
        self.cancel_requests = {
            job_id for (job_id,) in conn.execute(queries.CANCEL_REQUESTS, {"id": worker_id})
        }
        now = time.monotonic()
        if row is None:
            self.failed()
            self._confirmed_at = None
            return False
        self.confirmed(sent)
        if self.last_ok is None or now - self.last_ok > self.max_gap:
            self.healthy_since = now
        self.last_ok = now
        return True

    def failed(self) -> None:
        self.healthy_since = None
        self.last_ok = None

    def may_declare_dead(self) -> bool:
        """True once this worker has heartbeated without a gap for stale_after seconds."""
        since = self.healthy_since
        return since is not None and time.monotonic() - since >= self.stale_after

    def confirmed(self, sent: float) -> None:
        """This worker's row was found (or inserted) by a statement sent at `sent`."""
        with self._confirmed:
            self._confirmed_at = sent
            self._confirmed.notify_all()

    def claims_trusted(self) -> bool:
        """True while no claim of this worker can have been rescued by another."""
        at = self._confirmed_at
        return at is not None and time.monotonic() - at < self.trust_for

    def wait_trusted(self, timeout: float) -> bool:
        """Wait up to `timeout` for a heartbeat that makes claims_trusted() true again."""
        with self._confirmed:
            if not self.claims_trusted():
                self._confirmed.wait(timeout)
        return self.claims_trusted()


class Rescuer:
    """Puts jobs of lost workers back to pending (or failed when out of attempts)."""

    def __init__(self, *, stale_after: float) -> None:
        self.stale_after = stale_after

    def run_once(self, conn: DedicatedConnection, *, declare_dead: bool) -> list[Rescued]:
        """One pass; returns (job_id, queue, new status, reason, task) of every rescued job."""
        rescued: list[Rescued] = []
        while True:
            rows = conn.execute(
                queries.RESCUE_JOBS,
                {"declare_dead": declare_dead, "stale_after": self.stale_after},
            ).fetchall()
            rescued += rows
            if len(rows) < 1000:
                break
        woken = sorted({row[1] for row in rescued if row[2] == "pending"})
        if woken:
            conn.execute(queries.NOTIFY_QUEUES, {"queues": woken})
        return rescued


class Pruner:
    """Deletes finished jobs past their retention in bounded batches, one pruner at a time.

    Every worker runs one; the advisory lock in PRUNE_JOBS lets a single one delete at any
    moment, and SKIP LOCKED keeps it from waiting on anyone.
    """

    def __init__(self, *, retention: Retention, batch: int = queries.PRUNE_BATCH) -> None:
        self.retention = retention
        self.batch = batch

    def run_once(
        self, conn: DedicatedConnection | psycopg.Connection[Any], *, budget: float | None = None
    ) -> tuple[int, bool]:
        """Prune until nothing is due or `budget` seconds passed; returns (deleted, done)."""
        deadline = None if budget is None else time.monotonic() + budget
        deleted = 0
        for status, older_than in self.retention.items():
            while True:
                count = prune_batch(conn, status, older_than, self.batch)
                deleted += count
                if count < self.batch:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    return deleted, False
        return deleted, True


def prune_batch(
    conn: DedicatedConnection | psycopg.Connection[Any], status: str, older_than: float, batch: int
) -> int:
    """Delete one batch of `status` jobs finished more than `older_than` s ago; returns how many.

    Returns 0 while another session holds the pruners' lock.
    """
    cursor = conn.execute(
        queries.PRUNE_JOBS,
        {"status": status, "older_than": older_than, "batch": batch},
        prepare=False,
    )
    return int(cursor.rowcount)


class Maintenance:
    """One thread running the heartbeat, the rescuer and the pruner on their intervals."""

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str,
        heartbeat: Heartbeat,
        rescuer: Rescuer,
        rescue_interval: float,
        worker_id: Callable[[], str],
        busy: Callable[[], int],
        on_declared_dead: Callable[[], None],
        on_cancel: Callable[[set[int]], int],
        pruner: Pruner | None = None,
        prune_interval: float = DEFAULT_PRUNE_INTERVAL,
    ) -> None:
        self._conn = DedicatedConnection(dsn, application_name=application_name)
        self.heartbeat = heartbeat
        self.rescuer = rescuer
        self.rescue_interval = rescue_interval
        self._worker_id = worker_id
        self._busy = busy
        self._on_declared_dead = on_declared_dead
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limiter = RateLimiter()
        self.pruner = pruner
        self.prune_interval = prune_interval
        self.rescued_total = 0
        self.pruned_total = 0
        # Called with every non-empty rescue and prune (metrics and tests).
        self.on_rescue: list[Callable[[list[Rescued]], None]] = []
        self.on_prune: list[Callable[[int], None]] = []

    @property
    def connection(self) -> DedicatedConnection:
        return self._conn

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pgworker-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._conn.close()

    def _run(self) -> None:
        backoff = Backoff()
        next_heartbeat = time.monotonic()  # at once: the healthy streak starts now
        next_rescue = time.monotonic()  # on startup: jobs of workers whose row is gone
        next_prune = time.monotonic() if self.pruner is not None else float("inf")
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_heartbeat:
                    next_heartbeat = now + self.heartbeat.interval
                    self.beat()
                if now >= next_rescue:
                    next_rescue = now + self.rescue_interval
                    self.rescue()
                if now >= next_prune:
                    next_prune = now + self.prune_interval
                    if not self._prune_safely():
                        next_prune = now  # more to delete: go on after the next heartbeat check
                backoff.reset()
            except Exception as exc:
                self.heartbeat.failed()
                self._conn.discard()
                # Heartbeat again as soon as the connection is back, not an interval later:
                # a connection cut while idle fails the next statement, and a worker whose
                # heartbeats stop reaching the database for a while holds its prefetched jobs.
                next_heartbeat = min(next_heartbeat, time.monotonic())
                allowed, held = database_trouble.allow("database")
                if allowed:
                    log.warning(
                        f"heartbeat or rescue failed, retrying: {describe_error(exc)}",
                        extra={"count": held or None},
                    )
                self._stop.wait(backoff.next_delay())
                continue
            wake_at = min(next_heartbeat, next_rescue, next_prune)
            self._stop.wait(max(0.0, wake_at - time.monotonic()))

    def beat(self) -> bool:
        """Heartbeat now; on a missing row, tell the worker it was declared dead."""
        alive = self.heartbeat.run_once(self._conn, self._worker_id(), self._busy())
        if not alive:
            self._on_declared_dead()
        elif self.heartbeat.cancel_requests:
            self._on_cancel(self.heartbeat.cancel_requests)
        return alive

    def rescue(self) -> int:
        """Rescue now; returns how many jobs went back to pending or to failed."""
        rescued = self.rescuer.run_once(self._conn, declare_dead=self.heartbeat.may_declare_dead())
        if rescued:
            self.rescued_total += len(rescued)
            for job_id, queue, status, reason, _task in rescued[:20]:
                log.warning(
                    "job rescued",
                    extra={"job_id": job_id, "queue": queue, "status": status, "error": reason},
                )
            if len(rescued) > 20:
                log.warning("jobs rescued", extra={"count": len(rescued)})
            for callback in self.on_rescue:
                callback(rescued)
        return len(rescued)

    def _prune_safely(self) -> bool:
        """Prune; a failure other than a lost connection (say, a role without DELETE) is
        logged and waits for the next interval, so it never disturbs heartbeats or rescue."""
        try:
            return self.prune()
        except Exception as exc:
            if is_connection_error(exc):
                raise
            allowed, _ = self._limiter.allow("prune")
            if allowed:
                log.warning(f"prune failed: {describe_error(exc)}")
            return True

    def prune(self) -> bool:
        """Prune now, for at most PRUNE_BUDGET s; False if old jobs are left to delete."""
        assert self.pruner is not None
        budget = min(PRUNE_BUDGET, self.heartbeat.interval / 2)
        deleted, done = self.pruner.run_once(self._conn, budget=budget)
        if deleted:
            self.pruned_total += deleted
            log.info("jobs pruned", extra={"count": deleted})
            for callback in self.on_prune:
                callback(deleted)
        return done


class Watchdog:
    """Runs `check` every WATCHDOG_INTERVAL s: attempt timeouts, stuck statements."""

    def __init__(self, check: Callable[[], int]) -> None:
        self._check = check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pgworker-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(WATCHDOG_INTERVAL):
            try:
                self._check()
            except Exception:
                log.exception("watchdog check failed")
