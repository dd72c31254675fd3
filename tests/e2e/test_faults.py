"""Faults with real worker processes, real signals and a real database going away.

The workers run a short test profile: heartbeat 0.5 s, rescue 0.5 s, stale after 3 s, so
a lost worker's jobs are claimable again within BOUND seconds of the crash (stale-after +
heartbeat interval + rescue interval + 2 s, the documented worst case).
"""

from __future__ import annotations

import random
import re
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from proxy import Proxy
from support import Roles, count_jobs, job_row, make_job, make_worker, scrape, wait_until
from workers import Spawner, WorkerProcess, executions

PROFILE = (
    "--heartbeat-interval", "0.5", "--rescue-interval", "0.5", "--stale-after", "3",
    "--poll-interval", "0.2", "--shutdown-timeout", "2",
)  # fmt: skip
BOUND = 3 + 0.5 + 0.5 + 2


@pytest.fixture
def proxy(dsn: str) -> Iterator[Proxy]:
    front = Proxy(dsn)
    try:
        yield front
    finally:
        front.close()


def _runs_per_job(conn: psycopg.Connection[Any]) -> dict[int, list[tuple[int, int]]]:
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in executions(conn):
        runs[job_id].append((attempt, pid))
    return runs


def _stop(*workers: WorkerProcess) -> None:
    for worker in workers:
        if worker.proc.poll() is None:
            worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=30) == 0, worker.output()


def _connections(conn: psycopg.Connection[Any], worker_id: str) -> int:
    """How many server sessions a worker holds (its connections carry pgworker:<id>)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
        (f"pgworker:{worker_id}",),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _listening(conn: psycopg.Connection[Any], *workers: WorkerProcess) -> bool:
    """True when each worker has a session that LISTENs (its last statement: LISTEN or the
    notifier's ping)."""
    names = [f"pgworker:{w.worker_id()}" for w in workers]
    row = conn.execute(
        "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
        " WHERE application_name = ANY(%s) AND (query LIKE 'LISTEN%%' OR query = 'SELECT 1')",
        (names,),
    ).fetchone()
    return row == (len(workers),)


def _pickup_seconds(conn: psycopg.Connection[Any], job_id: int) -> float:
    """From a job's insert to its handler starting, on the database's clock."""
    row = conn.execute(
        "SELECT e.started_at - j.created_at FROM executions e JOIN pgworker.jobs j"
        " ON j.id = e.job_id WHERE j.id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return float(row[0].total_seconds())


def _silent_for(conn: psycopg.Connection[Any], worker_ids: list[str]) -> float:
    """Seconds since the most recent heartbeat of these workers (0 if a row is missing)."""
    row = conn.execute(
        "SELECT CASE WHEN count(*) = cardinality(%(ids)s::uuid[])"
        " THEN extract(epoch FROM now() - max(heartbeat_at)) ELSE 0 END"
        " FROM pgworker.workers WHERE id = ANY(%(ids)s::uuid[])",
        {"ids": worker_ids},
    ).fetchone()
    assert row is not None
    return float(row[0])


def _rescued_in_time(conn: psycopg.Connection[Any], due: dict[str, float]) -> bool:
    """Forget each killed worker that holds no job in `processing` any more; fail if one still
    holds a job past its due time (its kill + BOUND). True once every one is forgotten."""
    now = time.monotonic()
    held = {
        str(row[0])
        for row in conn.execute(
            "SELECT DISTINCT worker_id FROM pgworker.jobs"
            " WHERE status = 'processing' AND worker_id = ANY(%s::uuid[])",
            (list(due),),
        )
    }
    for worker_id, by in list(due.items()):
        if worker_id not in held:
            del due[worker_id]
        else:
            assert now < by, f"worker {worker_id}, killed {BOUND} s ago, still holds jobs"
    return not due


def test_a_killed_workers_job_is_rescued_within_the_bound(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    job_id = make_job(conn, "sleep", payload={"s": 30})
    first = spawn("--concurrency", "1", *PROFILE)
    first_id = first.wait_registered()
    wait_until(lambda: len(executions(conn)) == 1, message="the job is running")
    second = spawn("--concurrency", "1", *PROFILE)
    second.wait_registered()
    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(timeout=10)
    wait_until(lambda: len(executions(conn)) == 2, timeout=BOUND + 5, message="job ran again")
    took = time.monotonic() - killed_at
    assert took <= BOUND, f"rescued after {took:.1f} s"
    job = job_row(conn, job_id)
    assert job["attempts"] == 2
    assert first_id in job["errors"][0]["error"]
    assert "lost" in job["errors"][0]["error"]
    assert [pid for _, pid in _runs_per_job(conn)[job_id]] == [first.pid, second.pid]
    _stop(second)


def test_rescue_takes_back_jobs_whose_task_and_queue_the_rescuer_does_not_know(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    # Two dead workers of another app, on a queue the rescuer does not serve: one whose
    # heartbeat is an hour old, one whose row is gone.
    stale = make_worker(conn, str(uuid.uuid4()), queues=("billing",), tasks=("billing.charge",),
                        heartbeat_age="1 hour")  # fmt: skip
    gone = str(uuid.uuid4())
    held = {"status": "processing", "queue": "billing", "started_at": "-1 hour"}
    of_stale = make_job(conn, "billing.charge", attempts=1, worker_id=stale, **held)
    of_gone = make_job(conn, "billing.refund", attempts=2, worker_id=gone, **held)
    rescuer = spawn("--concurrency", "1", *PROFILE)
    rescuer_id = rescuer.wait_registered()
    served = conn.execute(
        "SELECT queues, tasks FROM pgworker.workers WHERE id = %s", (rescuer_id,)
    ).fetchone()
    assert served is not None
    assert served[0] == ["default"]
    assert not {"billing.charge", "billing.refund"} & set(served[1])
    # It declares others dead once it has heartbeated for --stale-after itself.
    wait_until(lambda: count_jobs(conn, "processing") == 0, timeout=BOUND,
               message="both jobs rescued")  # fmt: skip
    charge, refund = job_row(conn, of_stale), job_row(conn, of_gone)
    assert (charge["status"], charge["attempts"], charge["worker_id"]) == ("pending", 1, None)
    assert (refund["status"], refund["attempts"], refund["worker_id"]) == ("pending", 2, None)
    assert charge["last_error"] == f"worker {stale} (test-host pid 4242) lost: no heartbeat for 3 s"
    assert refund["last_error"] == f"worker {gone} lost: its worker row is gone"
    for job in (charge, refund):
        assert [(e["attempt"], e["error"]) for e in job["errors"]] == [
            (job["attempts"], job["last_error"])
        ]
    workers = conn.execute("SELECT id::text FROM pgworker.workers").fetchall()
    assert workers == [(rescuer_id,)]  # the stale row was deleted
    _stop(rescuer)
    assert rescuer.output().count("job rescued") == 2
    assert count_jobs(conn, "pending") == 2  # nobody here serves billing: they wait for its workers


def test_a_long_job_on_a_live_worker_is_never_rescued(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    job_id = make_job(conn, "sleep", payload={"s": 8})
    busy = spawn("--concurrency", "1", *PROFILE)
    busy.wait_registered()
    idle = spawn("--concurrency", "1", *PROFILE)
    idle.wait_registered()
    wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", timeout=30,
               message="the long job finished")  # fmt: skip
    job = job_row(conn, job_id)
    assert job["attempts"] == 1
    assert job["errors"] is None
    assert len(executions(conn)) == 1
    _stop(busy, idle)
    assert "job rescued" not in idle.output() + busy.output()


def test_a_paused_worker_changes_nothing_when_it_resumes(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    ids = [make_job(conn, "sleep", payload={"s": 2}) for _ in range(2)]
    paused = spawn("--concurrency", "2", *PROFILE)
    paused_id = paused.wait_registered()
    wait_until(lambda: len(executions(conn)) == 2, message="both jobs running")
    paused.signal(signal.SIGSTOP)
    rescuer = spawn("--concurrency", "2", *PROFILE)
    rescuer_id = rescuer.wait_registered()
    wait_until(
        lambda: all(job_row(conn, i)["status"] == "succeeded" for i in ids),
        timeout=30,
        message="the rescuer finished both jobs",
    )
    finished = {i: job_row(conn, i) for i in ids}
    assert {str(j["worker_id"]) for j in finished.values()} == {rescuer_id}
    paused.signal(signal.SIGCONT)
    wait_until(lambda: "late write changed nothing" in paused.output(), timeout=20,
               message="the resumed worker noticed its writes were fenced")  # fmt: skip
    wait_until(lambda: "declared dead" in paused.output(), timeout=20,
               message="the resumed worker re-registered")  # fmt: skip
    for job_id, before in finished.items():
        assert job_row(conn, job_id) == before  # the late writes changed nothing
    runs = _runs_per_job(conn)
    assert all([a for a, _ in runs[i]] == [1, 2] for i in ids)
    new_id = paused.worker_id()
    assert new_id not in (None, paused_id)  # carries on under a new id
    # Its sessions follow: the claim loop's and the heartbeat's are renamed in use.
    wait_until(lambda: _connections(conn, new_id) >= 2, message="sessions renamed")
    _stop(paused, rescuer)


def test_a_paused_worker_does_not_run_the_jobs_it_had_prefetched(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    # Short jobs at --concurrency 1, so the paused worker holds a prefetch buffer: claimed
    # jobs no thread has started. Another worker rescues them while it is stopped; resumed,
    # it must not start them (they may be running elsewhere), only finish the one it ran.
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', '{\"sleep\": 0.005}' FROM generate_series(1, 400)"
    )
    paused = spawn("--concurrency", "1", *PROFILE)
    paused_id = paused.wait_registered()
    wait_until(lambda: len(executions(conn)) >= 50, message="the worker warmed up")
    paused.signal(signal.SIGSTOP)
    row = conn.execute(
        "SELECT count(*) FROM pgworker.jobs WHERE status = 'processing' AND worker_id = %s",
        (paused_id,),
    ).fetchone()
    assert row is not None
    held = int(row[0])
    assert held >= 3, "the paused worker held no prefetched jobs"
    rescuer = spawn("--concurrency", "2", *PROFILE)
    rescuer.wait_registered()
    wait_until(lambda: count_jobs(conn, "succeeded") == 400, timeout=30,
               message="the rescuer finished every job")  # fmt: skip
    paused.signal(signal.SIGCONT)
    wait_until(lambda: "declared dead" in paused.output(), timeout=20,
               message="the resumed worker re-registered")  # fmt: skip
    _stop(paused, rescuer)
    runs = _runs_per_job(conn)
    assert len(runs) == 400
    twice = {job_id: r for job_id, r in runs.items() if len(r) > 1}
    # Only the job running at the pause may have run twice; the other held-1 jobs did not.
    assert len(twice) <= 1, f"{held} held, ran twice: {twice}"
    assert count_jobs(conn, "succeeded") == 400


def test_chaos_kills_lose_no_job_and_double_runs_only_what_was_running(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', '{\"sleep\": 0.02}' FROM generate_series(1, 2000)"
    )
    args = ("--concurrency", "4", "--prefetch", "8", *PROFILE)
    workers = [spawn(*args) for _ in range(3)]
    for worker in workers:
        worker.wait_registered()
    killed: set[int] = set()
    due: dict[str, float] = {}  # a killed worker's id: when its jobs must be claimable again
    rng = random.Random(5)
    last_kill = time.monotonic()
    for _ in range(4):
        victim_index = rng.randrange(len(workers))
        victim = workers[victim_index]
        start = time.monotonic()
        while time.monotonic() - start < 1:  # ~1 s of work: every kill lands mid-run
            if count_jobs(conn, "succeeded") >= 2000:
                break
            _rescued_in_time(conn, due)
            time.sleep(0.05)
        victim_id = victim.worker_id()
        assert victim_id is not None
        victim.signal(signal.SIGKILL)
        last_kill = time.monotonic()
        due[victim_id] = last_kill + BOUND
        victim.wait(timeout=10)
        killed.add(victim.pid)
        workers[victim_index] = spawn(*args)
        workers[victim_index].wait_registered()
    wait_until(lambda: _rescued_in_time(conn, due), timeout=BOUND + 1, interval=0.05,
               message="the killed workers' jobs back in the queue")  # fmt: skip
    # Nothing is left processing within the rescue bound of the last kill.
    left = max(0.0, last_kill + BOUND - time.monotonic())
    wait_until(lambda: count_jobs(conn, "succeeded") == 2000, timeout=left, interval=0.05,
               message="all done within the bound of the last kill")  # fmt: skip
    assert count_jobs(conn, "processing") == 0
    runs = _runs_per_job(conn)
    assert len(runs) == 2000
    for job_id, job_runs in runs.items():
        for _, pid in job_runs[:-1]:
            assert pid in killed, f"job {job_id} ran twice without a crash: {job_runs}"
    _stop(*workers)


def test_terminated_connections_change_nothing(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', '{\"sleep\": 0.005}' FROM generate_series(1, 3000)"
    )
    workers = [spawn("--concurrency", "4", *PROFILE) for _ in range(2)]
    pids = [w.pid for w in workers]
    for worker in workers:
        worker.wait_registered()
    terminated = 0
    deadline = time.monotonic() + 60
    while count_jobs(conn, "succeeded") < 3000:
        assert time.monotonic() < deadline, "jobs did not finish"
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'pgworker:%%'"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
        terminated += len(rows)
        time.sleep(0.3)  # the pace of the terminations
    assert terminated >= 8
    assert [w.proc.poll() for w in workers] == [None, None]  # the same processes
    runs = _runs_per_job(conn)
    assert len(runs) == 3000
    assert all(len(r) == 1 for r in runs.values()), "a job ran twice"
    assert {pid for r in runs.values() for _, pid in r} <= set(pids)
    _stop(*workers)


def test_a_server_restart_and_listen_is_rearmed(
    spawn: Spawner, conn: psycopg.Connection[Any], proxy: Proxy
) -> None:
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', '{\"sleep\": 0.01}' FROM generate_series(1, 1500)"
    )
    # A long poll: only LISTEN can pick a new job up within a second.
    args = ("--concurrency", "4", "--heartbeat-interval", "0.5", "--rescue-interval", "0.5",
            "--stale-after", "5", "--poll-interval", "30")  # fmt: skip
    workers = [spawn(*args, env={"PGWORKER_DSN": proxy.dsn()}) for _ in range(2)]
    for worker in workers:
        worker.wait_registered()
    for _ in range(2):
        target = count_jobs(conn, "succeeded") + 100
        wait_until(lambda t=target: count_jobs(conn, "succeeded") >= t, message="work under way")
        proxy.down()
        time.sleep(1.5)  # the server stays down this long
        proxy.up()
    wait_until(lambda: count_jobs(conn, "succeeded") == 1500, timeout=120, message="all done")
    assert [w.proc.poll() for w in workers] == [None, None]
    runs = _runs_per_job(conn)
    assert all(len(r) == 1 for r in runs.values()), "a job ran twice"

    wait_until(lambda: _listening(conn, *workers), timeout=15, message="both workers listen again")
    job_id = make_job(conn, "record")
    wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", timeout=5,
               message="the new job ran")  # fmt: skip
    assert _pickup_seconds(conn, job_id) < 1.0
    assert all("lost the database" in w.output() or "cannot claim" in w.output() for w in workers)
    _stop(*workers)


def test_a_ten_second_outage_is_survived_by_the_same_process(
    spawn: Spawner, conn: psycopg.Connection[Any], proxy: Proxy
) -> None:
    # A long poll: after the outage only LISTEN picks a new job up at once.
    worker = spawn("--concurrency", "4", "--heartbeat-interval", "0.5", "--rescue-interval",
                   "0.5", "--stale-after", "3", "--poll-interval", "30",
                   env={"PGWORKER_DSN": proxy.dsn()})  # fmt: skip
    worker.wait_registered()
    running = [make_job(conn, "record", payload={"sleep": 2}) for _ in range(4)]
    wait_until(lambda: len(executions(conn)) == 4, message="four jobs running")
    proxy.down()
    # They finish during the outage (their outcomes wait in memory); these are not heard of.
    unheard = [make_job(conn, "record") for _ in range(20)]
    time.sleep(10)  # the outage: ten times the reconnect backoff cap
    proxy.up()
    after = make_job(conn, "record")
    wait_until(lambda: job_row(conn, after)["status"] == "succeeded", timeout=2.5,
               message="the job inserted after the outage ran")  # fmt: skip
    every = [*running, *unheard, after]
    wait_until(lambda: count_jobs(conn, "succeeded") == len(every), timeout=5, message="all done")
    wait_until(lambda: _listening(conn, worker), timeout=5, message="listening again")
    woken = make_job(conn, "record")
    wait_until(lambda: job_row(conn, woken)["status"] == "succeeded", timeout=5,
               message="the job after the catch-up ran")  # fmt: skip
    assert _pickup_seconds(conn, woken) < 1.0
    assert worker.proc.poll() is None
    runs = _runs_per_job(conn)
    assert sorted(runs) == sorted([*every, woken])
    assert all(r == [(1, worker.pid)] for r in runs.values()), runs
    assert all(job_row(conn, i)["attempts"] == 1 for i in running)
    _stop(worker)


def test_an_outage_for_everyone_declares_nobody_dead(
    spawn: Spawner, conn: psycopg.Connection[Any], proxy: Proxy
) -> None:
    # Each job outlasts the outage and the --stale-after (3 s) streak the workers need after it.
    ids = [make_job(conn, "sleep", payload={"s": 9}) for _ in range(2)]
    args = ("--concurrency", "1", "--prefetch", "0", *PROFILE)
    workers = [spawn(*args, env={"PGWORKER_DSN": proxy.dsn()}) for _ in range(2)]
    worker_ids = [w.wait_registered() for w in workers]
    wait_until(lambda: len(executions(conn)) == 2, message="one job running on each worker")
    proxy.down()
    wait_until(lambda: _silent_for(conn, worker_ids) >= 4, timeout=10,
               message="both heartbeats older than --stale-after")  # fmt: skip
    proxy.up()
    wait_until(lambda: all(job_row(conn, i)["status"] == "succeeded" for i in ids), timeout=20,
               message="both jobs finished")  # fmt: skip
    for job_id in ids:
        job = job_row(conn, job_id)
        assert (job["attempts"], job["errors"]) == (1, None)
    assert sorted(pid for _, _, pid in executions(conn)) == sorted(w.pid for w in workers)
    assert [w.worker_id() for w in workers] == worker_ids  # neither row was deleted
    _stop(*workers)
    for worker in workers:
        assert "job rescued" not in worker.output()
        assert "declared dead" not in worker.output()


def test_packets_that_vanish_are_noticed_and_survived(
    spawn: Spawner, conn: psycopg.Connection[Any], proxy: Proxy
) -> None:
    worker = spawn(
        "--concurrency", "2", "--db-timeout", "2", *PROFILE, env={"PGWORKER_DSN": proxy.dsn()}
    )  # fmt: skip
    worker.wait_registered()
    first = make_job(conn, "record")
    wait_until(lambda: job_row(conn, first)["status"] == "succeeded", message="warm")
    proxy.blackhole()
    during = make_job(conn, "record")
    wait_until(lambda: "took over 2 s" in worker.output(), timeout=20,
               message="the hung statement was cut")  # fmt: skip
    proxy.restore()
    wait_until(lambda: job_row(conn, during)["status"] == "succeeded", timeout=30,
               message="work resumed after the network came back")  # fmt: skip
    assert worker.proc.poll() is None
    _stop(worker)


def test_a_read_only_failover_is_waited_out(
    spawn: Spawner, conn: psycopg.Connection[Any], dsn: str
) -> None:
    dbname = conn.execute("SELECT current_database()").fetchone()
    assert dbname is not None
    worker = spawn("--concurrency", "2", *PROFILE)
    worker.wait_registered()
    conn.execute(f'ALTER DATABASE "{dbname[0]}" SET default_transaction_read_only = on')
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE 'pgworker:%%'"
    )
    wait_until(lambda: "read-only" in worker.output(), timeout=20, message="writes refused")
    job_id = make_job(conn, "record")  # this session is not read-only
    conn.execute(f'ALTER DATABASE "{dbname[0]}" RESET default_transaction_read_only')
    wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", timeout=30,
               message="back to work on a writable server")  # fmt: skip
    assert worker.proc.poll() is None
    _stop(worker)


@pytest.mark.parametrize("metrics", [False, True], ids=["plain", "metrics"])
def test_a_worker_holds_the_documented_connections_whatever_its_concurrency(
    spawn: Spawner, conn: psycopg.Connection[Any], metrics: bool
) -> None:
    serve = ("--metrics-port", "0", "--metrics-host", "127.0.0.1") if metrics else ()
    worker = spawn("--concurrency", "5", *serve, *PROFILE)
    worker_id = worker.wait_registered()
    conn.execute(
        "INSERT INTO pgworker.jobs (task, payload)"
        " SELECT 'record', '{\"sleep\": 0.2}' FROM generate_series(1, 25)"
    )  # every thread busy for ~1 s
    # Claims, completions (opened at the first write), heartbeat and rescue, LISTEN.
    wait_until(lambda: _connections(conn, worker_id) == 4, message="the worker's 4 connections")
    port = None
    if metrics:
        served = wait_until(
            lambda: re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/", worker.output()),
            message="the metrics server",
        )
        assert served is not None
        port = int(served.group(1))
    seen: set[int] = set()

    def sample() -> bool:
        if port is not None:
            scrape(port)  # the first scrape opens the queue-depth connection
        seen.add(_connections(conn, worker_id))
        return count_jobs(conn, "succeeded") == 25

    wait_until(sample, timeout=20, interval=0.02, message="every job done")
    assert seen == {5 if metrics else 4}
    _stop(worker)


def test_too_many_connections_is_waited_out_by_the_same_process(
    granted: Roles, spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    # The worker role, not a superuser: CONNECTION LIMIT binds it.
    worker = spawn(
        "--concurrency", "2", *PROFILE, env={"PGWORKER_DSN": granted.dsn(granted.worker)}
    )  # fmt: skip
    worker_id = worker.wait_registered()
    first = make_job(conn, "record")
    wait_until(lambda: job_row(conn, first)["status"] == "succeeded", message="warm")
    wait_until(lambda: _connections(conn, worker_id) == 4, message="every connection open")
    role = sql.Identifier(granted.worker)
    conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(role))
    killed = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND usename = %s",
        (granted.worker,),
    ).fetchone()
    assert killed == (4,)
    # The first line is about the terminated connections; the next is rate-limited to 10 s.
    wait_until(lambda: "too many connections" in worker.output(), timeout=20,
               message="the worker says it cannot reconnect")  # fmt: skip
    conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(role))
    job_id = make_job(conn, "record")
    wait_until(lambda: job_row(conn, job_id)["status"] == "succeeded", timeout=5,
               message="the job inserted once connections are allowed again")  # fmt: skip
    assert [pid for _, pid in _runs_per_job(conn)[job_id]] == [worker.pid]
    assert worker.proc.poll() is None
    output = worker.output()
    assert "Traceback" not in output
    trouble = [line for line in output.splitlines() if " WARNING " in line]
    assert 2 <= len(trouble) <= 4, output
    # It kept trying (the 1 s backoff cap) and said so once: the line counts what it held back.
    held_back = re.search(r"too many connections for role .* count=(\d+)", output)
    assert held_back is not None, output
    assert int(held_back.group(1)) >= 10
    _stop(worker)


def _settled(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pgworker.jobs WHERE status IN ('pending', 'processing')"
    ).fetchone()
    return row == (0,)


def test_failing_jobs_end_failed_with_their_errors_beside_healthy_ones(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    healthy = [make_job(conn, "record") for _ in range(200)]
    failing = make_job(conn, "always_fails")
    huge = make_job(conn, "huge_error")
    worker = spawn("--concurrency", "4", *PROFILE)
    worker.wait_registered()
    wait_until(lambda: _settled(conn), timeout=60, message="every job settled")
    assert all(job_row(conn, i)["status"] == "succeeded" for i in healthy)
    failed = job_row(conn, failing)
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    assert [e["error"] for e in failed["errors"]] == ["RuntimeError: always fails"] * 3
    big = job_row(conn, huge)
    assert big["status"] == "failed"
    assert len(big["last_error"]) < 5000
    assert len(big["errors"][0]["error"]) <= 1000
    _stop(worker)


def test_a_job_that_kills_its_worker_ends_failed_instead_of_looping(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    healthy = [make_job(conn, "record", payload={"sleep": 0.01}) for _ in range(200)]
    crashing = make_job(conn, "crash")  # max_attempts=2
    args = ("--concurrency", "4", *PROFILE)
    workers = [spawn(*args), spawn(*args)]
    for worker in workers:
        worker.wait_registered()
    deadline = time.monotonic() + 90
    crashes = 0
    while not _settled(conn):
        assert time.monotonic() < deadline, "jobs did not settle"
        for index, worker in enumerate(workers):
            if worker.proc.poll() is not None:  # a supervisor restarts crashed workers
                assert worker.proc.returncode == 7, worker.output()
                crashes += 1
                workers[index] = spawn(*args)
                workers[index].wait_registered()
        time.sleep(0.1)
    assert all(job_row(conn, i)["status"] == "succeeded" for i in healthy)
    crashed = job_row(conn, crashing)
    assert (crashed["status"], crashed["attempts"]) == ("failed", 2)
    assert "lost" in crashed["last_error"]
    assert crashes == 2
    assert len(_runs_per_job(conn)[crashing]) == 2
    _stop(*workers)


def test_a_hanging_handler_is_timed_out_and_sigterm_still_exits(
    spawn: Spawner, conn: psycopg.Connection[Any]
) -> None:
    healthy = [make_job(conn, "record") for _ in range(100)]
    hanging = make_job(conn, "hang")  # timeout 1 s, max_attempts 2
    worker = spawn("--concurrency", "3", *PROFILE)
    worker.wait_registered()
    wait_until(lambda: _settled(conn), timeout=60, message="every job settled")
    assert all(job_row(conn, i)["status"] == "succeeded" for i in healthy)
    hung = job_row(conn, hanging)
    assert (hung["status"], hung["attempts"]) == ("failed", 2)
    assert "timed out after 1 s" in hung["last_error"]
    # Two threads are still stuck in the handler: SIGTERM must not wait for them forever.
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()
    assert time.monotonic() - signalled < 2 + 5  # --shutdown-timeout 2
