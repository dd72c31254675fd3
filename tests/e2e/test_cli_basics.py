"""The CLI as users run it: migrate, enqueue, dsn, and one clear line for every mistake."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pgworker.migrate import SCHEMA_REVISION

from support import Run, count_jobs, job_row


def _one_line_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgworker: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return str(lines[0])


def test_migrate_check_and_idempotence(run_cli: Run, empty_db: str) -> None:
    before = run_cli("migrate", "--check", env={"PGWORKER_DSN": empty_db})
    assert before.returncode == 1
    assert "not installed" in _one_line_error(before)

    first = run_cli("migrate", env={"PGWORKER_DSN": empty_db})
    assert first.returncode == 0, first.stderr
    assert f"none -> {SCHEMA_REVISION}" in first.stdout
    again = run_cli("migrate", "--dsn", empty_db)
    assert again.returncode == 0
    assert "already at head" in again.stdout
    assert run_cli("migrate", "--check", env={"DATABASE_URL": empty_db}).returncode == 0


def test_migrate_sql_prints_without_a_database(run_cli: Run) -> None:
    result = run_cli("migrate", "--sql", env={"PGWORKER_DSN": "postgresql://nobody@127.0.0.1:1/x"})
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE pgworker.jobs" in result.stdout
    assert "CREATE FUNCTION pgworker.enqueue" in result.stdout


def test_downgrade_to_base_and_back(run_cli: Run, dsn: str) -> None:
    down = run_cli("migrate", "downgrade", "base", "--dsn", dsn)
    assert down.returncode == 0, down.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('pgworker.jobs')").fetchone() == (None,)
    assert run_cli("migrate", "--dsn", dsn).returncode == 0


def test_downgrade_to_an_unknown_revision(run_cli: Run, dsn: str) -> None:
    result = run_cli("migrate", "downgrade", "nope", "--dsn", dsn)
    assert result.returncode == 2
    assert "nope" in _one_line_error(result)


def test_enqueue_prints_the_id(run_cli: Run, dsn: str, conn: psycopg.Connection[Any]) -> None:
    result = run_cli(
        "enqueue", "send_email", "--payload", '{"to": "a@example.com"}', "--queue", "mail",
        "--priority", "3", "--delay", "60", "--max-attempts", "2",
        env={"PGWORKER_DSN": dsn},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = job_row(conn, int(result.stdout.strip()))
    assert (job["task"], job["queue"], job["priority"], job["max_attempts"]) == (
        "send_email", "mail", 3, 2,
    )  # fmt: skip
    assert job["payload"] == {"to": "a@example.com"}
    assert (job["run_after"] - job["created_at"]).total_seconds() >= 59


def test_enqueue_duplicate_prints_nothing(run_cli: Run, dsn: str) -> None:
    env = {"PGWORKER_DSN": dsn}
    assert run_cli("enqueue", "t", "--dedup-key", "k", env=env).stdout.strip().isdigit()
    again = run_cli("enqueue", "t", "--dedup-key", "k", env=env)
    assert again.returncode == 0
    assert again.stdout == ""
    assert "dedup key" in again.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["enqueue", "t", "--payload", "{not json"], "invalid --payload"),
        (["enqueue", "bad name"], "invalid task name"),
        (["enqueue", "t", "--queue", "semi;--"], "invalid queue name"),
        (["enqueue", "t", "--bogus"], "No such option"),
        (["enqueue", "t", "--priority", "high"], "priority"),
        (["enqueue", "t", "--delay", "-1"], "delay"),
        (["nonsense-command"], "No such command"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    run_cli: Run, dsn: str, conn: psycopg.Connection[Any], args: list[str], fragment: str
) -> None:
    result = run_cli(*args, env={"PGWORKER_DSN": dsn})
    assert result.returncode == 2
    assert fragment in _one_line_error(result)
    assert count_jobs(conn) == 0


def test_unreachable_database_exits_1_without_the_password(run_cli: Run) -> None:
    result = run_cli(
        "enqueue", "t", env={"PGWORKER_DSN": "postgresql://u:canary-pw-91@127.0.0.1:1/db"}
    )
    assert result.returncode == 1
    assert "cannot connect" in _one_line_error(result)
    assert "canary-pw-91" not in result.stdout + result.stderr


def test_invalid_dsn_exits_2(run_cli: Run) -> None:
    result = run_cli("migrate", env={"DATABASE_URL": "password=canary-pw-92 nonsense"})
    assert result.returncode == 2
    assert "DATABASE_URL" in _one_line_error(result)
    assert "canary-pw-92" not in result.stderr


def test_a_failing_migration_is_one_line(run_cli: Run, empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA pgworker")
        conn.execute("CREATE TABLE pgworker.jobs (squatter int)")
    result = run_cli("migrate", "--dsn", empty_db)
    assert result.returncode == 1
    assert 'relation "jobs" already exists' in _one_line_error(result)


def test_missing_schema_says_to_migrate(run_cli: Run, empty_db: str) -> None:
    result = run_cli("enqueue", "t", env={"PGWORKER_DSN": empty_db})
    assert result.returncode == 1
    assert "pgworker migrate" in _one_line_error(result)


def test_dsn_masks_the_password(run_cli: Run) -> None:
    result = run_cli("dsn", env={"PGWORKER_DSN": "postgresql://u:canary-pw-93@db.example:5432/x"})
    assert result.returncode == 0
    assert result.stdout.strip() == "postgresql://u:****@db.example:5432/x"


def test_payload_round_trips_through_the_cli(
    run_cli: Run, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    payload = {"quote": 'it\'s "x"', "dollar": "$$;--", "emoji": "🎉", "nested": [1, {"a": None}]}
    result = run_cli("enqueue", "t", "--payload", json.dumps(payload), env={"PGWORKER_DSN": dsn})
    assert result.returncode == 0, result.stderr
    assert job_row(conn, int(result.stdout))["payload"] == payload
