"""Enqueue every way: the SQL function, the Python client, COPY, dedup under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from pgworker import Client

from support import count_jobs, job_row


@pytest.fixture
def client(dsn: str) -> Any:
    with Client(dsn) as c:
        yield c


def test_sql_function_with_named_arguments(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT pgworker.enqueue('send_email', payload => '{\"to\": \"a@example.com\"}',"
        " queue => 'mail', priority => 5, max_attempts => 3)"
    ).fetchone()
    assert row is not None
    job = job_row(conn, row[0])
    assert (job["task"], job["queue"], job["priority"], job["max_attempts"]) == (
        "send_email", "mail", 5, 3,
    )  # fmt: skip
    assert job["payload"] == {"to": "a@example.com"}


def test_sql_function_defaults(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT pgworker.enqueue('t')").fetchone()
    assert row is not None
    job = job_row(conn, row[0])
    assert (job["queue"], job["payload"], job["priority"], job["status"]) == (
        "default", {}, 0, "pending",
    )  # fmt: skip
    assert job["run_after"] == job["created_at"]


def test_sql_function_run_after_and_dedup(conn: psycopg.Connection[Any]) -> None:
    first = conn.execute(
        "SELECT pgworker.enqueue('t', run_after => now() + interval '1 hour', dedup_key => 'k')"
    ).fetchone()
    again = conn.execute("SELECT pgworker.enqueue('t', dedup_key => 'k')").fetchone()
    assert first is not None
    assert first[0] is not None
    assert again == (None,)
    job = job_row(conn, first[0])
    assert job["run_after"] > job["created_at"] + timedelta(minutes=59)


def test_client_enqueue_returns_the_id(client: Client, conn: psycopg.Connection[Any]) -> None:
    job_id = client.enqueue("send_email", {"to": "a@example.com"}, queue="mail", priority=-1)
    assert job_id is not None
    job = job_row(conn, job_id)
    assert (job["task"], job["queue"], job["priority"], job["payload"]) == (
        "send_email", "mail", -1, {"to": "a@example.com"},
    )  # fmt: skip


def test_client_delay_uses_the_database_clock(
    client: Client, conn: psycopg.Connection[Any]
) -> None:
    job = job_row(conn, client.enqueue("t", delay=30) or 0)
    assert timedelta(seconds=29.9) <= job["run_after"] - job["created_at"] <= timedelta(seconds=31)


def test_client_run_after(client: Client, conn: psycopg.Connection[Any]) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = job_row(conn, client.enqueue("t", run_after=when) or 0)
    assert job["run_after"] == when


def test_run_after_and_delay_together_are_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="not both"):
        client.enqueue("t", run_after=datetime.now(UTC), delay=1)


def test_enqueue_joins_the_callers_transaction(
    client: Client, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn) as own:
        kept = client.enqueue("kept", conn=own)
        own.commit()
        dropped = client.enqueue("dropped", conn=own)
        assert dropped is not None
        assert count_jobs(conn) == 1  # not visible before commit
        own.rollback()
    assert count_jobs(conn) == 1
    assert job_row(conn, kept or 0)["task"] == "kept"


def test_dedup_key_is_a_no_op_while_the_job_is_live(
    client: Client, conn: psycopg.Connection[Any]
) -> None:
    first = client.enqueue("t", dedup_key="order-7")
    assert first is not None
    assert client.enqueue("t", dedup_key="order-7") is None
    conn.execute("UPDATE pgworker.jobs SET status = 'processing' WHERE id = %s", (first,))
    assert client.enqueue("t", dedup_key="order-7") is None
    conn.execute("UPDATE pgworker.jobs SET status = 'succeeded' WHERE id = %s", (first,))
    assert client.enqueue("t", dedup_key="order-7") is not None


def test_dedup_is_safe_under_fifty_concurrent_inserts(
    client: Client, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    barrier = threading.Barrier(50)
    results: list[int | None] = []
    lock = threading.Lock()

    def insert() -> None:
        with psycopg.connect(dsn, autocommit=True) as own:
            barrier.wait()
            job_id = client.enqueue("t", {"n": 1}, dedup_key="same", conn=own)
            with lock:
                results.append(job_id)

    threads = [threading.Thread(target=insert) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 50
    assert sum(r is not None for r in results) == 1
    assert count_jobs(conn) == 1


def test_nul_in_payload_is_refused_before_sending(
    client: Client, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(ValueError, match="NUL"):
        client.enqueue("t", {"s": "a\x00b"})
    assert count_jobs(conn) == 0


def test_a_check_refusal_is_a_value_error_naming_the_constraint(client: Client) -> None:
    with pytest.raises(ValueError, match="jobs_max_attempts_range"):
        client.enqueue("t", max_attempts=0)
    with pytest.raises(ValueError, match="jobs_payload_size"):
        client.enqueue("t", "x" * (1024 * 1024 + 1))


def test_enqueue_many_copies_every_payload(client: Client, conn: psycopg.Connection[Any]) -> None:
    payloads = [{"n": n, "text": 'tab\there "quoted" back\\slash é'} for n in range(5000)]
    assert client.enqueue_many("bulk", payloads, queue="batch", priority=2, max_attempts=7) == 5000
    rows = conn.execute(
        "SELECT payload, queue, priority, max_attempts, status FROM pgworker.jobs ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == payloads
    assert {r[1:] for r in rows} == {("batch", 2, 7, "pending")}


def test_enqueue_many_delay(client: Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue_many("bulk", [1, 2, 3], delay=60)
    row = conn.execute("SELECT min(run_after - created_at), count(*) FROM pgworker.jobs").fetchone()
    assert row is not None
    assert row[0] >= timedelta(seconds=59)
    assert row[1] == 3


def test_enqueue_many_in_the_callers_transaction(
    client: Client, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn) as own:
        client.enqueue_many("bulk", range(10), conn=own)
        own.rollback()
    assert count_jobs(conn) == 0


def test_enqueue_many_refuses_a_bad_payload_and_inserts_nothing(
    client: Client, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(ValueError, match="NUL"):
        client.enqueue_many("bulk", [{"ok": 1}] * 3000 + [{"bad": "\x00"}])
    assert count_jobs(conn) == 0


def test_client_from_an_existing_pool(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with ConnectionPool(dsn, min_size=1, max_size=2, open=True) as pool:
        client = Client.from_pool(pool)
        assert client.enqueue("pooled") is not None
        client.close()
        assert not pool.closed
    assert count_jobs(conn) == 1
