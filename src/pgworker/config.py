"""Configuration: defaults, environment variables and where the database comes from."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import psycopg.conninfo

from pgworker.durations import parse_duration
from pgworker.errors import ConfigError

DEFAULT_QUEUE: Final = "default"
DEFAULT_HOME: Final = ".pgworker"

DEFAULT_CONCURRENCY: Final = 5
DEFAULT_POLL_INTERVAL: Final = 1.0
DEFAULT_SHUTDOWN_TIMEOUT: Final = 30.0
DEFAULT_HEARTBEAT_INTERVAL: Final = 5.0
DEFAULT_RESCUE_INTERVAL: Final = 10.0
DEFAULT_STALE_AFTER: Final = 30.0
# A database call of a worker's background loops that takes longer is cut off and retried on
# a new connection: a frozen server can keep TCP alive forever.
DEFAULT_DB_TIMEOUT: Final = 30.0
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_ATTEMPTS: Final = 4
# Retention of finished jobs before workers prune them: a day of successes, a week of
# failures and cancellations (what an operator may still want to inspect or retry).
DEFAULT_RETENTION_SUCCEEDED: Final = 86_400.0
DEFAULT_RETENTION_FAILED: Final = 7 * 86_400.0
DEFAULT_PRUNE_INTERVAL: Final = 60.0

# Names and queues: what the jobs_task_format and jobs_queue_format CHECKs accept.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
# The jobs_payload_size CHECK: 1 MiB of jsonb.
MAX_PAYLOAD_BYTES: Final = 1024 * 1024


def env_name(flag: str) -> str:
    """The environment variable for a flag: --poll-interval is PGWORKER_POLL_INTERVAL."""
    return "PGWORKER_" + flag.lstrip("-").replace("-", "_").upper()


@dataclass(frozen=True, slots=True)
class DatabaseSource:
    """Where the DSN came from, so messages can say so without printing the DSN."""

    dsn: str | None
    origin: str  # "--dsn", "PGWORKER_DSN", "DATABASE_URL" or "embedded"


def resolve_dsn(flag: str | None, environ: Mapping[str, str] | None = None) -> DatabaseSource:
    """Pick the DSN: --dsn, then PGWORKER_DSN, then DATABASE_URL; none means the embedded server."""
    env = os.environ if environ is None else environ
    for origin, value in (
        ("--dsn", flag),
        ("PGWORKER_DSN", env.get("PGWORKER_DSN")),
        ("DATABASE_URL", env.get("DATABASE_URL")),
    ):
        if value:
            return DatabaseSource(normalize_dsn(value, origin), origin)
    return DatabaseSource(None, "embedded")


_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+[a-z0-9_]+://", re.IGNORECASE)


def normalize_dsn(dsn: str, origin: str = "dsn") -> str:
    """Accept libpq URIs, key=value strings and SQLAlchemy-style URLs; refuse anything else."""
    dsn = _DRIVER_SUFFIX.sub(r"\1://", dsn.strip())
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # The parser's message can quote any part of the string, the password included.
        raise ConfigError(
            f"invalid DSN in {origin}: expected postgresql://user:password@host:port/dbname"
            " or key=value pairs"
        ) from None
    return dsn


_URI_PASSWORD = re.compile(r"^([a-z0-9+]+://[^/?#@:]*:)[^/?#@]+@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """The DSN in the form it was given, its password replaced by ****: safe to print."""
    masked = _PARAM_PASSWORD.sub(r"\1****", _URI_PASSWORD.sub(r"\1****@", dsn))
    # Whatever form the patterns missed, the password libpq would use must not be left in.
    # Below 4 characters the search would mangle the rest of the text (a password "p" is in
    # "postgresql"); the patterns alone cover those.
    try:
        password = str(psycopg.conninfo.conninfo_to_dict(dsn).get("password") or "")
    except psycopg.ProgrammingError:
        return masked
    if len(password) >= 4:
        for form in {password, quote(password, safe="")}:
            masked = masked.replace(form, "****")
    return masked


def database_dsn(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The DSN to use: a configured one, or the embedded server's, started on demand."""
    source = resolve_dsn(flag, environ)
    if source.dsn is not None:
        return source.dsn
    from pgworker.embedded import ensure_server

    return ensure_server(home_dir(environ))


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the embedded server keeps its data: PGWORKER_HOME, default ./.pgworker."""
    env = os.environ if environ is None else environ
    return Path(env.get("PGWORKER_HOME") or DEFAULT_HOME).expanduser().resolve()


def import_attribute(
    spec: str, flag: str, *, default: str | None = None, shape: str = "MODULE:ATTRIBUTE"
) -> tuple[str, object]:
    """Import `MODULE:ATTRIBUTE` named by a flag (--app, --redact); returns (name, object).

    The current directory is importable, as when running `python -m`. Every failure is a
    ConfigError with one line; an attribute that does not exist comes back as None.
    """
    import importlib
    import sys

    module_name, _, attribute = spec.partition(":")
    attribute = attribute or default or ""
    if not module_name or not attribute:
        raise ConfigError(f"invalid {flag} {spec!r}: expected {shape}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"cannot import {flag} {module_name!r}: {type(exc).__name__}: {first_line(str(exc))}"
        ) from None
    return f"{module_name}.{attribute}", getattr(module, attribute, None)


def first_line(text: str) -> str:
    """The first non-empty line of a (possibly multi-line) error text."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished jobs are kept, in seconds per status, before they are pruned."""

    succeeded: float = DEFAULT_RETENTION_SUCCEEDED
    failed: float = DEFAULT_RETENTION_FAILED
    cancelled: float = DEFAULT_RETENTION_FAILED

    @classmethod
    def parse(cls, text: str, what: str = "--retention") -> Retention:
        """Parse `7d` (every finished status) or `succeeded=12h,failed=30d` (others: defaults)."""
        values = dict(cls().items())
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ConfigError(f"{what} needs a duration, e.g. 7d or succeeded=1d,failed=30d")
        for part in parts:
            status, sep, duration = part.rpartition("=")
            if not sep:
                seconds = parse_duration(part, what)
                values = dict.fromkeys(values, seconds)
                continue
            status = status.strip().lower()
            if status not in values:
                raise ConfigError(
                    f"invalid {what} {part[:40]!r}: the statuses are succeeded, failed, cancelled"
                )
            values[status] = parse_duration(duration, what)
        return cls(**values)

    def items(self) -> tuple[tuple[str, float], ...]:
        """(status, seconds) for each finished status."""
        return (
            ("succeeded", self.succeeded),
            ("failed", self.failed),
            ("cancelled", self.cancelled),
        )


def default_prefetch(concurrency: int) -> int:
    """Jobs claimed ahead of free threads: 200 per thread, at most 1,000.

    Throughput is claim batch size over the claim's round trip, and the worker claims when
    half the buffer is gone: 1,000 keeps claims at 500 jobs. Measured on 2 cores, no-op jobs,
    concurrency 5: prefetch 100 ran 23k jobs/s, 500 ran 32k, 1,000 ran 41k. The executor
    uses only what ~50 ms of recent handler time justifies, so slow handlers prefetch little.
    """
    return min(1000, 200 * concurrency)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker runs; every field is a `pgworker work` flag and a PGWORKER_* variable."""

    concurrency: int = DEFAULT_CONCURRENCY
    queues: tuple[str, ...] | None = None  # None: the queues the registry's tasks declare
    prefetch: int | None = None  # None: default_prefetch(concurrency)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    listen: bool = True
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    rescue_interval: float = DEFAULT_RESCUE_INTERVAL
    stale_after: float = DEFAULT_STALE_AFTER
    db_timeout: float = DEFAULT_DB_TIMEOUT
    log_payloads: bool = False  # job log lines carry the payload (it may hold secrets)
    prune: bool = True  # False: this worker never prunes (others may)
    retention: Retention = Retention()
    prune_interval: float = DEFAULT_PRUNE_INTERVAL

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.prefetch is not None and self.prefetch < 0:
            raise ConfigError("--prefetch must be 0 or more")
        for name in (
            "poll_interval",
            "heartbeat_interval",
            "rescue_interval",
            "stale_after",
            "db_timeout",
            "prune_interval",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be more than 0")
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must be 0 or more")
        if min(seconds for _, seconds in self.retention.items()) < 0:
            raise ConfigError("--retention must be 0 or more")
        if self.stale_after <= self.heartbeat_interval:
            raise ConfigError("--stale-after must be longer than --heartbeat-interval")
        if self.queues is not None:
            if not self.queues:
                raise ConfigError("--queues needs at least one queue")
            for queue in self.queues:
                if not NAME_PATTERN.fullmatch(queue):
                    raise ConfigError(
                        f"invalid queue name {queue[:60]!r}: use 1-200 characters of"
                        " A-Z a-z 0-9 _ . : -"
                    )

    @property
    def effective_prefetch(self) -> int:
        return default_prefetch(self.concurrency) if self.prefetch is None else self.prefetch
