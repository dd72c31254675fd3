"""The operator commands as users run them: jobs, queues, status, prune, doctor."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest

from proxy import NotificationDroppingProxy
from support import (
    Run,
    count_jobs,
    job_row,
    make_job,
    make_worker,
    one_line_error,
    wait_until,
)
from workers import Spawner, executions

Conn = psycopg.Connection[Any]
Result = subprocess.CompletedProcess[str]


@pytest.fixture
def env(dsn: str) -> dict[str, str]:
    # A password the server ignores (trust): it must never show in any output.
    return {"PGWORKER_DSN": psycopg.conninfo.make_conninfo(dsn, password="canary-pw-61")}


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    assert "canary-pw-61" not in result.stdout + result.stderr
    return str(result.stdout)


def _run_all(run_cli: Run, env: dict[str, str], *commands: list[str]) -> list[Result]:
    """Run independent `pgworker` commands side by side; the results in the same order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_cli(*args, env=env), commands))


def _flat(text: str) -> str:
    """A paragraph the CLI wrapped at 100 columns, on one line again."""
    return " ".join(text.split())


def _jobs_in_every_state(conn: Conn) -> dict[str, int]:
    worker = make_worker(conn, str(uuid.uuid4()), queues=("default", "mail"), tasks=("send",))
    return {
        "pending": make_job(conn, "send", queue="mail"),
        "scheduled": make_job(conn, "send", run_after="1 hour"),
        "retry_wait": make_job(conn, "send", attempts=1, max_attempts=3, run_after="5 minutes",
                               last_error="TimeoutError: smtp"),
        "processing": make_job(conn, "send", status="processing", attempts=1,
                               started_at="-3 seconds", worker_id=worker),
        "succeeded": make_job(conn, "send", status="succeeded", attempts=1,
                              started_at="-5 seconds", finished_at="-4 seconds"),
        "failed": make_job(conn, "send", status="failed", attempts=3, max_attempts=3,
                           finished_at="-1 minute", last_error="RuntimeError: boom",
                           payload={"to": "a@example.com"}),
        "cancelled": make_job(conn, "send", status="cancelled", finished_at="-1 minute"),
    }  # fmt: skip


def test_jobs_list_table_and_json(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    ids = _jobs_in_every_state(conn)
    out = _ok(run_cli("jobs", "list", env=env))
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "QUEUE", "TASK", "STATUS", "ATTEMPTS", "CREATED", "WHEN", "LAST", "ERROR",
    ]  # fmt: skip
    assert [int(line.split()[0]) for line in lines[1:]] == sorted(ids.values(), reverse=True)
    failed_line = next(line for line in lines if line.split()[0] == str(ids["failed"]))
    assert "3/3" in failed_line
    assert "RuntimeError: boom" in failed_line
    scheduled_line = next(line for line in lines if line.split()[0] == str(ids["scheduled"]))
    assert " in 59 min" in scheduled_line

    listed = json.loads(_ok(run_cli("jobs", "list", "--status", "failed", "--status",
                                    "cancelled", "--json", env=env)))  # fmt: skip
    assert [job["id"] for job in listed] == [ids["cancelled"], ids["failed"]]
    assert listed[1]["last_error"] == "RuntimeError: boom"
    mail = json.loads(_ok(run_cli("jobs", "list", "--queue", "mail", "--json", env=env)))
    assert [job["id"] for job in mail] == [ids["pending"]]
    assert _ok(run_cli("jobs", "list", "--task", "other", env=env)).strip() == "no jobs match"


def test_jobs_show(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    ids = _jobs_in_every_state(conn)
    out = _ok(run_cli("jobs", "show", str(ids["failed"]), env=env))
    assert out.splitlines()[0] == f"job {ids['failed']}"
    for fragment in ("  status       failed", "  attempts     3/3", "last error",
                     "  RuntimeError: boom", "payload", '"to": "a@example.com"'):  # fmt: skip
        assert fragment in out
    running = _ok(run_cli("jobs", "show", str(ids["processing"]), env=env))
    assert "(test-host, pid 4242, heartbeat" in running
    shown = json.loads(_ok(run_cli("jobs", "show", str(ids["failed"]), "--json", env=env)))
    assert shown["job"]["status"] == "failed"
    assert shown["payload"] == {"to": "a@example.com"}


def test_jobs_why_for_each_state(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    ids = _jobs_in_every_state(conn)
    expected = {
        "pending": "ready",
        "scheduled": "scheduled",
        "retry_wait": "retry_wait",
        "processing": "processing",
        "succeeded": "finished",
        "failed": "finished",
        "cancelled": "finished",
    }
    for state, code in expected.items():
        why = json.loads(_ok(run_cli("jobs", "why", str(ids[state]), "--json", env=env)))
        assert why["codes"][0] == code, (state, why)
    text = _ok(run_cli("jobs", "why", str(ids["retry_wait"]), env=env))
    assert "waiting for a retry: attempt 1 of 3 failed (TimeoutError: smtp)" in " ".join(
        text.split()
    )
    conn.execute("INSERT INTO pgworker.queues (name, paused) VALUES ('mail', true)")
    paused = _ok(run_cli("jobs", "why", str(ids["pending"]), env=env))
    assert "queue 'mail' is paused" in paused


# Each sets up one reason `jobs why` gives, as tests/integration/test_why.py does, and
# returns the job and the worker it names ("" for none).
def _why_no_task(conn: Conn, cli: Callable[..., str]) -> tuple[int, str]:
    make_worker(conn, str(uuid.uuid4()), tasks=("other", "more"), hostname="web3", pid=33)
    return make_job(conn, "send"), ""


def _why_at_capacity(conn: Conn, cli: Callable[..., str]) -> tuple[int, str]:
    make_worker(conn, str(uuid.uuid4()), tasks=("send",), busy=5, hostname="web1", pid=11)
    make_worker(conn, str(uuid.uuid4()), tasks=("send",), busy=2, concurrency=2,
                hostname="web2", pid=12)  # fmt: skip
    make_worker(conn, str(uuid.uuid4()), tasks=("other",))  # free, but cannot run it
    make_job(conn, "send", run_after="-1 second")
    return make_job(conn, "send"), ""


def _why_stale_worker(conn: Conn, cli: Callable[..., str]) -> tuple[int, str]:
    worker = make_worker(conn, str(uuid.uuid4()), tasks=("send",), heartbeat_age="10 minutes",
                         hostname="gone1", pid=66)  # fmt: skip
    job = make_job(conn, "send", status="processing", attempts=1, max_attempts=3,
                   started_at="-11 minutes", worker_id=worker)  # fmt: skip
    return job, worker


def _why_worker_without_row(conn: Conn, cli: Callable[..., str]) -> tuple[int, str]:
    worker = str(uuid.uuid4())
    job = make_job(conn, "send", status="processing", attempts=1, max_attempts=3,
                   started_at="-11 minutes", worker_id=worker)  # fmt: skip
    return job, worker


def _why_cancel_requested(conn: Conn, cli: Callable[..., str]) -> tuple[int, str]:
    worker = make_worker(conn, str(uuid.uuid4()), tasks=("send",), hostname="web7", pid=77)
    job = make_job(conn, "send", status="processing", attempts=1, max_attempts=3,
                   started_at="-5 seconds", worker_id=worker)  # fmt: skip
    assert cli("jobs", "cancel", str(job)).startswith(f"asked job {job} to stop")
    return job, worker


@pytest.mark.parametrize(
    ("setup", "codes", "fragments", "json_fragments"),
    [
        (_why_no_task, ["no_task"], [
            "Job {job} (send on queue 'default') is pending.",
            "Live workers serve queue 'default', but none has task 'send' registered"
            " (they know: more, other): deploy a worker whose --app registers it",
        ], []),
        (_why_at_capacity, ["at_capacity", "ahead"], [
            "Job {job} (send on queue 'default') is pending.",
            "Every live worker able to run it is busy at its last heartbeat",
            "web1 pid 11: 5/5", "web2 pid 12: 2/2",
            "it waits for a free slot, or for more workers.",
            "1 due job(s) of the queue come before it.",
        ], []),
        (_why_stale_worker, ["worker_lost"], [
            "Job {job} is processing on worker",
            "(gone1, pid 66) (attempt 1 of 3, started 11 min ago),",
            "that worker's last heartbeat was 10 min ago: it looks lost,",
            "a live worker's rescue will put the job back to pending.",
        ], ["processing on worker {worker} (gone1, pid 66)"]),
        (_why_worker_without_row, ["worker_lost"], [
            "Job {job} is processing (attempt 1 of 3, started 11 min ago), but its worker",
            "has no row any more: it was declared dead or exited abruptly,",
            "the next rescue by a live worker puts the job back to pending.",
        ], ["but its worker {worker} has no row any more"]),
        (_why_cancel_requested, ["processing", "cancel_requested"], [
            "Job {job} is running on worker",
            "(web7, pid 77): attempt 1 of 3, started",
            "Its cancellation was requested",
            "the attempt ends cancelled whatever it returns.",
        ], ["running on worker {worker} (web7, pid 77)"]),
    ],
    ids=["no_task", "at_capacity", "worker_lost", "worker_lost_no_row", "cancel_requested"],
)  # fmt: skip
def test_jobs_why_explains_what_blocks_a_job(
    run_cli: Run,
    env: dict[str, str],
    conn: Conn,
    setup: Callable[[Conn, Callable[..., str]], tuple[int, str]],
    codes: list[str],
    fragments: list[str],
    json_fragments: list[str],
) -> None:
    job, worker = setup(conn, lambda *args: _ok(run_cli(*args, env=env)))
    text, as_json = _run_all(run_cli, env, ["jobs", "why", str(job)],
                             ["jobs", "why", str(job), "--json"])  # fmt: skip
    paragraph = _flat(_ok(text))
    why = json.loads(_ok(as_json))
    assert why["codes"] == codes
    assert [reason["code"] for reason in why["reasons"]] == codes
    assert why["job"]["id"] == job
    for fragment in fragments:
        expected = fragment.format(job=job)
        assert expected in paragraph, paragraph
        assert expected in why["text"]
    for fragment in json_fragments:
        assert fragment.format(worker=worker) in why["text"]
        assert fragment.format(worker=worker) in paragraph
    if json_fragments:  # the wrapped paragraph never breaks a worker id at its hyphens
        assert any(worker in line for line in text.stdout.splitlines()), text.stdout


def test_jobs_retry_and_cancel(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    ids = _jobs_in_every_state(conn)
    out = _ok(run_cli("jobs", "retry", str(ids["failed"]), env=env))
    assert out.strip() == f"retried job {ids['failed']}: pending, due now"
    assert job_row(conn, ids["failed"])["status"] == "pending"

    out = _ok(run_cli("jobs", "cancel", str(ids["pending"]), str(ids["processing"]), env=env))
    assert f"cancelled job {ids['pending']}" in out
    assert f"asked job {ids['processing']} to stop" in out
    assert job_row(conn, ids["processing"])["cancel_requested_at"] is not None

    out = _ok(run_cli("jobs", "retry", "--cancelled", env=env))
    assert out.strip() == f"retried 2 jobs ({ids['pending']}, {ids['cancelled']}): pending, due now"
    assert _ok(run_cli("jobs", "retry", "--failed", env=env)).strip() == (
        "no job matched: nothing retried"
    )


def test_jobs_retry_reports_a_dedup_collision(
    run_cli: Run, env: dict[str, str], conn: Conn
) -> None:
    old = make_job(conn, "send", status="failed", dedup_key="report-7", finished_at="-1 minute")
    live = make_job(conn, "send", dedup_key="report-7")
    result = run_cli("jobs", "retry", str(old), env=env)
    assert result.returncode == 1
    assert f"which live job {live} holds" in one_line_error(result)
    out = _ok(run_cli("jobs", "retry", "--failed", env=env))
    assert out.splitlines() == [
        f"skipped job {old}: live job {live} holds its dedup key 'report-7'",
        "no job retried",
    ]
    assert job_row(conn, old)["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["jobs", "show", "424242"], 1, "no job with id 424242"),
        (["jobs", "cancel", "424242", "424243"], 1, "no jobs with ids 424242, 424243"),
        (["jobs", "show", "abc"], 2, "'abc' is not a job id"),
        (["jobs", "list", "--queue", "nosuch"], 1, "unknown queue 'nosuch'"),
        (["jobs", "list", "--status", "done"], 2, "--status"),
        (["jobs", "retry", "1", "--failed"], 2, "not both"),
        (["jobs", "retry"], 2, "give job ids, or --failed"),
        (["jobs", "retry", "1", "--task", "x"], 2, "not with job ids"),
        (["queues", "pause", "nosuch"], 1, "unknown queue 'nosuch'"),
        (["queues", "pause", "bad queue", "--force"], 2, "invalid queue name"),
        (["prune", "--older-than", "7x"], 2, "invalid --older-than '7x'"),
        (["prune", "--status", "pending"], 2, "only finished jobs are pruned"),
        (["status", "--stale-after", "0"], 2, "--stale-after"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    run_cli: Run, env: dict[str, str], conn: Conn, args: list[str], code: int, fragment: str
) -> None:
    make_job(conn, "send")
    result = run_cli(*args, env=env)
    assert result.returncode == code, result.stderr
    assert fragment in one_line_error(result)
    assert "canary-pw-61" not in result.stderr
    assert count_jobs(conn, "pending") == 1


def test_refused_states_exit_1(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    ids = _jobs_in_every_state(conn)
    retry = run_cli("jobs", "retry", str(ids["failed"]), str(ids["pending"]), env=env)
    assert retry.returncode == 1
    assert f"job {ids['pending']} is pending: only failed" in one_line_error(retry)
    cancel = run_cli("jobs", "cancel", str(ids["succeeded"]), env=env)
    assert cancel.returncode == 1
    assert "is succeeded already" in one_line_error(cancel)
    assert job_row(conn, ids["failed"])["status"] == "failed"


HOSTILE = [
    "o'clock",
    "x;--",
    "$$; DROP TABLE public.canary; $$",
    "'; DROP TABLE pgworker.jobs; --",
    "🎉 ключ 鍵",
    "line\nbreak",
    ("'; DELETE FROM pgworker.jobs; --" + "a" * 5000)[:5000],
]

# Every write to pgworker's tables and every DDL statement in the test's database, logged.
AUDIT = """
CREATE TABLE public.canary (note text);
INSERT INTO public.canary VALUES ('alive');
CREATE TABLE public.audit (statement text);
CREATE FUNCTION public.audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NULL; END $$;
CREATE TRIGGER audit_write AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgworker.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_write();
CREATE TRIGGER audit_write AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgworker.queues
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_write();
CREATE TRIGGER audit_write AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgworker.workers
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_write();
CREATE FUNCTION public.audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit VALUES (TG_TAG); END $$;
CREATE EVENT TRIGGER audit_ddl ON ddl_command_start EXECUTE FUNCTION public.audit_ddl();
"""


@pytest.fixture
def audited(conn: Conn) -> Conn:
    """This test's database with two jobs, a canary table, and a log of every write and DDL
    statement from then on."""
    make_job(conn, "send", queue="mail")
    make_job(conn, "send", queue="mail", status="failed", attempts=3, max_attempts=3,
             finished_at="-1 minute", last_error="RuntimeError: boom")  # fmt: skip
    conn.execute(AUDIT)
    conn.execute("UPDATE pgworker.queues SET paused = paused WHERE false")
    conn.execute("COMMENT ON TABLE public.canary IS 'canary'")
    assert _audit(conn) == ["UPDATE queues", "COMMENT"]  # the log works
    conn.execute("TRUNCATE public.audit")
    return conn


def _audit(conn: Conn) -> list[str]:
    return [str(row[0]) for row in conn.execute("SELECT statement FROM public.audit")]


HOSTILE_FILTERS = [
    (["jobs", "list", "--task"], "invalid task name"),
    (["jobs", "list", "--queue"], "invalid queue name"),
    (["jobs", "retry", "--failed", "--task"], "invalid task name"),
    (["jobs", "retry", "--failed", "--queue"], "invalid queue name"),
    (["queues", "pause"], "invalid queue name"),
    (["queues", "pause", "--force"], "invalid queue name"),
    (["queues", "resume"], "invalid queue name"),
    (["jobs", "show"], "Invalid value for 'ID'"),
    (["jobs", "why"], "Invalid value for 'ID'"),
]


@pytest.mark.parametrize(
    ("command", "refusal"), HOSTILE_FILTERS, ids=[" ".join(c) for c, _ in HOSTILE_FILTERS]
)
def test_hostile_strings_in_cli_filters_are_refused_and_run_nothing(
    run_cli: Run, env: dict[str, str], audited: Conn, command: list[str], refusal: str
) -> None:
    before = audited.execute("SELECT * FROM pgworker.jobs ORDER BY id").fetchall()
    results = _run_all(run_cli, env, *([*command, value] for value in HOSTILE))
    for value, result in zip(HOSTILE, results, strict=True):
        assert result.returncode == 2, (value[:40], result.stderr)
        line = one_line_error(result)
        assert refusal in line
        assert repr(value)[:50] in line  # the value quoted, its newline escaped
        assert result.stdout == ""
    assert audited.execute("SELECT * FROM pgworker.jobs ORDER BY id").fetchall() == before
    assert audited.execute("SELECT note FROM public.canary").fetchall() == [("alive",)]
    assert _audit(audited) == []


@pytest.mark.parametrize(
    "command", [["jobs", "show"], ["jobs", "why"], ["jobs", "cancel"], ["jobs", "retry"]]
)
def test_job_ids_are_ascii_digits_within_bigint(
    run_cli: Run, env: dict[str, str], conn: Conn, command: list[str]
) -> None:
    # int() reads "1_0" as 10 and an Arabic-Indic one as 1: with jobs 1 to 10 there, neither
    # may select one.
    for _ in range(10):
        make_job(conn, "send", status="failed", attempts=1, finished_at="-1 minute")
    before = conn.execute("SELECT * FROM pgworker.jobs ORDER BY id").fetchall()
    odd = ["1_0", "\u0661", "99999999999999999999", "1.0"]
    for value, result in zip(
        odd, _run_all(run_cli, env, *([*command, v] for v in odd)), strict=True
    ):
        assert result.returncode == 2, (value, result.stderr)
        assert f"{value!r} is not a job id" in one_line_error(result)
        assert result.stdout == ""
    assert conn.execute("SELECT * FROM pgworker.jobs ORDER BY id").fetchall() == before


def test_queues_list_pause_resume(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    _jobs_in_every_state(conn)
    out = _ok(run_cli("queues", "list", env=env))
    lines = out.splitlines()
    assert lines[0].split() == [
        "QUEUE", "STATE", "PENDING", "SCHEDULED", "PROCESSING", "FAILED", "OLDEST", "WORKERS",
        "BUSY",
    ]  # fmt: skip
    assert lines[1].split()[:6] == ["default", "active", "0", "2", "1", "1"]
    assert lines[2].split()[:4] == ["mail", "active", "1", "0"]

    assert _ok(run_cli("queues", "pause", "mail", env=env)).startswith("paused queue 'mail'")
    assert _ok(run_cli("queues", "pause", "mail", env=env)).strip() == (
        "queue 'mail' was paused already"
    )
    listed = json.loads(_ok(run_cli("queues", "list", "--json", env=env)))
    assert {q["name"]: q["paused"] for q in listed} == {"default": False, "mail": True}
    assert _ok(run_cli("queues", "resume", "mail", env=env)).strip() == "resumed queue 'mail'"
    assert _ok(run_cli("queues", "resume", "mail", env=env)).strip() == (
        "queue 'mail' is not paused"
    )
    forced = _ok(run_cli("queues", "pause", "future", "--force", env=env))
    assert forced.startswith("paused queue 'future'")


def _run_one_in(conn: Conn, queue: str, worker: int) -> None:
    """Insert a job into `queue` and wait until the worker process `worker` has run it."""
    job = make_job(conn, "record", queue=queue)
    wait_until(lambda: job_row(conn, job)["status"] == "succeeded", message=f"job in {queue}")
    assert [pid for ran, _, pid in executions(conn) if ran == job] == [worker]


def _statuses(conn: Conn, ids: list[int]) -> set[str]:
    rows = conn.execute("SELECT status FROM pgworker.jobs WHERE id = ANY(%s)", (ids,))
    return {str(status) for (status,) in rows}


def _older_than(conn: Conn, ids: list[int], seconds: float) -> bool:
    """Whether every one of these jobs was created more than `seconds` ago (database clock)."""
    row = conn.execute(
        "SELECT bool_and(now() - created_at > %s * interval '1 s') FROM pgworker.jobs"
        " WHERE id = ANY(%s)",
        (seconds, ids),
    ).fetchone()
    return row == (True,)


def test_queues_pause_and_resume_steer_a_running_worker(
    run_cli: Run, env: dict[str, str], conn: Conn, spawn: Spawner
) -> None:
    poll = 0.1
    worker = spawn("--queues", "held,other", "--poll-interval", str(poll), "--concurrency", "2",
                   "--no-prune")  # fmt: skip
    worker.wait_registered()
    paused = _ok(run_cli("queues", "pause", "held", env=env))
    assert paused.strip() == (
        "paused queue 'held': workers claim none of its jobs from their next poll"
    )
    held = [make_job(conn, "record", queue="held") for _ in range(3)]
    # Claimed after the held jobs' inserts woke the worker, then again after two polls.
    _run_one_in(conn, "other", worker.pid)
    wait_until(lambda: _older_than(conn, held, 2 * poll), message="two poll intervals")
    _run_one_in(conn, "other", worker.pid)
    assert _statuses(conn, held) == {"pending"}
    assert not [job for job, _, _ in executions(conn) if job in held]
    why = json.loads(_ok(run_cli("jobs", "why", str(held[0]), "--json", env=env)))
    assert why["codes"] == ["paused"]

    assert _ok(run_cli("queues", "resume", "held", env=env)).strip() == "resumed queue 'held'"
    wait_until(lambda: _statuses(conn, held) == {"succeeded"}, message="the held jobs")
    assert sorted((job, pid) for job, _, pid in executions(conn) if job in held) == [
        (job, worker.pid) for job in held
    ]
    assert worker.proc.poll() is None, worker.output()


def test_status(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    _jobs_in_every_state(conn)
    make_job(conn, "other", queue="reports")
    out = _ok(run_cli("status", env=env))
    assert out.startswith("workers: 1 live\n")
    assert "test-host" in out
    assert "failed in the last hour: 1" in out
    assert "jobs no live worker can run: 1" in out
    assert "reports  other" in out
    status = json.loads(_ok(run_cli("status", "--json", env=env)))
    assert [w["hostname"] for w in status["workers"]] == ["test-host"]
    assert status["unrunnable"] == [
        {"queue": "reports", "task": "other", "jobs": 1, "queue_served": False}
    ]
    assert {q["name"] for q in status["queues"]} == {"default", "mail", "reports"}


def test_prune(run_cli: Run, env: dict[str, str], conn: Conn) -> None:
    make_job(conn, "a", status="succeeded", finished_at="-2 days")
    make_job(conn, "a", status="failed", finished_at="-2 days")
    make_job(conn, "a", status="cancelled", finished_at="-10 days")
    assert _ok(run_cli("prune", "--dry-run", env=env)).strip() == (
        "would prune 2 finished jobs (succeeded 1, failed 0, cancelled 1)"
    )
    assert count_jobs(conn) == 3
    assert _ok(run_cli("prune", env=env)).strip() == (
        "pruned 2 finished jobs (succeeded 1, failed 0, cancelled 1)"
    )
    pruned = json.loads(_ok(run_cli("prune", "--older-than", "1d", "--json", env=env)))
    assert pruned == {"dry_run": False, "jobs": {"succeeded": 0, "failed": 1, "cancelled": 0},
                      "total": 1}  # fmt: skip
    assert count_jobs(conn) == 0


def test_doctor_ok_apart_from_this_servers_autovacuum(
    run_cli: Run, env: dict[str, str], conn: Conn
) -> None:
    result = run_cli("doctor", "--json", env=env)
    report = json.loads(result.stdout)
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    vacuum = statuses.pop("vacuum")
    assert set(statuses.values()) == {"ok"}
    assert result.returncode == (0 if vacuum == "ok" else 1)
    assert report["ok"] is (vacuum == "ok")
    assert "canary-pw-61" not in result.stdout + result.stderr


def test_doctor_warns_about_a_held_snapshot(run_cli: Run, env: dict[str, str], dsn: str) -> None:
    with psycopg.connect(dsn, application_name="long-report") as holder:
        holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT 1 FROM pgworker.jobs")
        pid = holder.info.backend_pid
        result = run_cli("doctor", "--max-xmin-age", "0", env=env)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("warning  xmin"))
    assert f"session pid {pid} (long-report, idle in transaction)" in line
    assert "fix: end that transaction" in result.stdout
    assert result.stdout.rstrip().endswith("warning(s)")


def test_doctor_warns_when_a_pooler_eats_notifications(run_cli: Run, dsn: str) -> None:
    proxy = NotificationDroppingProxy(dsn)
    proxy.start()
    try:
        result = run_cli("doctor", "--listen-timeout", "1", env={"PGWORKER_DSN": proxy.dsn()})
    finally:
        proxy.close()
    assert result.returncode == 1
    assert "warning  listen" in result.stdout
    assert "--no-listen" in result.stdout
    assert proxy.dropped >= 1


def test_every_command_works_with_the_embedded_server(run_cli: Run) -> None:
    # Not under tmp_path: the server runs as its own user, which must reach the directory.
    home = Path(tempfile.mkdtemp(prefix="pgwt-home-"))
    env = {"PGWORKER_HOME": str(home)}
    try:
        _ok(run_cli("migrate", env=env))
        job = _ok(run_cli("enqueue", "send", "--queue", "mail", env=env)).strip()
        assert f"{job}  mail" in _ok(run_cli("jobs", "list", env=env))
        assert _ok(run_cli("jobs", "show", job, env=env)).startswith(f"job {job}")
        assert "No live worker serves queue 'mail'" in _ok(run_cli("jobs", "why", job, env=env))
        _ok(run_cli("queues", "pause", "mail", env=env))
        assert "paused" in _ok(run_cli("queues", "list", env=env))
        _ok(run_cli("queues", "resume", "mail", env=env))
        _ok(run_cli("jobs", "cancel", job, env=env))
        _ok(run_cli("jobs", "retry", job, env=env))
        assert "jobs no live worker can run: 1" in _ok(run_cli("status", env=env))
        assert "would prune 0" in _ok(run_cli("prune", "--dry-run", env=env))
        doctor = run_cli("doctor", "--json", env=env)
        assert json.loads(doctor.stdout)["checks"][1]["status"] == "ok"  # the schema
    finally:
        run_cli("embedded", "stop", env=env)
        shutil.rmtree(home, ignore_errors=True)
