"""The raw pickup loop: `python -m bench.listen_loop FILE` (DSN in $PGWORKER_DSN), the floor
under idle pickup latency.

A minimal process doing what an idle worker must do when a job arrives, and nothing else:
one connection LISTENs on pgworker_jobs, a second one runs the worker's claim (LIMIT 5)
on each notification, "starts" each claimed job by writing "job_id time.time()" to FILE
as the bench's pickup handler does, and completes it with COMPLETE_JOBS. Its latency,
measured like pgworker's, shows what this machine and server cost by themselves. It runs
until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from bench.common import connect, register_worker
from pgworker import queries
from pgworker.worker import claim_statements

CLAIM_SIZE = 5

_stopping = False


def _stop(_signum: int, _frame: FrameType | None) -> None:
    global _stopping
    _stopping = True


def main(dsn: str, path: str) -> int:
    signal.signal(signal.SIGTERM, _stop)
    claim = claim_statements(queries.CLAIM_JOBS_TEMPLATE)[CLAIM_SIZE]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with connect(dsn) as listener, connect(dsn) as conn:
        listener.execute("LISTEN pgworker_jobs")
        worker_id = register_worker(conn)
        params = {"queue": "default", "worker_id": worker_id}
        try:
            while not _stopping:
                for _note in listener.notifies(timeout=0.2, stop_after=1):
                    while rows := conn.execute(claim, params).fetchall():
                        for row in rows:
                            os.write(fd, f"{row[0]} {time.time()!r}\n".encode())
                        conn.execute(
                            queries.COMPLETE_JOBS,
                            {
                                "ids": [r[0] for r in rows],
                                "attempts": [r[3] for r in rows],
                                "worker_id": worker_id,
                            },
                            prepare=False,
                        )
        finally:
            conn.execute(queries.DEREGISTER_WORKER, {"id": worker_id})
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ["PGWORKER_DSN"], sys.argv[1]))
