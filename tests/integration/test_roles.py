"""The three roles on a real server: what each may do, and permission denied for the rest."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest

from pgworker import Client, queries, roles
from pgworker.errors import ConfigError
from pgworker.migrate import require_schema
from pgworker.worker import claim_statements

from support import Roles, count_jobs, job_row, make_job, make_worker

README = Path(__file__).parents[2] / "README.md"
ENQUEUE_SIGNATURE = "pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text)"


def _denied(conn: psycopg.Connection[Any], statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo:
        conn.execute(statement)  # type: ignore[arg-type]
    text = str(excinfo.value)
    assert "permission denied" in text or "must be owner" in text, text


def _all_denied(conn: psycopg.Connection[Any], statements: list[str]) -> None:
    """Run each statement (autocommit: a refusal spoils nothing); all must be refused.

    One database for the whole list instead of one per statement keeps the suite fast.
    """
    wrong = []
    for statement in statements:
        try:
            _denied(conn, statement)
        except (AssertionError, pytest.fail.Exception, psycopg.Error) as exc:
            wrong.append(f"{statement}: {str(exc).splitlines()[0]}")
    assert not wrong, "not refused with permission denied:\n" + "\n".join(wrong)


# --- enqueue -------------------------------------------------------------------------------


def test_enqueue_role_may_enqueue_every_way(granted: Roles, conn: psycopg.Connection[Any]) -> None:
    with granted.connect(granted.enqueue) as app:
        app.execute(
            "INSERT INTO pgworker.jobs"
            " (task, queue, payload, priority, run_after, max_attempts, dedup_key)"
            " VALUES ('plain', 'q', '{\"a\": 1}', 1, now(), 2, 'k1')"
        )
        # Without RETURNING and without a conflict target: neither needs SELECT.
        app.execute(
            "INSERT INTO pgworker.jobs (task, dedup_key) VALUES ('plain', 'k1')"
            " ON CONFLICT DO NOTHING"
        )
        row = app.execute("SELECT pgworker.enqueue('function', dedup_key => 'k2')").fetchone()
        assert row is not None
        assert isinstance(row[0], int)
        assert app.execute("SELECT pgworker.enqueue('function', dedup_key => 'k2')").fetchone() == (
            None,
        )
        client = Client(granted.dsn(granted.enqueue))
        job_id = client.enqueue("client", {"n": 1}, queue="mail", priority=-3, delay=5)
        assert job_id is not None
        assert client.enqueue("client", dedup_key="k3") is not None
        assert client.enqueue("client", dedup_key="k3") is None
        assert client.enqueue_many("bulk", [{"n": n} for n in range(50)], max_attempts=2) == 50
        assert client.enqueue_many("bulk", [1, 2], delay=60) == 2
        with app.transaction():
            client.enqueue("in_transaction", conn=app)
        client.close()
    # plain INSERT, enqueue(), two Client.enqueue, 52 by COPY, one in a transaction
    assert count_jobs(conn) == 1 + 1 + 2 + 52 + 1
    job = job_row(conn, job_id)
    assert (job["task"], job["queue"], job["priority"], job["status"]) == (
        "client", "mail", -3, "pending",
    )  # fmt: skip


ENQUEUE_DENIED = [
    "SELECT payload FROM pgworker.jobs",
    "SELECT id FROM pgworker.jobs",
    "SELECT count(*) FROM pgworker.jobs",
    "INSERT INTO pgworker.jobs (task) VALUES ('t') RETURNING id",
    "INSERT INTO pgworker.jobs (task, dedup_key) VALUES ('t', 'k') ON CONFLICT (dedup_key)"
    " WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING",
    "INSERT INTO pgworker.jobs (task, status) VALUES ('t', 'succeeded')",
    "INSERT INTO pgworker.jobs (task, attempts) VALUES ('t', 5)",
    "INSERT INTO pgworker.jobs (task, worker_id) VALUES ('t', gen_random_uuid())",
    "INSERT INTO pgworker.jobs (task, last_error) VALUES ('t', 'x')",
    "INSERT INTO pgworker.jobs (task, created_at) VALUES ('t', now())",
    "UPDATE pgworker.jobs SET status = 'pending'",
    "UPDATE pgworker.jobs SET payload = '{}'",
    "DELETE FROM pgworker.jobs",
    "TRUNCATE pgworker.jobs",
    "SELECT * FROM pgworker.workers",
    "INSERT INTO pgworker.workers (id, hostname, pid, queues, concurrency)"
    " VALUES (gen_random_uuid(), 'h', 1, '{default}', 1)",
    "INSERT INTO pgworker.queues (name, paused) VALUES ('default', true)",
    "SELECT * FROM pgworker.alembic_version",
    "CREATE TABLE pgworker.evil (x int)",
    "ALTER TABLE pgworker.jobs DROP CONSTRAINT jobs_task_format",
    "DROP TABLE pgworker.jobs",
    f"ALTER FUNCTION {ENQUEUE_SIGNATURE} SECURITY INVOKER",
    "DROP SCHEMA pgworker CASCADE",
]


def test_enqueue_role_is_denied_everything_else(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    make_job(conn, "existing", payload={"secret": "s"})
    with granted.connect(granted.enqueue) as app:
        _all_denied(app, ENQUEUE_DENIED)
    assert count_jobs(conn) == 1


def test_enqueue_role_cannot_copy_jobs_out(granted: Roles, conn: psycopg.Connection[Any]) -> None:
    make_job(conn, "existing", payload={"secret": "s"})
    with (
        granted.connect(granted.enqueue) as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        app.cursor() as cursor,
        cursor.copy("COPY pgworker.jobs (payload) TO STDOUT") as copy,
    ):
        list(copy)


# --- worker --------------------------------------------------------------------------------


def test_worker_role_runs_every_statement_of_a_worker(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    worker_id = str(uuid.uuid4())
    dead = make_worker(conn, str(uuid.uuid4()), heartbeat_age="1 hour")
    lost = make_job(conn, "lost", status="processing", attempts=1, worker_id=dead)
    make_job(conn, "done", status="succeeded", finished_at="-2 days")
    first, second, third = (make_job(conn, "t", payload={"n": n}) for n in range(3))
    claim = claim_statements(queries.CLAIM_JOBS_TEMPLATE)[4]
    with granted.connect(granted.worker) as worker:
        require_schema(worker)
        worker.execute(queries.LISTEN)
        worker.execute(
            queries.REGISTER_WORKER,
            {"id": worker_id, "hostname": "h", "pid": 1, "queues": ["default"],
             "tasks": ["t"], "concurrency": 2},
        )  # fmt: skip
        assert worker.execute(queries.HEARTBEAT, {"id": worker_id, "busy": 1}).fetchone()
        assert worker.execute(queries.CANCEL_REQUESTS, {"id": worker_id}).fetchall() == []
        rescued = worker.execute(
            queries.RESCUE_JOBS, {"declare_dead": True, "stale_after": 30.0}
        ).fetchall()
        assert [r[0] for r in rescued] == [lost]
        worker.execute(queries.NOTIFY_QUEUES, {"queues": ["default"]})
        claimed = worker.execute(claim, {"queue": "default", "worker_id": worker_id}).fetchall()
        assert sorted(r[0] for r in claimed) == sorted([lost, first, second, third])
        assert {r[5] for r in claimed} >= {'{"n": 0}'}  # the worker reads payloads
        worker.execute(
            queries.COMPLETE_JOBS, {"ids": [first], "attempts": [1], "worker_id": worker_id}
        )
        worker.execute(
            queries.RETRY_OR_FAIL_JOBS,
            {"ids": [second, third], "attempts": [1, 1], "statuses": ["pending", "failed"],
             "delays": [1.0, 0.0], "refunds": [0, 0], "max_attempts": [None, None],
             "errors": ["boom", "boom"], "summaries": ["boom", "boom"], "worker_id": worker_id},
        )  # fmt: skip
        # Prune: the worker deletes finished jobs.
        pruned = worker.execute(
            "DELETE FROM pgworker.jobs WHERE status IN ('succeeded', 'failed', 'cancelled')"
            " AND finished_at < now() - interval '1 day'"
        )
        assert pruned.rowcount == 1
        # Handlers may enqueue follow-up jobs on the worker's DSN.
        assert worker.execute("SELECT pgworker.enqueue('follow_up')").fetchone() is not None
        worker.execute(queries.DEREGISTER_WORKER, {"id": worker_id})
        worker.execute("SELECT name, paused FROM pgworker.queues").fetchall()
    statuses = {job_row(conn, j)["status"] for j in (first, second, third)}
    assert statuses == {"succeeded", "pending", "failed"}


WORKER_DENIED = [
    "UPDATE pgworker.jobs SET payload = '{\"evil\": true}'",
    "UPDATE pgworker.jobs SET task = 'other'",
    "UPDATE pgworker.jobs SET queue = 'other'",
    "UPDATE pgworker.jobs SET priority = -100",
    "UPDATE pgworker.jobs SET dedup_key = 'k'",
    "UPDATE pgworker.jobs SET cancel_requested_at = now()",
    "INSERT INTO pgworker.jobs (task, status) VALUES ('t', 'processing')",
    "INSERT INTO pgworker.queues (name, paused) VALUES ('default', true)",
    "UPDATE pgworker.queues SET paused = true",
    "UPDATE pgworker.alembic_version SET version_num = '9999'",
    "DELETE FROM pgworker.alembic_version",
    "TRUNCATE pgworker.jobs",
    "CREATE TABLE pgworker.evil (x int)",
    "CREATE INDEX ON pgworker.jobs (task)",
    "ALTER TABLE pgworker.jobs ADD COLUMN evil text",
    "ALTER TABLE pgworker.jobs DISABLE TRIGGER jobs_notify",
    "DROP TABLE pgworker.workers",
    "CREATE FUNCTION pgworker.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    f"ALTER FUNCTION {ENQUEUE_SIGNATURE} SECURITY INVOKER",
    "CREATE SCHEMA evil",
]


def test_worker_role_is_denied_ddl_and_what_a_job_was_enqueued_with(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    job_id = make_job(conn, "t", payload={"n": 1})
    with granted.connect(granted.worker) as worker:
        _all_denied(worker, WORKER_DENIED)
    job = job_row(conn, job_id)
    assert (job["task"], job["payload"]) == ("t", {"n": 1})


# --- readonly ------------------------------------------------------------------------------


def test_readonly_role_reads_everything_but_payloads(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    make_job(conn, "t", payload={"secret": "s"}, dedup_key="k", last_error="boom")
    make_worker(conn, str(uuid.uuid4()))
    with granted.connect(granted.readonly) as dashboard:
        row = dashboard.execute(
            "SELECT id, task, queue, status, attempts, run_after, last_error, errors, dedup_key"
            " FROM pgworker.jobs"
        ).fetchone()
        assert row is not None
        assert row[1:3] == ("t", "default")
        assert dashboard.execute("SELECT count(*) FROM pgworker.jobs").fetchone() == (1,)
        assert len(dashboard.execute("SELECT * FROM pgworker.workers").fetchall()) == 1
        dashboard.execute("SELECT * FROM pgworker.queues").fetchall()
        require_schema(dashboard)


READONLY_DENIED = [
    "SELECT payload FROM pgworker.jobs",
    "SELECT * FROM pgworker.jobs",
    "SELECT j FROM pgworker.jobs AS j",
    "SELECT pgworker.enqueue('t')",
    "INSERT INTO pgworker.jobs (task) VALUES ('t')",
    "UPDATE pgworker.jobs SET status = 'failed'",
    "DELETE FROM pgworker.jobs",
    "DELETE FROM pgworker.workers",
    "UPDATE pgworker.queues SET paused = true",
    "CREATE TABLE pgworker.evil (x int)",
]


def test_readonly_role_is_denied_payloads_and_writes(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    make_job(conn, "t", payload={"secret": "s"})
    with granted.connect(granted.readonly) as dashboard:
        _all_denied(dashboard, READONLY_DENIED)


# --- what the grants are -------------------------------------------------------------------


def _column_privileges(conn: psycopg.Connection[Any], role: str) -> dict[str, set[str]]:
    rows = conn.execute(
        """
        SELECT privilege_type, column_name::text
        FROM information_schema.column_privileges
        WHERE grantee = %s AND table_schema = 'pgworker' AND table_name = 'jobs'
        """,
        (role,),
    ).fetchall()
    found: dict[str, set[str]] = {}
    for privilege, column in rows:
        found.setdefault(privilege, set()).add(column)
    return found


def test_column_grants_on_jobs_are_exactly_these(
    granted: Roles, conn: psycopg.Connection[Any]
) -> None:
    """Pinned: a new jobs column stays hidden from dashboards and applications until decided."""
    every = {
        name
        for (name,) in conn.execute(
            "SELECT attname::text FROM pg_attribute"
            " WHERE attrelid = 'pgworker.jobs'::regclass AND attnum > 0 AND NOT attisdropped"
        )
    }
    application = {"task", "queue", "payload", "priority", "run_after", "max_attempts", "dedup_key"}
    lifecycle = {"status", "attempts", "run_after", "started_at", "finished_at", "worker_id",
                 "max_attempts", "last_error", "errors"}  # fmt: skip
    assert _column_privileges(conn, granted.enqueue) == {"INSERT": application}
    assert _column_privileges(conn, granted.readonly) == {"SELECT": every - {"payload"}}
    worker = _column_privileges(conn, granted.worker)
    assert worker["SELECT"] == every
    assert worker["UPDATE"] == lifecycle
    assert worker["INSERT"] == application


def test_enqueue_function_is_hardened(granted: Roles, conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT prosecdef, proconfig, proacl::text[] FROM pg_proc WHERE oid = %s::regprocedure",
        (ENQUEUE_SIGNATURE,),
    ).fetchone()
    assert row is not None
    security_definer, config, acl = row
    assert security_definer
    assert config == ["search_path=pg_catalog, pg_temp"]
    assert not any(entry.startswith("=") for entry in acl), acl  # nothing for PUBLIC
    with granted.connect(granted.readonly) as dashboard:
        _denied(dashboard, "SELECT pgworker.enqueue('t')")


def test_grants_are_idempotent(granted: Roles, conn: psycopg.Connection[Any]) -> None:
    before = _column_privileges(conn, granted.worker)
    granted.grant_all()
    assert _column_privileges(conn, granted.worker) == before


def test_grant_refuses_a_role_that_does_not_exist(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        roles.grant(conn, [("worker", f"pgwt_missing_{uuid.uuid4().hex[:8]}")])


@pytest.mark.parametrize(
    "name",
    [
        'x"; DROP TABLE pgworker.jobs; --',
        "x'; DROP TABLE pgworker.jobs; --",
        "$$",
        "app role",
        "🎉",
        "a" * 64,
        "a" * 5000,
        "",
        "public",
        "PUBLIC",
        "none",
        "pg_read_all_data",
        "1abc",
    ],
)
def test_role_names_outside_the_allow_list_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="role name"):
        roles.grant_statements("worker", name)


def test_readme_shows_the_grants_as_sql() -> None:
    expected = roles.grant_sql(
        [("worker", "app_worker"), ("enqueue", "app_enqueue"), ("readonly", "app_readonly")]
    )
    assert expected in README.read_text(), (
        "README's Security section is stale: paste pgworker.roles.grant_sql(...) output"
    )
