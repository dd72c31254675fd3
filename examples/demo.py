"""`make demo`: enqueue a few hundred jobs, run a real `pgworker work` until they are done,
print what happened. Uses the configured database, or the embedded one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgworker import Client  # noqa: E402
from pgworker.config import database_dsn, home_dir, mask_dsn, resolve_dsn  # noqa: E402
from pgworker.db import connect  # noqa: E402
from pgworker.embedded import server_dsn, stop_server  # noqa: E402
from pgworker.migrate import upgrade  # noqa: E402

QUEUE = "demo"
EMAILS, IMAGES, CHARGES = 200, 100, 20


def main() -> int:
    embedded = resolve_dsn(None).dsn is None
    was_running = embedded and server_dsn(home_dir()) is not None
    dsn = database_dsn()
    try:
        return run(dsn)
    finally:
        if embedded and not was_running:
            stop_server(home_dir())
            print(f"stopped the embedded PostgreSQL it started (data kept in {home_dir()})")


def run(dsn: str) -> int:
    print(f"database: {mask_dsn(dsn)}")
    before, after = upgrade(dsn)
    print(f"schema: {before or 'none'} -> {after}")
    with connect(dsn) as conn:
        conn.execute("DELETE FROM pgworker.jobs WHERE queue = %s", (QUEUE,))

    client = Client(dsn)
    with client:
        client.enqueue_many("send_welcome_email", ({"user": n} for n in range(EMAILS)), queue=QUEUE)
        client.enqueue_many(
            "resize_image",
            ({"path": f"img/{n}.png", "flaky": 1 if n % 10 == 0 else 0} for n in range(IMAGES)),
            queue=QUEUE,
        )
        for n in range(CHARGES):
            card = "4000000000000002" if n == 7 else "4242424242424242"
            client.enqueue("charge_card", {"card": card, "amount": 10 + n}, queue=QUEUE)
    total = EMAILS + IMAGES + CHARGES
    print(
        f"enqueued {total} jobs on queue {QUEUE!r}: emails, images (every 10th fails once),"
        " card charges (one is declined)"
    )

    worker = subprocess.Popen(
        [sys.executable, "-m", "pgworker", "work", "--app", "examples.demo_tasks",
         "--concurrency", "5", "--log-level", "warning", "--dsn", dsn],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    started = time.monotonic()
    try:
        with connect(dsn) as conn:
            deadline = started + 60
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pgworker.jobs WHERE queue = %s"
                    " AND status IN ('pending', 'processing')",
                    (QUEUE,),
                ).fetchone()
                if row == (0,):
                    break
                if worker.poll() is not None:
                    print(f"the worker exited early with {worker.returncode}")
                    return 1
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)
            stats = dict(
                conn.execute(
                    "SELECT status, count(*) FROM pgworker.jobs WHERE queue = %s GROUP BY 1",
                    (QUEUE,),
                ).fetchall()
            )
            retried = conn.execute(
                "SELECT count(*) FROM pgworker.jobs"
                " WHERE queue = %s AND status = 'succeeded' AND attempts > 1",
                (QUEUE,),
            ).fetchone()
            failures = conn.execute(
                "SELECT id, task, last_error FROM pgworker.jobs"
                " WHERE queue = %s AND status = 'failed'",
                (QUEUE,),
            ).fetchall()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    print()
    print(
        f"succeeded  {stats.get('succeeded', 0):5}  ({retried[0] if retried else 0} of them"
        " after a retry)"
    )
    print(f"failed     {stats.get('failed', 0):5}")
    for job_id, task, error in failures:
        print(f"           job {job_id} ({task}): {error.splitlines()[0]}")
    print(
        f"took       {elapsed:5.2f} s, including the worker's start and the retry delays"
        f" ({total / elapsed:,.0f} jobs/s)"
    )
    print(f"worker exit code {code} after SIGTERM")
    print()
    print('Look around: psql "$(.venv/bin/pgworker dsn)" -c "SELECT * FROM pgworker.jobs LIMIT 5"')
    ok = stats.get("succeeded") == total - 1 and stats.get("failed") == 1 and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
