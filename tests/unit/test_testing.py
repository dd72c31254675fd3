from __future__ import annotations

import threading
from typing import Any

import pytest

from pgworker import JobContext, PermanentError, RetryLater, RetryPolicy, TaskRegistry
from pgworker.testing import run_task

registry = TaskRegistry()


@registry.task("greet")
def greet(ctx: JobContext, payload: Any) -> str:
    assert ctx.task == "greet"
    return f"hello {payload['name']} (attempt {ctx.attempt} of {ctx.max_attempts})"


@registry.task("flaky", max_attempts=3, retry=RetryPolicy(initial_delay=2))
def flaky(ctx: JobContext, payload: Any) -> None:
    raise ConnectionError("upstream down")


@registry.task("rate_limited")
def rate_limited(ctx: JobContext, payload: Any) -> None:
    raise RetryLater(30)


@registry.task("bad")
def bad(ctx: JobContext, payload: Any) -> None:
    raise PermanentError("invalid address")


@registry.task("cooperative")
def cooperative(ctx: JobContext, payload: Any) -> str:
    return "stopped early" if ctx.cancelled.is_set() else "ran"


def test_success_returns_the_value() -> None:
    result = run_task(registry, "greet", {"name": "Ada"})
    assert result.succeeded
    assert result.value == "hello Ada (attempt 1 of 4)"


def test_failure_with_attempts_left_is_retried_with_the_policy_delay() -> None:
    result = run_task(registry, "flaky", attempt=2)
    assert (result.status, result.delay) == ("retried", 4.0)
    assert isinstance(result.error, ConnectionError)


def test_failure_on_the_last_attempt_fails() -> None:
    assert run_task(registry, "flaky", attempt=3).status == "failed"


def test_retry_later_and_permanent_error() -> None:
    assert run_task(registry, "rate_limited").status == "rescheduled"
    assert run_task(registry, "rate_limited").delay == 30
    assert run_task(registry, "bad").status == "failed"


def test_cancellation_can_be_simulated() -> None:
    cancelled = threading.Event()
    cancelled.set()
    assert run_task(registry, "cooperative", cancelled=cancelled).value == "stopped early"


def test_payloads_go_through_json() -> None:
    with pytest.raises(ValueError, match="JSON"):
        run_task(registry, "greet", {"name": object()})


def test_unknown_task() -> None:
    with pytest.raises(KeyError, match="unknown task"):
        run_task(registry, "nope")
