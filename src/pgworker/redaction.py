"""Redaction: the hook that rewrites error text before a worker stores or logs it.

A handler's exception message can quote anything it touched (a token, an address, a row).
`Worker(redact=...)` or `pgworker work --redact MODULE:FUNCTION` passes every error text,
summary and traceback alike, through a `str -> str` function before it reaches
`last_error`, `errors` or a log line. A hook that fails withholds the text: unredacted text
is never the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from pgworker.config import import_attribute
from pgworker.errors import ConfigError
from pgworker.logs import RateLimiter

log = logging.getLogger("pgworker.worker")

Redactor = Callable[[str], str]

WITHHELD: Final = "<error text withheld: the redact hook failed>"

_limiter = RateLimiter(interval=60.0)


def redact_text(redact: Redactor | None, text: str) -> str:
    """`text` as the hook rewrites it; WITHHELD if the hook raises or returns no str."""
    if redact is None:
        return text
    try:
        result = redact(text)
    except Exception as exc:
        _warn(f"raised {type(exc).__name__}")
        return WITHHELD
    if not isinstance(result, str):
        _warn(f"returned {type(result).__name__}, not str")
        return WITHHELD
    return result


def _warn(what: str) -> None:
    # Only the exception's type: its message could quote the text being redacted.
    allowed, held_back = _limiter.allow("redact")
    if allowed:
        log.warning(
            f"the redact hook {what}: error text withheld", extra={"count": held_back or None}
        )


def load_redactor(spec: str) -> Redactor:
    """Import `MODULE:FUNCTION` (the --redact flag) and return the function."""
    name, function = import_attribute(spec, "--redact", shape="MODULE:FUNCTION")
    if not callable(function):
        raise ConfigError(f"--redact {spec!r}: {name} is not a function")
    redactor: Redactor = function
    return redactor
