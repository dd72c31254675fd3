"""Real `pgworker work` processes for end-to-end tests: spawn, wait for, signal, reap."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from support import PGWORKER, clean_env, wait_until

TESTS = Path(__file__).parents[1]


class WorkerProcess:
    """One `pgworker work --app apps.tasks` subprocess; its output goes to a file."""

    def __init__(self, dsn: str, log_path: Path, *args: str, env: dict[str, str] | None = None):
        self.dsn = dsn
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in reap()
        self.proc = subprocess.Popen(
            [*PGWORKER, "work", "--app", "apps.tasks", *args],
            # RECORD_DSN: handlers record executions straight to the database, even when the
            # worker itself goes through a proxy a test cuts.
            env=clean_env(
                **{"PGWORKER_DSN": dsn, "RECORD_DSN": dsn, "PYTHONPATH": str(TESTS), **(env or {})}
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=TESTS,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_id(self) -> str | None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT id::text FROM pgworker.workers WHERE pid = %s ORDER BY started_at DESC",
                (self.pid,),
            ).fetchone()
        return None if row is None else str(row[0])

    def wait_registered(self, timeout: float = 20) -> str:
        """Wait until the worker has registered its row; returns its worker id."""

        def registered() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited early ({self.proc.returncode}):\n{self.output()}"
                )
            return self.worker_id()

        return wait_until(registered, timeout=timeout, interval=0.05, message="worker registered")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def reap(self) -> None:
        """Kill the process if it still runs (SIGCONT first, in case it was stopped)."""
        if self.proc.poll() is None:
            for signum in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(self.pid, signum)
                except ProcessLookupError:
                    break
            self.proc.wait(timeout=10)
        self._log.close()


class Spawner:
    """Starts worker processes for one test and reaps every one of them at teardown."""

    def __init__(self, dsn: str, tmp_path: Path) -> None:
        self.dsn = dsn
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started) + 1}.log"
        worker = WorkerProcess(self.dsn, log, *args, env=env)
        self.started.append(worker)
        return worker

    def reap(self) -> None:
        for worker in self.started:
            worker.reap()


def executions(conn: psycopg.Connection[Any]) -> list[tuple[int, int, int]]:
    """(job_id, attempt, pid) of every recorded execution."""
    return [
        (int(r[0]), int(r[1]), int(r[2]))
        for r in conn.execute(
            "SELECT job_id, attempt, pid FROM executions ORDER BY job_id, attempt"
        )
    ]
