"""The benchmark's task registry (`pgworker work --app bench.tasks`).

`noop` measures the queue itself, `sleep10ms` stands for an I/O-bound handler, and `pickup`
appends "job_id start_time" to the file named by $PGWORKER_BENCH_PICKUP_FILE, start_time
being time.time() taken first thing in the handler.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from pgworker import JobContext, TaskRegistry

PICKUP_FILE_ENV: Final = "PGWORKER_BENCH_PICKUP_FILE"
SLEEP_SECONDS: Final = 0.010

registry = TaskRegistry()

_pickup_fd: int | None = None


@registry.task("noop")
def noop(ctx: JobContext, payload: Any) -> None:
    pass


@registry.task("sleep10ms")
def sleep_10ms(ctx: JobContext, payload: Any) -> None:
    time.sleep(SLEEP_SECONDS)


@registry.task("pickup")
def pickup(ctx: JobContext, payload: Any) -> None:
    started = time.time()
    global _pickup_fd
    if _pickup_fd is None:
        _pickup_fd = os.open(
            os.environ[PICKUP_FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
    # One write(2) of a short line to an O_APPEND file: atomic, whichever thread writes.
    os.write(_pickup_fd, f"{ctx.job_id} {started!r}\n".encode())
