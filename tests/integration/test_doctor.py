"""`doctor`'s checks on a real server: held-back xmin, a pooler eating NOTIFY, the claim plan."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgworker.doctor import OK, SKIPPED, WARNING, Check, run_checks
from pgworker.migrate import SCHEMA_REVISION

from proxy import NotificationDroppingProxy
from support import make_job, make_worker

Conn = psycopg.Connection[Any]


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_a_healthy_database(dsn: str, conn: Conn) -> None:
    make_worker(conn, str(uuid.uuid4()), tasks=("a",))
    make_job(conn, "a")
    checks = _by_name(run_checks(dsn, listen_timeout=10))
    assert list(checks) == [
        "connection", "schema", "listen", "xmin", "notify_queue", "vacuum", "claim_plan",
        "unrunnable",
    ]  # fmt: skip
    healthy = {name: c.status for name, c in checks.items() if name != "vacuum"}
    assert set(healthy.values()) == {OK}, [c for c in checks.values() if c.status != OK]
    assert checks["schema"].reason == f"at head ({SCHEMA_REVISION})"
    assert checks["listen"].reason.startswith("a NOTIFY came back through LISTEN in")
    assert checks["claim_plan"].reason == "the claim of queue 'default' walks jobs_claim_idx"
    # This machine's server may run without autovacuum: the check must say so.
    autovacuum = conn.execute("SELECT current_setting('autovacuum')::boolean").fetchone()
    assert checks["vacuum"].status == (OK if autovacuum == (True,) else WARNING)


def test_a_snapshot_held_open_holds_back_vacuum(dsn: str) -> None:
    with psycopg.connect(dsn, application_name="forgotten-report") as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM pgworker.jobs")  # takes the snapshot
        pid = holder.info.backend_pid
        xmin = _by_name(run_checks(dsn, max_xmin_age=0, listen_timeout=10))["xmin"]
        assert xmin.status == WARNING
        assert f"session pid {pid} (forgotten-report, idle in transaction)" in xmin.reason
        assert "has held back vacuum" in xmin.reason
        assert f"pg_terminate_backend({pid})" in xmin.fix
        # Younger than the limit: reported, not a warning.
        calm = _by_name(run_checks(dsn, max_xmin_age=3600, listen_timeout=10))["xmin"]
        assert calm.status == OK
        assert f"oldest snapshot: session pid {pid}" in calm.reason
        holder.rollback()
    gone = _by_name(run_checks(dsn, max_xmin_age=0, listen_timeout=10))["xmin"]
    assert (gone.status, gone.reason) == (
        OK, "no transaction or replication slot holds back vacuum",
    )  # fmt: skip


@pytest.fixture
def pooler(dsn: str) -> Iterator[NotificationDroppingProxy]:
    """A path to the test database that loses every notification, like PgBouncer does."""
    proxy = NotificationDroppingProxy(dsn)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_pooler_that_drops_notifications_is_detected(pooler: NotificationDroppingProxy) -> None:
    checks = _by_name(run_checks(pooler.dsn(), listen_timeout=1))
    listen = checks["listen"]
    assert listen.status == WARNING
    assert "never reached a LISTEN" in listen.reason
    assert "--no-listen" in listen.fix
    assert pooler.dropped >= 1  # the NOTIFY was sent, and lost on the way
    assert checks["schema"].status == OK  # everything else goes through


def test_the_claim_plan(conn: Conn, dsn: str) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, queue) SELECT 't', 'bulk' FROM generate_series(1, 12000)"
    )
    conn.execute("ANALYZE pgworker.jobs")
    plan = _by_name(run_checks(dsn, listen_timeout=10))["claim_plan"]
    assert (plan.status, plan.reason) == (OK, "the claim of queue 'bulk' walks jobs_claim_idx")

    # A planner that will not use the index (new sessions of this database only).
    database = sql.Identifier(conn.info.dbname)
    for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = off").format(database, sql.Identifier(setting))
        )
    scanned = _by_name(run_checks(dsn, listen_timeout=10))["claim_plan"]
    assert scanned.status == WARNING
    assert "does not use jobs_claim_idx with 10,000+ pending jobs" in scanned.reason

    conn.execute("DROP INDEX pgworker.jobs_claim_idx")
    missing = _by_name(run_checks(dsn, listen_timeout=10))["claim_plan"]
    assert missing.status == WARNING
    assert "jobs_claim_idx is missing" in missing.reason
    assert "CREATE INDEX CONCURRENTLY jobs_claim_idx" in missing.fix


def test_a_small_table_may_be_scanned(conn: Conn, dsn: str) -> None:
    make_job(conn, "t")
    database = sql.Identifier(conn.info.dbname)
    conn.execute(sql.SQL("ALTER DATABASE {} SET enable_indexscan = off").format(database))
    conn.execute(sql.SQL("ALTER DATABASE {} SET enable_bitmapscan = off").format(database))
    plan = _by_name(run_checks(dsn, listen_timeout=10))["claim_plan"]
    assert plan.status == OK
    assert "scans the table, as cheap as the index with 1 pending jobs" in plan.reason


def test_unrunnable_jobs(conn: Conn, dsn: str) -> None:
    make_worker(conn, str(uuid.uuid4()), queues=("default",), tasks=("a",))
    make_job(conn, "a")
    make_job(conn, "b")
    make_job(conn, "c", queue="mail")
    check = _by_name(run_checks(dsn, listen_timeout=10))["unrunnable"]
    assert check.status == WARNING
    assert "2 pending jobs no live worker can run" in check.reason
    assert "1 of task 'b' in queue 'default' (no worker has the task)" in check.reason
    assert "1 of task 'c' in queue 'mail' (no worker serves the queue)" in check.reason


def test_a_missing_schema_skips_what_needs_it(empty_db: str) -> None:
    checks = _by_name(run_checks(empty_db, listen_timeout=10))
    assert checks["schema"].status == WARNING
    assert checks["schema"].fix == "pgworker migrate"
    assert {checks[n].status for n in ("vacuum", "claim_plan", "unrunnable")} == {SKIPPED}
    assert checks["listen"].status == OK
