"""`pgworker work --metrics-port`: a burn-down, then a scrape whose counters match the table."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from apps.tasks import EXECUTIONS_DDL
from support import PGWORKER, Run, clean_env, make_job, one_line_error, scrape, total, wait_until

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).parents[2]


class WorkerProcess:
    """A real `pgworker work` process, and the lines of its stderr as they come."""

    def __init__(self, dsn: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [*PGWORKER, "work", "--app", "apps.tasks", "--metrics-port", "0",
             "--metrics-host", "127.0.0.1", "--poll-interval", "0.05", *args],
            env=clean_env(PGWORKER_DSN=dsn, PYTHONPATH=str(ROOT / "tests")),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    def metrics_port(self) -> int:
        """The port it serves metrics on, from its log line."""
        line = wait_until(
            lambda: next((line for line in self.lines if "serving metrics on" in line), None),
            timeout=30,
            message="the metrics server",
        )
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match is not None, line
        return int(match.group(1))

    def stop(self) -> int:
        """SIGTERM, wait for the exit, and close its stderr once read to the end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


def _sums(conn: Conn) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
        " count(*) FILTER (WHERE status = 'failed'),"
        " sum(attempts),"
        " count(*) FILTER (WHERE status IN ('pending', 'processing'))"
        " FROM pgworker.jobs"
    ).fetchone()
    assert row is not None
    return dict(zip(("succeeded", "failed", "attempts", "unfinished"), map(int, row), strict=True))


def test_a_scrape_after_a_burn_down_matches_the_table(dsn: str, conn: Conn) -> None:
    conn.execute(EXECUTIONS_DDL)
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'noop' FROM generate_series(1, 40)")
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'permanent' FROM generate_series(1, 4)")
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        """ SELECT 'flaky', '{"succeed_on": 2}' FROM generate_series(1, 4)"""
    )
    conn.execute(
        "INSERT INTO pgworker.jobs (task) SELECT 'always_fails' FROM generate_series(1, 2)"
    )
    # A job its worker lost: the new worker rescues it, then runs it.
    make_job(conn, "noop", status="processing", attempts=1, worker_id=str(uuid.uuid4()))
    earlier_attempts = 1

    worker = WorkerProcess(dsn)
    try:
        port = worker.metrics_port()
        wait_until(lambda: _sums(conn)["unfinished"] == 0, timeout=60, message="the burn-down")
        samples = scrape(port)
    finally:
        assert worker.stop() == 0, "".join(worker.lines)

    table = _sums(conn)
    # noop 40 + permanent 4 + flaky 4 x 2 + always_fails 2 x 3 + the rescued one 2
    assert table == {"succeeded": 45, "failed": 6, "attempts": 60, "unfinished": 0}
    claimed = total(samples, "pgworker_jobs_claimed_total")
    assert claimed == table["attempts"] - earlier_attempts
    assert total(samples, "pgworker_jobs_succeeded_total") == table["succeeded"]
    assert total(samples, "pgworker_jobs_failed_total") == table["failed"]
    # Every claim ends one way: succeeded, failed, or retried.
    assert total(samples, "pgworker_jobs_retried_total") == claimed - 45 - 6
    assert total(samples, "pgworker_jobs_rescued_total") == 1
    assert total(samples, "pgworker_job_duration_seconds_count") == claimed
    assert total(samples, "pgworker_claim_batch_size_sum") == claimed
    assert total(samples, "pgworker_pickup_latency_seconds_count") == claimed
    by_task = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "pgworker_jobs_failed_total"
    }
    assert by_task == {
        (("queue", "default"), ("task", "always_fails")): 2,
        (("queue", "default"), ("task", "permanent")): 4,
    }
    assert samples[("pgworker_queue_depth", (("queue", "default"),))] == 0
    assert samples[("pgworker_busy_slots", ())] == 0


def test_metrics_without_prometheus_client_is_one_clear_line(
    run_cli: Run, tmp_path: Path, dsn: str
) -> None:
    # The CLI runs in tmp_path, first on sys.path: this package hides the real one.
    fake = tmp_path / "prometheus_client"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'prometheus_client'\","
        " name='prometheus_client')\n"
    )
    result = run_cli(
        "work", "--app", "apps.tasks", "--metrics-port", "9999",
        env={"PGWORKER_DSN": dsn, "PYTHONPATH": str(ROOT / "tests")},
    )  # fmt: skip
    assert result.returncode == 2
    assert one_line_error(result) == (
        "pgworker: error: --metrics-port needs prometheus-client: pip install 'pgworker[metrics]'"
    )


@pytest.mark.parametrize("flag", ["--retention", "--metrics-port"])
def test_bad_worker_flags(run_cli: Run, dsn: str, flag: str) -> None:
    value = {"--retention": "forever", "--metrics-port": "70000"}[flag]
    result = run_cli("work", "--app", "apps.tasks", flag, value, env={"PGWORKER_DSN": dsn})
    assert result.returncode == 2
    assert flag in one_line_error(result)
