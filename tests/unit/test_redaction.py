"""Redaction of error text, payloads in log lines, and the --redact loader: no database."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import pytest

from pgworker import TaskRegistry
from pgworker.completer import Ending
from pgworker.errors import ConfigError
from pgworker.executor import Executor, describe_failure
from pgworker.redaction import WITHHELD, load_redactor, redact_text

from support import wait_until


def test_redact_text_applies_the_hook() -> None:
    assert redact_text(None, "token=SECRET-1") == "token=SECRET-1"
    assert redact_text(str.upper, "abc") == "ABC"


def test_a_failing_hook_withholds_the_text(caplog: pytest.LogCaptureFixture) -> None:
    from apps.redact import broken

    with caplog.at_level(logging.WARNING):
        assert redact_text(broken, "token=SECRET-1") == WITHHELD
    assert redact_text(lambda text: None, "token=SECRET-1") == WITHHELD  # type: ignore[arg-type,return-value]
    assert "SECRET-1" not in caplog.text


def test_describe_failure_redacts_summary_and_traceback() -> None:
    from apps.redact import broken, scrub

    try:
        raise RuntimeError("token=SECRET-abc rejected")
    except RuntimeError as exc:
        summary, detail = describe_failure(exc, scrub)
        withheld = describe_failure(exc, broken)
    assert summary == "RuntimeError: token=[redacted] rejected"
    assert "SECRET" not in detail
    assert "Traceback" in detail
    assert withheld == (WITHHELD, WITHHELD)


def test_load_redactor() -> None:
    from apps.redact import scrub

    assert load_redactor("apps.redact:scrub") is scrub
    for spec, message in [
        ("apps.redact", "expected MODULE:FUNCTION"),
        (":scrub", "expected MODULE:FUNCTION"),
        ("apps.nonexistent:scrub", "cannot import"),
        ("apps.redact:missing", "is not a function"),
        ("apps.redact:NOT_A_FUNCTION", "is not a function"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_redactor(spec)


class _Outcomes:
    """Stands in for the Completer: keeps what the executor submits."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.pending = 0

    def submit(self, outcome: Any) -> None:
        self.items.append(outcome)


def _run_jobs(
    rows: list[tuple[int, str, str, int, int | None, str]], **options: Any
) -> tuple[list[Any], list[logging.LogRecord]]:
    registry = TaskRegistry()

    @registry.task("leaky", max_attempts=1)
    def leaky(ctx: Any, payload: Any) -> None:
        raise RuntimeError(f"token={payload['token']} refused")

    @registry.task("retried", max_attempts=3)
    def retried(ctx: Any, payload: Any) -> None:
        raise RuntimeError("try again")

    @registry.task("fine")
    def fine(ctx: Any, payload: Any) -> None:
        pass

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pgworker.worker")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    outcomes = _Outcomes()
    executor = Executor(
        registry,
        outcomes,
        concurrency=2,
        prefetch=0,
        wake=threading.Event(),
        **options,  # type: ignore[arg-type]
    )
    executor.worker_id = "w"
    try:
        executor.start()
        executor.dispatch(list(rows), "w")
        wait_until(lambda: len(outcomes.items) == len(rows), timeout=5, message="outcomes")
    finally:
        executor.stop_threads()
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return outcomes.items, records


ROWS = [
    (1, "leaky", "default", 1, None, '{"token": "SECRET-abc", "to": "canary-payload"}'),
    (2, "retried", "default", 1, None, '{"to": "canary-payload"}'),
    (3, "fine", "default", 1, None, '{"to": "canary-payload"}'),
    (4, "os.system", "default", 1, None, '{"to": "canary-payload"}'),
]


def test_job_lines_carry_no_payload_by_default() -> None:
    outcomes, records = _run_jobs(ROWS)
    assert len(outcomes) == 4
    job_lines = [r for r in records if getattr(r, "job_id", None)]
    assert {r.getMessage() for r in job_lines} == {
        "job failed", "job will retry", "job succeeded",
    }  # fmt: skip
    for record in records:
        assert getattr(record, "payload", None) is None
        assert "canary-payload" not in str(record.__dict__)


def test_log_payloads_adds_the_payload_to_every_job_line() -> None:
    _, records = _run_jobs(ROWS, log_payloads=True)
    job_lines = [r for r in records if getattr(r, "job_id", None)]
    assert len(job_lines) == 4
    for record in job_lines:
        assert "canary-payload" in record.payload  # type: ignore[attr-defined]


def test_log_payloads_cuts_long_payloads() -> None:
    long_row = (5, "retried", "default", 1, None, '{"s": "' + "x" * 5000 + '"}')
    _, records = _run_jobs([long_row], log_payloads=True)
    (record,) = [r for r in records if getattr(r, "job_id", None)]
    assert len(record.payload) == 2000 + len("... (truncated)")  # type: ignore[attr-defined]


def test_the_redact_hook_rewrites_stored_and_logged_error_text() -> None:
    from apps.redact import scrub

    outcomes, records = _run_jobs(ROWS[:1], redact=scrub)
    (ending,) = outcomes
    assert isinstance(ending, Ending)
    assert ending.status == "failed"
    assert ending.summary == "RuntimeError: token=[redacted] refused"
    assert "SECRET" not in (ending.error or "")
    assert all("SECRET" not in str(r.__dict__) for r in records)


def test_unknown_tasks_fail_without_any_import() -> None:
    names = ["os.system", "apps.import_canary", "apps.import_canary:run", "builtins:eval"]
    rows = [(n, name, "default", 1, None, "{}") for n, name in enumerate(names, 1)]
    outcomes, _ = _run_jobs(rows)
    assert sorted((o.status, o.summary) for o in outcomes) == sorted(
        ("failed", f"unknown task {name!r}") for name in names
    )
    assert "apps.import_canary" not in sys.modules
    assert "PGWORKER_IMPORT_CANARY" not in os.environ
