"""The exception tree.

PgworkerError                 base of every error pgworker raises on purpose
├── ConfigError               a bad flag, environment variable, DSN or --app
├── DatabaseUnavailable       the server cannot be reached or refused us
├── SchemaError               the schema is missing or not at the expected revision
├── PermissionDenied          the database role lacks a privilege the action needs
├── EmbeddedServerError       the embedded PostgreSQL could not start
├── UnknownTask               a job names a task the registry does not hold
├── NotFound                  an operator named a job or queue that does not exist
└── Conflict                  a job's state forbids what an operator asked (retry a running job)

JobOutcome                    raised by handlers to choose what happens to the job
├── PermanentError            fail now, no retry
└── RetryLater                reschedule after `delay` seconds, not counted as a failure
"""

from __future__ import annotations


class PgworkerError(Exception):
    """Base of every error pgworker raises on purpose; its message is one line for the user."""


class ConfigError(PgworkerError):
    """A bad flag, environment variable, DSN or --app value."""


class DatabaseUnavailable(PgworkerError):
    """The server cannot be reached, or refused the connection."""


class SchemaError(PgworkerError):
    """The pgworker schema is missing or not at the revision this version needs."""


class PermissionDenied(PgworkerError):
    """The database role lacks a privilege the action needs (e.g. migrate as the worker role)."""


class EmbeddedServerError(PgworkerError):
    """The embedded PostgreSQL could not be started."""


class UnknownTask(PgworkerError):
    """A job names a task that the registry does not hold."""


class NotFound(PgworkerError):
    """A job id or queue name given by an operator does not exist."""


class Conflict(PgworkerError):
    """The state of a job forbids the change asked for: nothing was changed."""


class JobOutcome(Exception):
    """Raised by a handler to choose what happens to its job."""


class PermanentError(JobOutcome):
    """Fail the job now, without retrying it."""


class RetryLater(JobOutcome):
    """Run the job again after `delay` seconds; the attempt is not counted as a failure."""

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if delay < 0:
            raise ValueError("RetryLater delay must be >= 0")
        super().__init__(reason or f"retry later in {delay:g} s")
        self.delay = float(delay)
