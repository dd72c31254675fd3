"""JobContext: what a handler learns about the job it runs, and how it hears of cancellation."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

_logger = logging.getLogger("pgworker.job")


class JobContext:
    """The job being run: ids, attempt, deadline, a `cancelled` event and a logger."""

    __slots__ = (
        "_logger",
        "attempt",
        "cancelled",
        "deadline",
        "job_id",
        "max_attempts",
        "queue",
        "task",
        "worker_id",
    )

    def __init__(
        self,
        *,
        job_id: int,
        task: str,
        queue: str,
        attempt: int,
        max_attempts: int,
        deadline: float,
        cancelled: threading.Event,
        worker_id: str,
    ) -> None:
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.deadline = deadline  # time.monotonic() at which this attempt times out
        self.cancelled = cancelled  # set on timeout, shutdown or `pgworker jobs cancel`
        self.worker_id = worker_id
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry job_id, task, queue, attempt and worker_id."""
        if self._logger is None:  # built on first use: most handlers never log
            self._logger = logging.LoggerAdapter(_logger, self.fields())
        return self._logger

    def fields(self) -> dict[str, Any]:
        """The job's identifying fields, as log records carry them."""
        return {
            "job_id": self.job_id,
            "task": self.task,
            "queue": self.queue,
            "attempt": self.attempt,
            "worker_id": self.worker_id,
        }

    def time_left(self) -> float:
        """Seconds until this attempt times out (negative once it has)."""
        return self.deadline - time.monotonic()

    @property
    def is_last_attempt(self) -> bool:
        """True when a failure now fails the job for good."""
        return self.attempt >= self.max_attempts

    def __repr__(self) -> str:
        return (
            f"JobContext(job_id={self.job_id}, task={self.task!r}, queue={self.queue!r},"
            f" attempt={self.attempt}/{self.max_attempts})"
        )
