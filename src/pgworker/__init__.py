"""pgworker: a background job queue for Python built on PostgreSQL."""

from __future__ import annotations

from pgworker.client import Client
from pgworker.config import WorkerConfig
from pgworker.context import JobContext
from pgworker.errors import (
    ConfigError,
    DatabaseUnavailable,
    PermanentError,
    PermissionDenied,
    PgworkerError,
    RetryLater,
    SchemaError,
)
from pgworker.jobs import JobStatus
from pgworker.retry import RetryPolicy
from pgworker.tasks import Task, TaskRegistry
from pgworker.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigError",
    "DatabaseUnavailable",
    "JobContext",
    "JobStatus",
    "PermanentError",
    "PermissionDenied",
    "PgworkerError",
    "RetryLater",
    "RetryPolicy",
    "SchemaError",
    "Task",
    "TaskRegistry",
    "Worker",
    "WorkerConfig",
    "__version__",
]
