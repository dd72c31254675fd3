"""Helpers for tests that run the real `pgworker` command as a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from support import PGWORKER, Run, clean_env


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
