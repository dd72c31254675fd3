"""Metrics of an in-process worker, scraped over HTTP: counters, histograms and gauges."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from pgworker import Worker, WorkerConfig
from pgworker.config import Retention
from pgworker.metrics import Metrics

from apps.tasks import registry
from support import count_jobs, job_row, make_job, scrape, wait_until

Conn = psycopg.Connection[Any]


def test_hooks_rescue_prune_and_gauges(dsn: str, conn: Conn) -> None:
    lost = make_job(conn, "noop", status="processing", attempts=1, worker_id=str(uuid.uuid4()))
    make_job(conn, "noop", status="succeeded", attempts=1, finished_at="-2 hours")
    for _ in range(3):
        make_job(conn, "noop", queue="mail")
    make_job(conn, "noop", run_after="1 hour")  # not due: not in the depth
    metrics = Metrics()
    config = WorkerConfig(
        queues=("default", "other"), poll_interval=0.05, heartbeat_interval=0.2, stale_after=5,
        shutdown_timeout=5, retention=Retention.parse("1h"), prune_interval=0.05,
    )  # fmt: skip
    worker = Worker(registry, dsn, config, metrics=metrics)
    metrics.watch(worker, dsn)
    port = metrics.serve(0, "127.0.0.1")
    worker.start()
    try:
        wait_until(lambda: count_jobs(conn, "succeeded") == 1, message="the rescued job run")
        wait_until(lambda: worker.maintenance.pruned_total == 1, message="the old job pruned")
        samples = scrape(port)
    finally:
        assert worker.stop(timeout=20) == 0
        metrics.close()
    labels = (("queue", "default"), ("task", "noop"))
    assert samples[("pgworker_jobs_rescued_total", labels)] == 1
    assert samples[("pgworker_jobs_claimed_total", labels)] == 1
    assert samples[("pgworker_jobs_succeeded_total", labels)] == 1
    assert samples[("pgworker_job_duration_seconds_count", labels)] == 1
    assert samples[("pgworker_pickup_latency_seconds_count", (("queue", "default"),))] == 1
    assert samples[("pgworker_claim_batch_size_count", ())] == 1
    assert samples[("pgworker_jobs_pruned_total", ())] == 1
    assert samples[("pgworker_slots", ())] == 5
    assert samples[("pgworker_busy_slots", ())] == 0
    # Depth of the served queues only (two: the claim with a LATERAL per queue), due jobs only.
    assert samples[("pgworker_queue_depth", (("queue", "default"),))] == 0
    assert samples[("pgworker_queue_depth", (("queue", "other"),))] == 0
    assert ("pgworker_queue_depth", (("queue", "mail"),)) not in samples
    assert count_jobs(conn, "pending") == 4
    assert job_row(conn, lost)["attempts"] == 2  # claimed again after its rescue


def test_depth_and_oldest_due(dsn: str, conn: Conn) -> None:
    make_job(conn, "noop", queue="a", run_after="-30 seconds")
    make_job(conn, "noop", queue="a")
    make_job(conn, "noop", queue="a", run_after="1 hour")
    metrics = Metrics()
    worker = Worker(registry, dsn, WorkerConfig(queues=("a", "b")), metrics=metrics)
    metrics.watch(worker, dsn)  # gauges work before (and without) the worker running
    port = metrics.serve(0, "127.0.0.1")
    try:
        samples = scrape(port)
    finally:
        metrics.close()
    assert samples[("pgworker_queue_depth", (("queue", "a"),))] == 2
    assert samples[("pgworker_queue_depth", (("queue", "b"),))] == 0
    assert samples[("pgworker_queue_oldest_due_seconds", (("queue", "a"),))] >= 30
    assert samples[("pgworker_queue_oldest_due_seconds", (("queue", "b"),))] == 0
