"""Least privilege and hostile input through the real CLI: grants, a worker running as the
worker role, hostile strings, and secrets that never reach the output."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from pgworker import Client

from apps.tasks import EXECUTIONS_DDL
from support import PGWORKER, Roles, Run, clean_env, count_jobs, job_row, make_job, wait_until

TESTS = Path(__file__).parents[1]
CANARY_PASSWORD = "pw-canary-7f3a9c"
CANARY_PAYLOAD = "payload-canary-51d2e8"
HOSTILE = [
    "x'); DROP TABLE public.canary; --",
    'x"; DROP TABLE public.canary; --',
    "$$; DROP TABLE public.canary; $$",
    "🎉 ключ 鍵",
    "x'); DROP TABLE public.canary; --" + "a" * 5000,
]


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgworker: error: "), result.stderr
    return lines[0]


@pytest.fixture
def canary(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("CREATE TABLE public.canary (note text)")
    conn.execute("INSERT INTO public.canary VALUES ('alive')")
    return conn


def _canary_alive(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT note FROM public.canary").fetchall() == [("alive",)]


# --- grants through the CLI ----------------------------------------------------------------


def test_migrate_grants_the_three_roles(
    run_cli: Run, roles: Roles, conn: psycopg.Connection[Any]
) -> None:
    result = run_cli(
        "migrate", "--dsn", roles.owner_dsn, "--grant-worker", roles.worker,
        "--grant-enqueue", roles.enqueue, "--grant-readonly", roles.readonly,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"granted the worker privileges to role {roles.worker}" in result.stdout
    privileges = conn.execute(
        """
        SELECT has_function_privilege(%(e)s, 'pgworker.enqueue(text, jsonb, text, integer,'
                                               ' timestamptz, integer, text)', 'EXECUTE'),
               has_column_privilege(%(e)s, 'pgworker.jobs', 'payload', 'SELECT'),
               has_table_privilege(%(w)s, 'pgworker.jobs', 'DELETE'),
               has_column_privilege(%(w)s, 'pgworker.jobs', 'payload', 'UPDATE'),
               has_column_privilege(%(r)s, 'pgworker.jobs', 'task', 'SELECT'),
               has_column_privilege(%(r)s, 'pgworker.jobs', 'payload', 'SELECT')
        """,
        {"e": roles.enqueue, "w": roles.worker, "r": roles.readonly},
    ).fetchone()
    assert privileges == (True, False, True, False, True, False)

    enqueued = run_cli("enqueue", "send_email", "--dsn", roles.dsn(roles.enqueue))
    assert enqueued.returncode == 0, enqueued.stderr
    assert job_row(conn, int(enqueued.stdout))["task"] == "send_email"
    refused = run_cli("enqueue", "send_email", "--dsn", roles.dsn(roles.readonly))
    assert refused.returncode == 1
    line = _one_line_error(refused)
    assert "permission denied for function enqueue" in line
    assert "lacks a privilege" in line


def test_migrate_as_the_worker_role_fails_with_one_clear_line(
    run_cli: Run, granted: Roles, empty_db: str, conn: psycopg.Connection[Any]
) -> None:
    worker_dsn = granted.dsn(granted.worker)
    for args in (["migrate"], ["migrate", "downgrade", "base"]):
        result = run_cli(*args, "--dsn", worker_dsn)
        assert result.returncode == 1
        line = _one_line_error(result)
        assert "must connect as" in line
        assert f"role {granted.worker!r} is not" in line
    assert run_cli("migrate", "--check", "--dsn", worker_dsn).returncode == 0
    assert count_jobs(conn) == 0  # the schema is still there, untouched

    # Where the schema does not exist yet, the role needs CREATE on the database.
    elsewhere = psycopg.conninfo.make_conninfo(empty_db, user=granted.worker)
    result = run_cli("migrate", "--dsn", elsewhere)
    assert result.returncode == 1
    assert "needs CREATE on this database" in _one_line_error(result)


def test_migrate_sql_prints_the_grants_without_a_database(run_cli: Run) -> None:
    result = run_cli(
        "migrate", "--sql", "--grant-worker", "app_worker", "--grant-readonly", "app_dash",
        env={"PGWORKER_DSN": "postgresql://nobody@127.0.0.1:1/x"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'GRANT SELECT, DELETE ON pgworker.jobs TO "app_worker";' in result.stdout
    assert 'GRANT SELECT ON pgworker.workers, pgworker.queues TO "app_dash";' in result.stdout


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ('x"; DROP TABLE public.canary; --', "invalid role name"),
        ("x'; DROP TABLE public.canary; --", "invalid role name"),
        ("$$", "invalid role name"),
        ("🎉", "invalid role name"),
        ("a" * 5000, "invalid role name"),
        ("public", "reserved"),
        ("pgwt_no_such_role_3c1d", "does not exist"),
    ],
)
def test_bad_role_names_change_nothing(
    run_cli: Run, empty_db: str, name: str, fragment: str
) -> None:
    result = run_cli("migrate", "--dsn", empty_db, "--grant-enqueue", name)
    assert result.returncode == 2
    assert fragment in _one_line_error(result)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regnamespace('pgworker')").fetchone() == (None,)


# --- hostile strings through the CLI -------------------------------------------------------


def test_hostile_strings_through_the_cli(
    run_cli: Run, dsn: str, canary: psycopg.Connection[Any]
) -> None:
    env = {"PGWORKER_DSN": dsn}
    for value in HOSTILE:
        task = run_cli("enqueue", value, env=env)
        assert task.returncode == 2
        assert "invalid task name" in _one_line_error(task)
        stored = run_cli("enqueue", "t", "--dedup-key", value[:500], "--payload",
                         json.dumps({"s": value}), env=env)  # fmt: skip
        assert stored.returncode == 0, stored.stderr
        job = job_row(canary, int(stored.stdout))
        assert (job["dedup_key"], job["payload"]) == (value[:500], {"s": value})
    for value in HOSTILE[:2]:
        queue = run_cli("enqueue", "t", "--queue", value, env=env)
        assert queue.returncode == 2
        assert "invalid queue name" in _one_line_error(queue)
        work = run_cli("work", "--app", "apps.tasks", "--queues", f"default,{value}", env=env)
        assert work.returncode == 2
        assert "invalid queue name" in _one_line_error(work)
    too_long = run_cli("enqueue", "t", "--dedup-key", HOSTILE[-1], env=env)
    assert too_long.returncode == 2
    assert "jobs_dedup_key_length" in _one_line_error(too_long)
    assert count_jobs(canary) == len(HOSTILE)
    assert _canary_alive(canary)


# --- a real worker as the worker role, and what it prints ----------------------------------


@contextmanager
def _worker(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`pgworker work ARGS` with stdout and stderr in `log`; killed if the test leaves it."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*PGWORKER, "work", "--app", "apps.tasks", *args],
            env=clean_env(PYTHONPATH=str(TESTS), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def _grant_executions(conn: psycopg.Connection[Any], role: str) -> None:
    conn.execute(EXECUTIONS_DDL)
    conn.execute(sql.SQL("GRANT SELECT, INSERT ON executions TO {}").format(sql.Identifier(role)))


def _unfinished(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pgworker.jobs"
        " WHERE task <> 'later' AND status NOT IN ('succeeded', 'failed')"
        "    OR task = 'later' AND attempts = 0"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_worker_role_runs_real_jobs_and_no_secret_reaches_the_output(
    run_cli: Run, granted: Roles, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    _grant_executions(conn, granted.worker)
    secret = {"secret": CANARY_PAYLOAD}
    with Client(granted.dsn(granted.enqueue)) as client:
        client.enqueue_many("record", [{**secret, "n": n} for n in range(5)])
        client.enqueue("flaky", {**secret, "succeed_on": 2})
        client.enqueue("always_fails", secret)
        client.enqueue("permanent", secret)
        client.enqueue("later", {**secret, "delay": 3600})
        client.enqueue("os.system", secret)
        client.enqueue("apps.import_canary:run", secret)
    # Held by a worker whose row is gone: rescued at startup, then run.
    rescued = make_job(conn, "record", payload=secret, status="processing", attempts=1,
                       worker_id="00000000-0000-4000-8000-000000000000")  # fmt: skip
    worker_dsn = granted.dsn(granted.worker, password=CANARY_PASSWORD)
    args = ["--log-level", "debug", "--concurrency", "2", "--poll-interval", "0.1",
            "--heartbeat-interval", "0.2", "--rescue-interval", "0.5"]  # fmt: skip
    log = tmp_path / "worker.log"
    with _worker(args, {"PGWORKER_DSN": worker_dsn}, log) as process:
        wait_until(lambda: _unfinished(conn) == 0, timeout=30, message="the first jobs")
        users = conn.execute(
            "SELECT DISTINCT usename::text FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'pgworker:%'"
        ).fetchall()
        assert users == [(granted.worker,)]
        # Lose every connection of the worker at once.
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'pgworker:%'"
        ).fetchone()
        assert killed is not None
        assert killed[0] >= 3
        with Client(granted.dsn(granted.enqueue)) as client:
            client.enqueue_many("record", [{**secret, "n": n} for n in range(5, 8)])
            client.enqueue("always_fails", secret)
        wait_until(lambda: _unfinished(conn) == 0, timeout=30, message="jobs after the loss")
        assert _stop(process) == 0

    statuses = dict(
        conn.execute("SELECT task, array_agg(DISTINCT status) FROM pgworker.jobs GROUP BY task")
    )
    assert statuses == {
        "record": ["succeeded"], "flaky": ["succeeded"], "always_fails": ["failed"],
        "permanent": ["failed"], "later": ["pending"], "os.system": ["failed"],
        "apps.import_canary:run": ["failed"],
    }  # fmt: skip
    assert job_row(conn, rescued)["attempts"] == 2
    executions = conn.execute("SELECT count(*) FROM executions WHERE job_id = %s", (rescued,))
    assert executions.fetchone() == (1,)
    unknown = conn.execute(
        "SELECT last_error FROM pgworker.jobs WHERE task = 'os.system'"
    ).fetchone()
    assert unknown == ("unknown task 'os.system'",)

    output = log.read_text()
    for expected in ("worker started", "job rescued", "job will retry", "job failed",
                     "unknown task 'os.system'", "job rescheduled", "job succeeded",
                     "lost the database", "worker stopped"):  # fmt: skip
        assert expected in output, f"{expected!r} not in the worker's output:\n{output}"

    # A start with a bad DSN: a dead port, a missing database, an unparsable string.
    env = {"PYTHONPATH": str(TESTS)}
    bad = [
        (f"postgresql://{granted.worker}:{CANARY_PASSWORD}@127.0.0.1:1/db", 1, "cannot connect"),
        (granted.dsn(granted.worker, password=CANARY_PASSWORD, dbname="pgwt_no_such_db"), 1,
         "pgwt_no_such_db"),
        (f"password={CANARY_PASSWORD} nonsense", 2, "invalid DSN in PGWORKER_DSN"),
    ]  # fmt: skip
    for bad_dsn, code, fragment in bad:
        result = run_cli("work", "--app", "apps.tasks", env={**env, "PGWORKER_DSN": bad_dsn})
        assert result.returncode == code, result.stderr
        assert fragment in _one_line_error(result)
        output += result.stdout + result.stderr

    assert CANARY_PASSWORD not in output
    assert CANARY_PAYLOAD not in output


def test_log_payloads_and_redact_flags(
    granted: Roles, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """The other side of the canary test: asked to, the worker does log payloads (so the
    canary check above can see a leak), and the redact hook rewrites error text."""
    with Client(granted.dsn(granted.enqueue)) as client:
        leaky = client.enqueue("leaky", {"token": "SECRET-9a8b", "note": CANARY_PAYLOAD})
        client.enqueue("noop", {"note": CANARY_PAYLOAD})
    args = ["--log-payloads", "--log-format", "json", "--log-level", "debug",
            "--redact", "apps.redact:scrub", "--poll-interval", "0.1"]  # fmt: skip
    log = tmp_path / "worker.log"
    with _worker(args, {"PGWORKER_DSN": granted.dsn(granted.worker)}, log) as process:
        wait_until(
            lambda: count_jobs(conn, "pending") + count_jobs(conn, "processing") == 0,
            timeout=30,
            message="both jobs",
        )
        assert _stop(process) == 0
    assert job_row(conn, leaky or 0)["last_error"].startswith(
        "RuntimeError: upstream refused token=[redacted]"
    )
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    job_lines = {line["msg"]: line for line in lines if "job_id" in line}
    assert set(job_lines) == {"job failed", "job succeeded"}
    for line in job_lines.values():
        assert CANARY_PAYLOAD in line["payload"]
    assert job_lines["job failed"]["error"] == "RuntimeError: upstream refused token=[redacted]"


def test_a_bad_redact_flag_is_a_usage_error(run_cli: Run, dsn: str) -> None:
    result = run_cli(
        "work", "--app", "apps.tasks", "--redact", "apps.redact",
        env={"PGWORKER_DSN": dsn, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "expected MODULE:FUNCTION" in _one_line_error(result)
