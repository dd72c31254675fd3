"""Hostile strings through the SQL function, the client and COPY: stored as data or refused.

Each string tries to end the statement and run another one that drops a canary table or
empties the jobs table. Afterwards the canary is intact and the jobs are exactly the
expected ones: nothing was ever interpreted.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
import pytest

from pgworker import Client

from support import Roles, count_jobs, job_row

HOSTILE = [
    "x'); DROP TABLE public.canary; --",
    "x'; DELETE FROM pgworker.jobs; --",
    'x"; DROP TABLE public.canary; --',
    "$$; DROP TABLE public.canary; $$",
    "$q$ || (SELECT pg_sleep(30)) || $q$",
    "\\'; TRUNCATE pgworker.jobs; --",
    "%(task)s %s {} {0}",
    "🎉 emoji 🔥 ключ 鍵",
    "line\nbreak\ttab\rreturn",
    "k" * 500,
]
TOO_LONG = "x'); DROP TABLE public.canary; --" + "a" * 5000


@pytest.fixture
def canary(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("CREATE TABLE public.canary (note text)")
    conn.execute("INSERT INTO public.canary VALUES ('alive')")
    return conn


def _canary_alive(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT note FROM public.canary").fetchall() == [("alive",)]


def test_the_sql_function_stores_dedup_keys_and_payloads_verbatim(
    granted: Roles, canary: psycopg.Connection[Any]
) -> None:
    with granted.connect(granted.enqueue) as app:
        ids = []
        for value in HOSTILE:
            row = app.execute(
                "SELECT pgworker.enqueue('t', payload => jsonb_build_object('s', %s::text),"
                " dedup_key => %s)",
                (value, value),
            ).fetchone()
            assert row is not None
            ids.append(row[0])
    for job_id, value in zip(ids, HOSTILE, strict=True):
        job = job_row(canary, job_id)
        assert (job["dedup_key"], job["payload"]) == (value, {"s": value})
    assert count_jobs(canary) == len(HOSTILE)
    assert _canary_alive(canary)


@pytest.mark.parametrize(
    ("argument", "constraint"),
    [("task", "jobs_task_format"), ("queue", "jobs_queue_format")],
)
def test_the_sql_function_refuses_hostile_names_by_constraint(
    granted: Roles, canary: psycopg.Connection[Any], argument: str, constraint: str
) -> None:
    statement = (
        "SELECT pgworker.enqueue(%s)"
        if argument == "task"
        else "SELECT pgworker.enqueue('t', queue => %s)"
    )
    with granted.connect(granted.enqueue) as app:
        for value in [*HOSTILE, TOO_LONG, "", "a b"]:
            with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
                app.execute(statement, (value,))  # type: ignore[arg-type]
            assert excinfo.value.diag.constraint_name == constraint
            assert f"invalid {argument} name" in str(excinfo.value)
        with pytest.raises(psycopg.errors.CheckViolation, match="length 5033"):
            app.execute(statement, (TOO_LONG,))  # type: ignore[arg-type]
    assert count_jobs(canary) == 0
    assert _canary_alive(canary)


def test_the_sql_function_checks_every_argument(granted: Roles) -> None:
    huge = '"' + "x" * (1024 * 1024) + '"'
    cases: list[tuple[str, tuple[str, ...], type[Exception], str]] = [
        ("SELECT pgworker.enqueue(NULL)", (), psycopg.errors.NotNullViolation,
         "task is required"),
        ("SELECT pgworker.enqueue('t', dedup_key => %s)", (TOO_LONG,),
         psycopg.errors.CheckViolation, "dedup_key of 5033 characters"),
        ("SELECT pgworker.enqueue('t', dedup_key => '')", (), psycopg.errors.CheckViolation,
         "dedup_key of 0 characters"),
        ("SELECT pgworker.enqueue('t', max_attempts => 0)", (), psycopg.errors.CheckViolation,
         "max_attempts 0 is out of range"),
        ("SELECT pgworker.enqueue('t', priority => 40000)", (),
         psycopg.errors.NumericValueOutOfRange, "priority 40000 is out of range"),
        ("SELECT pgworker.enqueue('t', run_after => 'infinity')", (),
         psycopg.errors.InvalidParameterValue, "run_after must be a finite time"),
        ("SELECT pgworker.enqueue('t', payload => %s::jsonb)", (huge,),
         psycopg.errors.CheckViolation, "jobs_payload_size"),
    ]  # fmt: skip
    with granted.connect(granted.enqueue) as app:
        for statement, params, error, message in cases:
            with pytest.raises(error, match=message):
                app.execute(statement, params or None)  # type: ignore[arg-type]


def test_the_client_stores_hostile_data_verbatim(
    granted: Roles, canary: psycopg.Connection[Any]
) -> None:
    with Client(granted.dsn(granted.enqueue)) as client:
        ids = [client.enqueue("t", {"s": value}, dedup_key=value) for value in HOSTILE]
        assert client.enqueue_many("bulk", [{"s": value} for value in HOSTILE]) == len(HOSTILE)
    for job_id, value in zip(ids, HOSTILE, strict=True):
        assert job_id is not None
        job = job_row(canary, job_id)
        assert (job["dedup_key"], job["payload"]) == (value, {"s": value})
    copied = canary.execute(
        "SELECT payload->>'s' FROM pgworker.jobs WHERE task = 'bulk' ORDER BY id"
    ).fetchall()
    assert [r[0] for r in copied] == HOSTILE
    assert _canary_alive(canary)


def test_the_client_refuses_hostile_names_before_sending(
    granted: Roles, canary: psycopg.Connection[Any]
) -> None:
    with Client(granted.dsn(granted.enqueue)) as client:
        for value in [*HOSTILE, TOO_LONG]:
            with pytest.raises(ValueError, match="invalid task name"):
                client.enqueue(value)
            with pytest.raises(ValueError, match="invalid queue name"):
                client.enqueue("t", queue=value)
            with pytest.raises(ValueError, match="invalid task name"):
                client.enqueue_many(value, [{}])
        with pytest.raises(ValueError, match="jobs_dedup_key_length"):
            client.enqueue("t", dedup_key=TOO_LONG)
        with pytest.raises(ValueError, match="NUL"):
            client.enqueue("t", dedup_key="a\x00b")
        with pytest.raises(ValueError, match="priority 40000 is out of range"):
            client.enqueue("t", priority=40000)
        with pytest.raises(ValueError, match="priority"):
            client.enqueue_many("t", [{}], priority=-40000)
    assert count_jobs(canary) == 0
    assert _canary_alive(canary)


def test_plain_inserts_of_hostile_names_hit_the_named_checks(
    granted: Roles, canary: psycopg.Connection[Any]
) -> None:
    with granted.connect(granted.enqueue) as app:
        for value in [*HOSTILE, TOO_LONG]:
            with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
                app.execute("INSERT INTO pgworker.jobs (task) VALUES (%s)", (value,))
            assert excinfo.value.diag.constraint_name == "jobs_task_format"
    assert count_jobs(canary) == 0
    assert _canary_alive(canary)
