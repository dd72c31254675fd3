"""Task and TaskRegistry: the handlers a worker can run, looked up by registered name only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pgworker.config import DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, DEFAULT_TIMEOUT
from pgworker.jobs import check_name
from pgworker.retry import RetryPolicy

if TYPE_CHECKING:
    from pgworker.context import JobContext

Handler = Callable[["JobContext", Any], Any]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class Task:
    """A registered handler and how its jobs are run: attempts, timeout, backoff, queue."""

    name: str
    handler: Handler
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue: str = DEFAULT_QUEUE


class TaskRegistry:
    """Maps task names to handlers; `@registry.task("name")` registers a function."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def task(
        self,
        name: str,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        queue: str | None = None,
    ) -> Callable[[H], H]:
        """Register the decorated `handler(ctx, payload)` under `name`; returns it unchanged."""
        check_name("task", name)
        if queue is not None:
            check_name("queue", queue)
        if not 1 <= max_attempts <= 1000:
            raise ValueError("max_attempts must be between 1 and 1000")
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")

        def register(handler: H) -> H:
            if name in self._tasks:
                raise ValueError(f"task {name!r} is already registered")
            self._tasks[name] = Task(
                name=name,
                handler=handler,
                max_attempts=max_attempts,
                timeout=float(timeout),
                retry=retry or RetryPolicy(),
                queue=queue or DEFAULT_QUEUE,
            )
            return handler

        return register

    def get(self, name: str) -> Task | None:
        """The task registered under `name`, or None."""
        return self._tasks.get(name)

    def names(self) -> list[str]:
        """Every registered task name, sorted."""
        return sorted(self._tasks)

    def queues(self) -> list[str]:
        """The queues the registered tasks declare, sorted; `default` when there are none."""
        return sorted({task.queue for task in self._tasks.values()} or {DEFAULT_QUEUE})

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)


def load_registry(spec: str) -> TaskRegistry:
    """Import `module[:attribute]` (attribute defaults to `registry`) and return the registry."""
    from pgworker.config import import_attribute
    from pgworker.errors import ConfigError

    name, registry = import_attribute(spec, "--app", default="registry", shape="MODULE[:ATTRIBUTE]")
    if not isinstance(registry, TaskRegistry):
        found = "nothing" if registry is None else f"a {type(registry).__name__}"
        raise ConfigError(
            f"--app {spec!r}: {name} should be a pgworker.TaskRegistry, found {found}"
        )
    return registry
