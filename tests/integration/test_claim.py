"""The claim statements on a seeded table: order, locking, fencing, and their plans."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pgworker import queries
from pgworker.worker import claim_statements

from support import make_job, make_worker

WORKER = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"
SINGLE = claim_statements(queries.CLAIM_JOBS_TEMPLATE)
MULTI = claim_statements(queries.CLAIM_JOBS_MULTI_TEMPLATE)


def claim(
    conn: psycopg.Connection[Any], size: int, queues: tuple[str, ...] = ("default",), **kw: Any
) -> list[int]:
    worker = kw.get("worker", WORKER)
    if len(queues) == 1:
        rows = conn.execute(SINGLE[size], {"queue": queues[0], "worker_id": worker}).fetchall()
    else:
        rows = conn.execute(MULTI[size], {"queues": list(queues), "worker_id": worker}).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def registered(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    make_worker(conn, WORKER)
    make_worker(conn, OTHER)
    return conn


def test_claim_order_is_priority_then_run_after_then_id(
    registered: psycopg.Connection[Any],
) -> None:
    conn = registered
    expected = [
        make_job(conn, priority=-5, run_after="-1 second"),
        make_job(conn, priority=-5),
        make_job(conn, priority=0, run_after="-1 hour"),
        make_job(conn, priority=0, run_after="-1 minute"),
        make_job(conn, priority=0, run_after="-1 minute"),
        make_job(conn, priority=3),
    ]
    make_job(conn, priority=-9, run_after="1 hour")  # not due, whatever its priority
    make_job(conn, priority=0, run_after="1 minute")
    make_job(conn, queue="elsewhere", priority=-100)
    assert claim(conn, 2) == expected[:2]
    assert claim(conn, 100) == expected[2:]
    assert claim(conn, 100) == []


def test_claim_marks_the_rows_for_this_worker(registered: psycopg.Connection[Any]) -> None:
    conn = registered
    job_id = make_job(conn, "send", payload={"to": "x"}, attempts=2, max_attempts=5)
    rows = conn.execute(SINGLE[1], {"queue": "default", "worker_id": WORKER}).fetchall()
    assert len(rows) == 1
    assert rows[0][:5] == (job_id, "send", "default", 3, 5)
    assert json.loads(rows[0][5]) == {"to": "x"}
    row = conn.execute(
        "SELECT status, worker_id::text, started_at IS NOT NULL FROM pgworker.jobs"
    ).fetchone()
    assert row == ("processing", WORKER, True)


def test_a_worker_without_a_row_claims_nothing(registered: psycopg.Connection[Any]) -> None:
    make_job(registered)
    assert claim(registered, 10, worker="33333333-3333-4333-8333-333333333333") == []


def test_a_paused_queue_is_not_claimed(registered: psycopg.Connection[Any]) -> None:
    conn = registered
    make_job(conn, queue="a")
    b = make_job(conn, queue="b")
    conn.execute("INSERT INTO pgworker.queues (name, paused) VALUES ('a', true)")
    assert claim(conn, 10, ("a",)) == []
    assert claim(conn, 10, ("a", "b")) == [b]


def test_several_queues_keep_the_claim_order(registered: psycopg.Connection[Any]) -> None:
    conn = registered
    jobs = {
        "b-urgent": make_job(conn, queue="b", priority=-1),
        "a-first": make_job(conn, queue="a", run_after="-1 minute"),
        "b-normal": make_job(conn, queue="b", run_after="-30 seconds"),
        "a-later": make_job(conn, queue="a", priority=2),
    }
    make_job(conn, queue="c", priority=-9)
    make_job(conn, queue="a", priority=-9, run_after="1 hour")
    assert claim(conn, 3, ("a", "b")) == [jobs["b-urgent"], jobs["a-first"], jobs["b-normal"]]
    assert claim(conn, 3, ("a", "b")) == [jobs["a-later"]]


def test_concurrent_claims_skip_each_others_rows(
    registered: psycopg.Connection[Any], dsn: str
) -> None:
    ids = [make_job(registered) for _ in range(10)]
    with psycopg.connect(dsn) as first, psycopg.connect(dsn, autocommit=True) as second:
        held = claim(first, 4)  # its transaction stays open: the rows stay locked
        other = claim(second, 100, worker=OTHER)
        first.commit()
    assert held == ids[:4]
    assert other == ids[4:]


def _plan(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> Any:
    """The generic plan of a prepared claim, executed: the plan psycopg ends up using."""
    conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        with conn.transaction():
            row = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params, prepare=False
            ).fetchone()
            raise psycopg.Rollback()
    finally:
        conn.execute("RESET plan_cache_mode")
    assert row is not None
    return row[0][0]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _seed(conn: psycopg.Connection[Any], due: int, future: int, finished: int) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task) SELECT 'noop' FROM generate_series(1, %s)", (due,)
    )
    conn.execute(
        "INSERT INTO pgworker.jobs (task, run_after)"
        " SELECT 'noop', now() + interval '1 day' FROM generate_series(1, %s)",
        (future,),
    )
    conn.execute(
        "INSERT INTO pgworker.jobs (task, status, finished_at)"
        " SELECT 'noop', 'succeeded', now() FROM generate_series(1, %s)",
        (finished,),
    )
    conn.execute("VACUUM ANALYZE pgworker.jobs")


@pytest.mark.parametrize(
    ("due", "future", "finished", "size"),
    [(20_000, 20_000, 20_000, 200), (0, 20_000, 20_000, 200), (50, 20_000, 20_000, 200),
     (1_000, 100, 10_000, 100)],  # a small table, where a sequential scan looks cheap
)  # fmt: skip
def test_the_claim_walks_the_claim_index_only(
    registered: psycopg.Connection[Any], due: int, future: int, finished: int, size: int
) -> None:
    conn = registered
    _seed(conn, due=due, future=future, finished=finished)
    params = {"queue": "default", "worker_id": WORKER}
    for _ in range(10):  # psycopg prepares after 5 runs; the server may go generic after 5
        with conn.transaction():
            conn.execute(SINGLE[size], params, prepare=True)
            raise psycopg.Rollback()
    plan = _plan(conn, SINGLE[size], params)
    nodes = _nodes(plan["Plan"])
    scans = {(n["Node Type"], n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]}
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n["Relation Name"] == "jobs"]
    assert ("Index Scan", "jobs_claim_idx") in scans
    if due:
        assert ("Tid Scan", None) in scans  # the claimed rows are updated in place
    # Finding the rows reads a handful of pages whether 0, 50 or 20,000 jobs are due, with
    # 20,000 future and 20,000 finished rows beside them. (Updating each claimed row costs
    # its own ~13 pages: heap, primary key, jobs_rescue_idx.)
    walks = [n for n in nodes if n.get("Index Name") == "jobs_claim_idx"]
    assert sum(n["Shared Hit Blocks"] + n.get("Shared Read Blocks", 0) for n in walks) <= 40
    if due == 0:
        assert plan["Plan"]["Shared Hit Blocks"] <= 40
