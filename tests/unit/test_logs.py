from __future__ import annotations

import io
import json
import logging

import pytest

from pgworker.logs import JsonFormatter, RateLimiter, TextFormatter, configure_logging


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "pgworker.worker", logging.INFO, __file__, 1, "job succeeded", None, None
    )
    record.__dict__.update(fields)
    return record


FIELDS = {"job_id": 7, "task": "send", "queue": "mail", "attempt": 2, "duration_ms": 1.5,
          "worker_id": "w-1"}  # fmt: skip


def test_json_lines_carry_the_job_fields() -> None:
    line = json.loads(JsonFormatter().format(_record(**FIELDS)))
    assert line["msg"] == "job succeeded"
    assert line["level"] == "info"
    assert {k: line[k] for k in FIELDS} == FIELDS


def test_text_lines_carry_the_job_fields() -> None:
    text = TextFormatter().format(_record(**FIELDS, error="ValueError: bad thing"))
    assert "INFO job succeeded job_id=7 task=send queue=mail attempt=2 duration_ms=1.5" in text
    assert 'error="ValueError: bad thing"' in text


def test_configure_logging_validates() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging(fmt="xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging(level="loud")


def test_configure_logging_writes_json(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(fmt="json", level="info", stream=stream)
        logging.getLogger("pgworker.worker").info("worker started", extra={"worker_id": "w"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert json.loads(stream.getvalue())["worker_id"] == "w"


def test_rate_limiter_counts_what_it_holds_back() -> None:
    limiter = RateLimiter(interval=3600)
    assert limiter.allow("k") == (True, 0)
    assert limiter.allow("k", 5) == (False, 0)
    assert limiter.allow("other") == (True, 0)
    limiter.reset("k")
    assert limiter.allow("k") == (True, 0)
