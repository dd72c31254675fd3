from __future__ import annotations

from typing import Any

import pytest

from pgworker import JobContext, RetryPolicy, TaskRegistry
from pgworker.errors import ConfigError
from pgworker.tasks import load_registry


def test_decorator_registers_and_returns_the_function() -> None:
    registry = TaskRegistry()

    @registry.task("send_email", max_attempts=7, timeout=5, queue="mail")
    def send(ctx: JobContext, payload: Any) -> str:
        return "sent"

    task = registry.get("send_email")
    assert task is not None
    assert (task.max_attempts, task.timeout, task.queue) == (7, 5.0, "mail")
    assert task.retry == RetryPolicy()
    assert send(None, None) == "sent"  # type: ignore[arg-type]
    assert "send_email" in registry
    assert registry.names() == ["send_email"]
    assert registry.queues() == ["mail"]


def test_defaults() -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    task = registry.get("t")
    assert task is not None
    assert (task.max_attempts, task.timeout, task.queue) == (4, 60.0, "default")
    assert registry.queues() == ["default"]


def test_an_empty_registry_serves_the_default_queue() -> None:
    assert TaskRegistry().queues() == ["default"]


def test_duplicate_names_are_refused() -> None:
    registry = TaskRegistry()
    registry.task("t")(lambda ctx, payload: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.task("t")(lambda ctx, payload: None)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("bad name", {}, "invalid task name"),
        ("t", {"queue": "bad queue"}, "invalid queue name"),
        ("t", {"max_attempts": 0}, "max_attempts"),
        ("t", {"max_attempts": 1001}, "max_attempts"),
        ("t", {"timeout": 0}, "timeout"),
    ],
)
def test_invalid_registrations(name: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskRegistry().task(name, **kwargs)


def test_unknown_names_resolve_to_nothing() -> None:
    registry = TaskRegistry()
    assert registry.get("os.system") is None
    assert registry.get("__class__") is None


def test_load_registry_default_attribute() -> None:
    registry = load_registry("apps.tasks")
    assert "noop" in registry


def test_load_registry_named_attribute() -> None:
    assert load_registry("apps.tasks:registry") is load_registry("apps.tasks")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz", "cannot import --app 'no_such_module_xyz': ModuleNotFoundError"),
        ("apps.tasks:nothing", "should be a pgworker.TaskRegistry, found nothing"),
        ("apps.tasks:record", "should be a pgworker.TaskRegistry, found a function"),
        (":registry", "expected MODULE[:ATTRIBUTE]"),
    ],
)
def test_load_registry_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_registry(spec)
    assert message in str(excinfo.value)
