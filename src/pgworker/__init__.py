"""pgworker: a background job queue for Python built on PostgreSQL."""

from __future__ import annotations

from pgworker.client import Client
from pgworker.errors import (
    ConfigError,
    DatabaseUnavailable,
    PermanentError,
    PgworkerError,
    RetryLater,
    SchemaError,
)
from pgworker.jobs import JobStatus

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigError",
    "DatabaseUnavailable",
    "JobStatus",
    "PermanentError",
    "PgworkerError",
    "RetryLater",
    "SchemaError",
    "__version__",
]
