"""Helpers for users' own tests: run a task's real handler without a database."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from pgworker.config import DEFAULT_QUEUE
from pgworker.context import JobContext
from pgworker.errors import PermanentError, RetryLater
from pgworker.jobs import encode_payload
from pgworker.tasks import TaskRegistry


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker would do with one attempt: `status` is one of

    "succeeded", "retried" (a failure with attempts left), "rescheduled" (RetryLater)
    or "failed" (PermanentError, or a failure on the last attempt).
    """

    status: str
    value: Any = None  # what the handler returned
    error: BaseException | None = None
    delay: float | None = None  # seconds before the next attempt (retried, rescheduled)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def run_task(
    registry: TaskRegistry,
    task: str,
    payload: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int | None = None,
    job_id: int = 1,
    queue: str | None = None,
    cancelled: threading.Event | None = None,
) -> TaskResult:
    """Run `task`'s handler once with a real JobContext, in this thread, and report the outcome.

    The payload goes through the same JSON encoding as an enqueue, so a payload the queue
    would refuse fails here too (ValueError). Exceptions from the handler never escape;
    they come back in the result, classified as the worker would.
    """
    found = registry.get(task)
    if found is None:
        raise KeyError(f"unknown task {task!r}: registered are {', '.join(registry.names())}")
    decoded = json.loads(encode_payload(payload))
    limit = max_attempts or found.max_attempts
    ctx = JobContext(
        job_id=job_id,
        task=task,
        queue=queue or found.queue or DEFAULT_QUEUE,
        attempt=attempt,
        max_attempts=limit,
        deadline=time.monotonic() + found.timeout,
        cancelled=cancelled or threading.Event(),
        worker_id="testing",
    )
    try:
        value = found.handler(ctx, decoded)
    except RetryLater as exc:
        return TaskResult("rescheduled", error=exc, delay=exc.delay)
    except PermanentError as exc:
        return TaskResult("failed", error=exc)
    except BaseException as exc:
        if attempt >= limit:
            return TaskResult("failed", error=exc)
        return TaskResult("retried", error=exc, delay=found.retry.base_delay(attempt))
    return TaskResult("succeeded", value=value)
