"""The schema on a real server: migrations, the committed dump, CHECKs, defaults, NOTIFY."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgworker import migrate

from support import job_row, make_job

SCHEMA_SQL = Path(__file__).parents[2] / "migrations" / "schema.sql"


def test_schema_revision_is_alembics_head() -> None:
    assert migrate.head_revision() == migrate.SCHEMA_REVISION


def test_committed_schema_sql_matches_head(conn: psycopg.Connection[Any]) -> None:
    assert migrate.dump_schema(conn) == SCHEMA_SQL.read_text(), (
        "migrations/schema.sql is stale: run `make schema`"
    )


def test_migrate_is_idempotent_and_downgrades_to_nothing(empty_db: str) -> None:
    assert migrate.upgrade(empty_db) == (None, migrate.SCHEMA_REVISION)
    assert migrate.upgrade(empty_db) == (migrate.SCHEMA_REVISION, migrate.SCHEMA_REVISION)
    assert migrate.downgrade(empty_db, "base") == (migrate.SCHEMA_REVISION, None)
    with psycopg.connect(empty_db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'pgworker' AND c.relname NOT LIKE 'alembic_version%'"
        ).fetchone()
        assert row == (0,)
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'pgworker'"
        ).fetchone()
        assert functions == (0,)
    assert migrate.upgrade(empty_db) == (None, migrate.SCHEMA_REVISION)


def test_every_revision_downgrades_and_upgrades_again(empty_db: str) -> None:
    migrate.upgrade(empty_db)
    revisions = [f"{n:04d}" for n in range(1, int(migrate.SCHEMA_REVISION) + 1)]
    for revision in reversed(revisions[:-1]):
        assert migrate.downgrade(empty_db, revision)[1] == revision
    migrate.downgrade(empty_db, "base")
    for revision in revisions:
        assert migrate.upgrade(empty_db, revision)[1] == revision


def test_offline_sql_creates_the_schema_and_its_version_table() -> None:
    text = migrate.migration_sql("head")
    assert "CREATE SCHEMA IF NOT EXISTS pgworker" in text
    assert "CREATE TABLE pgworker.alembic_version" in text
    assert "CREATE TABLE pgworker.jobs" in text
    assert "pg_advisory_xact_lock" in text


def test_plain_insert_defaults_every_column_but_task(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("INSERT INTO pgworker.jobs (task) VALUES ('send_email') RETURNING id")
    job = job_row(conn, row.fetchone()[0])  # type: ignore[index]
    assert job["queue"] == "default"
    assert job["payload"] == {}
    assert job["status"] == "pending"
    assert (job["priority"], job["attempts"], job["max_attempts"]) == (0, 0, None)
    assert job["run_after"] == job["created_at"]
    assert job["worker_id"] is None
    assert job["dedup_key"] is None


def test_multi_row_insert(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " VALUES ('a', '{\"n\": 1}'), ('b', '[]'), ('c', '3')"
    )
    tasks = conn.execute("SELECT task FROM pgworker.jobs ORDER BY id").fetchall()
    assert tasks == [("a",), ("b",), ("c",)]


def test_the_id_cannot_be_chosen_by_an_insert(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.GeneratedAlways):
        conn.execute("INSERT INTO pgworker.jobs (id, task) VALUES (1, 'x')")


@pytest.mark.parametrize(
    ("columns", "values", "constraint"),
    [
        ("task", ("",), "jobs_task_format"),
        ("task", ("has space",), "jobs_task_format"),
        ("task", ("x" * 201,), "jobs_task_format"),
        ("task", ("drop;--",), "jobs_task_format"),
        ("task, queue", ("ok", "bad queue"), "jobs_queue_format"),
        ("task, queue", ("ok", "q" * 201), "jobs_queue_format"),
        ("task, max_attempts", ("ok", 0), "jobs_max_attempts_range"),
        ("task, max_attempts", ("ok", 1001), "jobs_max_attempts_range"),
        ("task, status", ("ok", "done"), "jobs_status_valid"),
        ("task, dedup_key", ("ok", ""), "jobs_dedup_key_length"),
        ("task, dedup_key", ("ok", "k" * 501), "jobs_dedup_key_length"),
    ],
)
def test_checks_refuse_bad_rows(
    conn: psycopg.Connection[Any], columns: str, values: tuple[Any, ...], constraint: str
) -> None:
    placeholders = ", ".join(["%s"] * len(values))
    with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
        conn.execute(f"INSERT INTO pgworker.jobs ({columns}) VALUES ({placeholders})", values)  # type: ignore[arg-type]
    assert excinfo.value.diag.constraint_name == constraint


def test_not_null_payload_and_run_after(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.NotNullViolation):
        conn.execute("INSERT INTO pgworker.jobs (task, payload) VALUES ('x', NULL)")
    with pytest.raises(psycopg.errors.NotNullViolation):
        conn.execute("INSERT INTO pgworker.jobs (task, run_after) VALUES ('x', NULL)")


def test_payload_cap_is_one_mebibyte(conn: psycopg.Connection[Any]) -> None:
    # A jsonb string of n bytes takes n + 8 bytes (varlena header, container, entry).
    just_under = json.dumps("a" * (1024 * 1024 - 64))
    make_job(conn, "big", payload=just_under)
    with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
        make_job(conn, "big", payload=json.dumps("a" * (1024 * 1024)))
    assert excinfo.value.diag.constraint_name == "jobs_payload_size"


def _listen(dsn: str) -> psycopg.Connection[Any]:
    listener = psycopg.connect(dsn, autocommit=True)
    listener.execute("LISTEN pgworker_jobs")
    return listener


def _notifications(listener: psycopg.Connection[Any], timeout: float = 2.0) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=timeout, stop_after=100)]


def test_insert_notifies_once_per_queue_with_the_queue_name(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with _listen(dsn) as listener:
        conn.execute(
            "INSERT INTO pgworker.jobs (task, queue)"
            " SELECT 't', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 50) i"
        )
        got = []
        for note in listener.notifies(timeout=2.0, stop_after=2):
            got.append(note.payload)
        assert sorted(got) == ["a", "b"]
        assert _notifications(listener, timeout=0.2) == []


def test_copy_wakes_a_listener(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with _listen(dsn) as listener:
        with (
            conn.cursor() as cur,
            cur.copy("COPY pgworker.jobs (task, payload) FROM STDIN") as copy,
        ):
            for n in range(1000):
                copy.write_row(("copied", json.dumps({"n": n})))
        notes = list(listener.notifies(timeout=2.0, stop_after=1))
        assert [n.payload for n in notes] == ["default"]


def test_a_one_mebibyte_job_inserts_and_notifies(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with _listen(dsn) as listener:
        make_job(conn, "big", payload=json.dumps("z" * (1024 * 1024 - 64)))
        notes = list(listener.notifies(timeout=2.0, stop_after=1))
        assert [n.payload for n in notes] == ["default"]


def test_jobs_scheduled_for_later_wake_nobody(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with _listen(dsn) as listener:
        make_job(conn, "later", run_after="1 hour")
        assert _notifications(listener, timeout=0.3) == []
