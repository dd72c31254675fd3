"""`pgworker migrate` from an installed wheel, in a fresh virtualenv, outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import psycopg
import pytest

from pgworker.migrate import SCHEMA_REVISION

from support import clean_env

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(600)
def test_wheel_installs_and_migrates_an_empty_database(tmp_path: Path, empty_db: str) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheels = list(dist.glob("pgworker-*.whl"))
    assert len(wheels) == 1

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheels[0])],
        check=True,
        capture_output=True,
        timeout=300,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = subprocess.run(
        [str(env_dir / "bin" / "pgworker"), "migrate", "--dsn", empty_db],
        cwd=outside,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT version_num FROM pgworker.alembic_version").fetchone()
    assert row == (SCHEMA_REVISION,)
    where = subprocess.run(
        [str(python), "-c", "import pgworker.migrate as m; print(m.script_location())"],
        cwd=outside, capture_output=True, text=True, check=True, env=clean_env(),
    )  # fmt: skip
    assert str(env_dir) in where.stdout
