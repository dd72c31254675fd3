"""The demo's tasks: most succeed, some fail and succeed on retry, one fails for good."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from pgworker import JobContext, PermanentError, RetryPolicy, TaskRegistry

registry = TaskRegistry()

QUEUE = "demo"


@registry.task("send_welcome_email", queue=QUEUE)
def send_welcome_email(ctx: JobContext, payload: Any) -> None:
    """Pretend to talk to a mail server for a millisecond."""
    time.sleep(0.001)


@registry.task("resize_image", queue=QUEUE, max_attempts=4, retry=RetryPolicy(initial_delay=0.2))
def resize_image(ctx: JobContext, payload: Any) -> str:
    """Fails on its first `flaky` attempts, like a storage service having a bad moment."""
    if ctx.attempt <= payload.get("flaky", 0):
        raise ConnectionError(f"storage timed out on attempt {ctx.attempt}")
    return hashlib.sha256(payload["path"].encode()).hexdigest()


@registry.task("charge_card", queue=QUEUE)
def charge_card(ctx: JobContext, payload: Any) -> None:
    """A declined card is not worth retrying."""
    if payload["card"].endswith("0002"):
        raise PermanentError("card declined")
    ctx.logger.debug("charged %s", payload["amount"])
