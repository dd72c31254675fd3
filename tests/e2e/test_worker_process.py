"""Real `pgworker work` processes: draining, graceful shutdown, signals, bad input."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import psycopg
import pytest

from support import Run, count_jobs, make_job, wait_until
from workers import Spawner, executions


def test_a_worker_process_drains_a_thousand_jobs(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', jsonb_build_object('n', i) FROM generate_series(1, 1000) i"
    )
    worker = spawn("--concurrency", "5", "--log-format", "json", "--log-level", "debug")
    worker_id = worker.wait_registered()
    wait_until(lambda: count_jobs(conn, "succeeded") == 1000, timeout=60, message="1000 done")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()

    runs = executions(conn)
    assert len(runs) == 1000
    assert {attempt for _, attempt, _ in runs} == {1}
    assert {pid for _, _, pid in runs} == {worker.pid}
    assert conn.execute("SELECT count(*) FROM pgworker.workers").fetchone() == (0,)

    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    done = [line for line in lines if line["msg"] == "job succeeded"]
    assert len(done) == 1000
    assert {"job_id", "task", "queue", "attempt", "duration_ms", "worker_id"} <= set(done[0])
    assert done[0]["worker_id"] == worker_id
    assert not any("payload" in line for line in lines)


def test_sigterm_lets_running_jobs_finish_and_starts_nothing_new(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    running = [make_job(conn, "sleep", payload={"s": 3}, priority=-1) for _ in range(5)]
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'record' FROM generate_series(1, 200)")
    worker = spawn("--concurrency", "5")
    worker.wait_registered()
    wait_until(lambda: len(executions(conn)) == 5, message="five sleepers running")
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()
    took = time.monotonic() - signalled

    statuses = dict(
        conn.execute(
            "SELECT id, status FROM pgworker.jobs WHERE id = ANY(%s)", (running,)
        ).fetchall()
    )
    assert set(statuses.values()) == {"succeeded"}
    assert sorted(job for job, _, _ in executions(conn)) == sorted(running)  # nothing new
    untouched = conn.execute(
        "SELECT count(*) FROM pgworker.jobs"
        " WHERE task = 'record' AND status = 'pending' AND attempts = 0 AND worker_id IS NULL"
    ).fetchone()
    assert untouched == (200,)
    assert took < 25, "the worker waited for more than its running jobs"
    assert "SIGTERM: stopping" in worker.output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_exits_at_once(
    spawn: Spawner, conn: psycopg.Connection[Any], signum: int
) -> None:
    for _ in range(3):
        make_job(conn, "sleep", payload={"s": 60})
    worker = spawn("--concurrency", "3", "--shutdown-timeout", "60")
    worker.wait_registered()
    wait_until(lambda: len(executions(conn)) == 3, message="three sleepers running")
    worker.signal(signum)
    wait_until(lambda: "stopping" in worker.output(), message="first signal handled")
    worker.signal(signum)
    assert worker.wait(timeout=10) == 128 + signum
    assert "exiting at once" in worker.output()


def test_several_workers_never_run_a_job_twice(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("INSERT INTO pgworker.jobs (task) SELECT 'record' FROM generate_series(1, 3000)")
    workers = [spawn("--concurrency", "4", "--prefetch", "20") for _ in range(3)]
    for worker in workers:
        worker.wait_registered()
    wait_until(lambda: count_jobs(conn, "succeeded") == 3000, timeout=120, message="all done")
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=30) == 0, worker.output()
    runs = executions(conn)
    assert len(runs) == 3000
    assert len({job for job, _, _ in runs}) == 3000
    assert {attempt for _, attempt, _ in runs} == {1}
    assert conn.execute("SELECT max(attempts) FROM pgworker.jobs").fetchone() == (1,)


def test_flags_come_from_the_environment_too(spawn: Spawner, conn: psycopg.Connection[Any]) -> None:
    worker = spawn(env={"PGWORKER_CONCURRENCY": "3", "PGWORKER_QUEUES": "a,b"})
    worker.wait_registered()
    row = conn.execute("SELECT concurrency, queues FROM pgworker.workers").fetchone()
    assert row == (3, ["a", "b"])
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def _one_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return str(lines[0])


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--app", "no_such_module_xyz"], 2, "cannot import --app 'no_such_module_xyz'"),
        (["--app", "apps.tasks:nothing"], 2, "should be a pgworker.TaskRegistry"),
        (["--app", "apps.tasks", "--concurrency", "0"], 2, "--concurrency"),
        (["--app", "apps.tasks", "--bogus"], 2, "No such option: --bogus"),
        (["--app", "apps.tasks", "--log-format", "xml"], 2, "log format"),
        (["--app", "apps.tasks", "--queues", "bad queue"], 2, "invalid queue name"),
        ([], 2, "--app"),
    ],
)
def test_bad_input_gives_one_line(
    run_cli: Run, dsn: str, args: list[str], code: int, fragment: str
) -> None:
    from workers import TESTS

    result = run_cli("work", *args, env={"PGWORKER_DSN": dsn, "PYTHONPATH": str(TESTS)})
    assert result.returncode == code, result.stderr
    assert fragment in _one_line(result)


def test_an_unreachable_database_at_start(run_cli: Run) -> None:
    from workers import TESTS

    result = run_cli(
        "work", "--app", "apps.tasks",
        env={"PGWORKER_DSN": "postgresql://u:canary-pw-77@127.0.0.1:1/x", "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL" in _one_line(result)
    assert "canary-pw-77" not in result.stderr


def test_a_missing_schema_at_start(run_cli: Run, empty_db: str) -> None:
    from workers import TESTS

    result = run_cli(
        "work", "--app", "apps.tasks", env={"PGWORKER_DSN": empty_db, "PYTHONPATH": str(TESTS)}
    )
    assert result.returncode == 1
    assert "pgworker migrate" in _one_line(result)
