"""Metrics: a worker's Prometheus counters and histograms, fed by its hooks, served over HTTP.

Only `pgworker work --metrics-port` imports this module, so prometheus-client (the `metrics`
extra) stays out of every other worker's memory. Counters count what this process did;
the gauges of queue depth are read from the database at each scrape and are the same on
every worker serving a queue (aggregate them with max, not sum).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from pgworker import queries
from pgworker.db import DedicatedConnection, describe_error
from pgworker.logs import RateLimiter

if TYPE_CHECKING:
    from pgworker.worker import Worker

log = logging.getLogger("pgworker.metrics")

LABELS: Final = ("task", "queue")
# Handler run times: the client's defaults, plus the long tail of slow tasks.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                           30.0, 60.0, 300.0)  # fmt: skip
# Due to claimed: ~1-2 ms through LISTEN when idle; a poll interval without it; more when
# every thread is busy.
PICKUP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                         5.0, 10.0, 30.0, 60.0, 300.0)  # fmt: skip
# Claims ask for one of CLAIM_SIZES (1 to 500 jobs).
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500)


class Metrics:
    """One worker's Prometheus metrics in their own registry; `serve()` exposes /metrics."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._claimed = Counter(
            "pgworker_jobs_claimed", "Jobs claimed by this worker (attempts begun).", LABELS,
            registry=r,
        )  # fmt: skip
        self._ended = {
            "succeeded": Counter(
                "pgworker_jobs_succeeded", "Attempts whose handler returned.", LABELS, registry=r
            ),
            "failed": Counter(
                "pgworker_jobs_failed",
                "Jobs failed for good: attempts used up, PermanentError, unknown task,"
                " undecodable payload.",
                LABELS,
                registry=r,
            ),
            "retried": Counter(
                "pgworker_jobs_retried",
                "Failed attempts with attempts left: the job will run again after a backoff.",
                LABELS,
                registry=r,
            ),
            "rescheduled": Counter(
                "pgworker_jobs_rescheduled", "Attempts that raised RetryLater.", LABELS, registry=r
            ),
        }
        self._rescued = Counter(
            "pgworker_jobs_rescued",
            "Jobs of lost workers this worker put back to pending (or failed, or cancelled).",
            LABELS,
            registry=r,
        )
        self._pruned = Counter(
            "pgworker_jobs_pruned", "Finished jobs this worker deleted past retention.", registry=r
        )
        self._duration = Histogram(
            "pgworker_job_duration_seconds",
            "Handler run time of each attempt.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._batch = Histogram(
            "pgworker_claim_batch_size",
            "Jobs per claim that claimed any.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._pickup = Histogram(
            "pgworker_pickup_latency_seconds",
            "Seconds from a job being due (run_after) to its claim, on the database's clock.",
            ("queue",),
            buckets=PICKUP_BUCKETS,
            registry=r,
        )
        # Label children cached per key: .labels() takes a lock and validates on every call.
        self._ended_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._pickup_children: dict[str, Any] = {}
        self._collector: _WorkerCollector | None = None
        self._server: Any = None

    # --- the worker's hooks (claim loop, handler threads, maintenance thread) ---------------

    def claimed(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Count claimed rows (id, task, queue, ...) by task and queue."""
        if not rows:
            return
        self._batch.observe(len(rows))
        for (task, queue), count in collections.Counter((r[1], r[2]) for r in rows).items():
            self._claimed.labels(task, queue).inc(count)

    def picked_up(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Observe the pickup latency of claimed rows (queue at 2, seconds at 6)."""
        children = self._pickup_children
        for row in rows:
            child = children.get(row[2])
            if child is None:
                child = children[row[2]] = self._pickup.labels(row[2])
            child.observe(max(0.0, row[6]))

    def job_ended(self, task: str, queue: str, status: str, seconds: float) -> None:
        """Count one finished attempt (succeeded, failed, retried or rescheduled) and time it."""
        key = (task, queue, status)
        pair = self._ended_children.get(key)
        if pair is None:
            counter = self._ended.get(status)
            if counter is None:
                return
            pair = self._ended_children[key] = (
                counter.labels(task, queue),
                self._duration.labels(task, queue),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def rescued(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Count rescued jobs: rows (job_id, queue, status, reason, task)."""
        for row in rows:
            self._rescued.labels(row[4], row[1]).inc()

    def pruned(self, count: int) -> None:
        """Count jobs deleted by this worker's pruner."""
        self._pruned.inc(count)

    # --- gauges and serving -----------------------------------------------------------------

    def watch(self, worker: Worker, dsn: str) -> None:
        """Report the worker's busy slots and its queues' depth at each scrape."""
        self._collector = _WorkerCollector(
            dsn,
            queues=worker.queues,
            slots=worker.config.concurrency,
            busy=worker.executor.busy,
        )
        worker.attach(self._collector.connection)
        self.registry.register(self._collector)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve /metrics on host:port in a daemon thread; returns the bound port (0 picks one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop serving and close the scrape connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._collector is not None:
            self._collector.close()


class _WorkerCollector:
    """Gauges read at scrape time: busy slots from the executor, queue depth from the database."""

    def __init__(
        self,
        dsn: str,
        *,
        queues: Sequence[str],
        slots: int,
        busy: Callable[[], int],
    ) -> None:
        self.connection = DedicatedConnection(dsn, application_name="pgworker:metrics")
        self._lock = threading.Lock()  # scrapes may overlap; the connection is not shared
        self._queues = list(queues)
        self._slots = slots
        self._busy = busy
        self._limiter = RateLimiter()

    def describe(self) -> list[Any]:
        return []  # no metadata up front: registering must not query the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "pgworker_busy_slots", "Handler threads running a job now.", value=self._busy()
        )
        yield GaugeMetricFamily(
            "pgworker_slots", "Handler threads of this worker (--concurrency).", value=self._slots
        )
        rows = self._depth()
        if rows is None:
            return
        depth = GaugeMetricFamily(
            "pgworker_queue_depth", "Due pending jobs of a served queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "pgworker_queue_oldest_due_seconds",
            "How long the oldest due pending job of a served queue has waited (0: none).",
            labels=["queue"],
        )
        for queue, jobs, age in rows:
            depth.add_metric([queue], jobs)
            oldest.add_metric([queue], age or 0.0)
        yield depth
        yield oldest

    def _depth(self) -> list[tuple[str, int, float | None]] | None:
        with self._lock:
            try:
                conn = self.connection.get()
                with conn.transaction():
                    conn.execute(queries.SCRAPE_TIMEOUT)
                    rows = conn.execute(queries.QUEUE_DEPTH, {"queues": self._queues}).fetchall()
            except Exception as exc:
                self.connection.discard()
                allowed, _ = self._limiter.allow("depth")
                if allowed:
                    log.warning(f"cannot read queue depth for metrics: {describe_error(exc)}")
                return None
        return [(str(q), int(n), None if a is None else float(a)) for q, n, a in rows]

    def close(self) -> None:
        with self._lock:
            self.connection.close()
