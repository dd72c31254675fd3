import time

from pgworker.tasks import TaskRegistry

registry = TaskRegistry()


@registry.task("noop")
def noop(ctx, payload):
    pass


@registry.task("sleep")
def sleep(ctx, payload):
    time.sleep(payload.get("s", 1))


@registry.task("fail", max_attempts=2)
def fail(ctx, payload):
    raise RuntimeError("boom")
