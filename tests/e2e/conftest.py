"""Helpers for tests that run the real `pgworker` command as a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from support import PGWORKER, Run, clean_env
from workers import Spawner


@pytest.fixture
def run_cli(tmp_path: Path) -> Run:
    """Run `pgworker ARGS...` to completion with a clean environment; returns the result."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PGWORKER, *args],
            env=clean_env(**(env or {})),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            check=False,
        )

    return run


@pytest.fixture
def spawn(dsn: str, tmp_path: Path) -> Iterator[Spawner]:
    """Start `pgworker work --app apps.tasks ARGS` processes; all are reaped at teardown."""
    import psycopg

    from apps.tasks import EXECUTIONS_DDL

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(EXECUTIONS_DDL)
    spawner = Spawner(dsn, tmp_path)
    try:
        yield spawner
    finally:
        spawner.reap()
