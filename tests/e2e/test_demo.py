"""`make demo` and the embedded server: what a new user runs first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import Run, clean_env

ROOT = Path(__file__).parents[2]


def test_demo_runs_every_job_to_its_end(dsn: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=clean_env(PGWORKER_DSN=dsn),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded    319  (10 of them after a retry)" in result.stdout
    assert "(charge_card): PermanentError: card declined" in result.stdout
    assert "worker exit code 0" in result.stdout


def test_demo_on_a_fresh_machine_starts_and_stops_the_embedded_server(
    run_cli: Run, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "demo.py")],
            env=clean_env(PGWORKER_HOME=str(home)),  # no DSN of any kind
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        status = run_cli("embedded", "status", env={"PGWORKER_HOME": str(home)})
        if "running at" in status.stdout:
            run_cli("embedded", "stop", env={"PGWORKER_HOME": str(home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: postgresql://postgres@/pgworker?host=" in result.stdout
    assert "succeeded    319  (10 of them after a retry)" in result.stdout
    assert f"stopped the embedded PostgreSQL it started (data kept in {home})" in result.stdout
    assert "running at" not in status.stdout


def test_embedded_server_from_nothing_to_stopped(run_cli: Run, tmp_path: Path) -> None:
    home = {"PGWORKER_HOME": str(tmp_path / "home")}
    try:
        migrated = run_cli("migrate", env=home, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        assert "using the embedded PostgreSQL" in migrated.stderr
        assert run_cli("enqueue", "t", env=home).stdout.strip() == "1"
        dsn = run_cli("dsn", env=home).stdout.strip()
        assert dsn.startswith("postgresql://postgres@/pgworker?host=")
        status = run_cli("embedded", "status", env=home)
        assert "running at" in status.stdout
    finally:
        stopped = run_cli("embedded", "stop", env=home)
    assert stopped.returncode == 0
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    assert "stopped" in run_cli("embedded", "status", env=home).stdout
